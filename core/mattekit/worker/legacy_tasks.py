"""TRANSITIONAL: registry declarations of the worker's operations for task modules not yet converted.

Until every ``mattekit.tasks.<module>`` declares its ``TASK``, :func:`mattekit.worker.operations.build`
takes the operation of a task module without one from here: the same operations, options and
validation as the worker offered before the split, declared with the registry's types. These
tasks call the old task functions, which still load their models themselves. Deleted once the
registry's task modules land.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import MattekitError
from ..tasks.registry import Port, Task, option

DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps"
IMAGE = Port("image", "image", (3, 4))


def _nothing_to_infer(models, inputs, options):
    return None, None


@dataclass
class RemoveOptions:
    model: str | None = option(None, "segment model from the catalog (default: the catalog's)", model="segment")
    refine: bool = option(True, "edge-aware upsampling of the mask")
    output: str = option("mask", "the alpha (mask) or the RGBA cut-out (rgba)", choices=("mask", "rgba"))
    device: str = option("auto", DEVICE_HELP)


def _remove(models, inputs, o, context, y):
    from ..tasks import segment

    seg = segment.SegmentOptions(model=o.model, device=o.device, refine=o.refine)
    return {"result": segment.remove_background(inputs["image"], seg, output=o.output)}


@dataclass
class CutoutOptions:
    output: str = option("rgba", "RGBA, the alpha itself, or a composite", choices=("rgba", "mask", "composite"))
    background: str = option("#ffffff", "composite background colour")
    crop_margin: float | None = option(None, "crop to the subject's box grown by this fraction", minimum=0.0,
                                       maximum=10.0)


def _cutout(models, inputs, o, context, y):
    from .. import ops
    from ..tasks import segment

    background = o.background
    if o.output == "composite":
        try:
            background = ops.parse_colour(background)
        except ValueError:
            raise MattekitError(f"The background colour {background!r} is not understood; use #rrggbb or r,g,b.") from None
    return {"result": segment.cutout(inputs["image"], inputs["alpha"], output=o.output, background=background,
                                     crop_margin=o.crop_margin)}


@dataclass
class UpscaleOptions:
    model: str | None = option(None, "upscale model from the catalog (default: the catalog's)", model="upscale")
    scale: float | None = option(None, "output/input size ratio (default: the model's factor)", minimum=0.05,
                                 maximum=16.0)
    strength: float = option(1.0, "1 = network only, 0 = bicubic", minimum=0.0, maximum=1.0)
    tile: int | None = option(None, "tile side in input pixels (default: from free memory)", minimum=0, maximum=4096)
    alpha: str = option("model", "how the alpha channel is upscaled", choices=("model", "bicubic"))
    device: str = option("auto", DEVICE_HELP)


def _upscale(models, inputs, o, context, y):
    from ..tasks import upscale

    opts = upscale.UpscaleOptions(model=o.model, device=o.device, scale=o.scale, strength=o.strength, tile=o.tile,
                                  alpha=o.alpha)
    return {"result": upscale.upscale(inputs["image"], opts)}


@dataclass
class BokehOptions:
    strength: float = option(1.0, "blur scale (2.8 / f-number)", minimum=0.0, maximum=20.0)
    mask_only: bool = option(False, "no depth model: the subject is sharp, the rest far")
    focus_x: float | None = option(None, "focus point, x in pixels", minimum=0.0)
    focus_y: float | None = option(None, "focus point, y in pixels", minimum=0.0)
    highlight_gain: float = option(2.0, "extra energy for highlights", minimum=0.0, maximum=20.0)
    blades: int = option(0, "aperture blades (0 = round)", minimum=0, maximum=16)
    rotation: float = option(0.0, "aperture rotation in degrees", minimum=-360.0, maximum=360.0)
    depth_model: str | None = option(None, "depth model from the catalog", model="depth")
    segment_model: str | None = option(None, "segment model from the catalog", model="segment")
    device: str = option("auto", DEVICE_HELP)


def _bokeh(models, inputs, o, context, y):
    from ..tasks import bokeh

    image = inputs["image"]
    focus = None
    if o.focus_x is not None and o.focus_y is not None:
        focus = (o.focus_x, o.focus_y)
        if not (focus[0] < image.shape[1] and focus[1] < image.shape[0]):
            raise MattekitError(f"The focus point ({focus[0]:g}, {focus[1]:g}) lies outside the "
                                f"{image.shape[1]} x {image.shape[0]} image.")
    opts = bokeh.BokehOptions(focus=focus, strength=o.strength, highlight_gain=o.highlight_gain, blades=o.blades,
                              rotation=o.rotation, mask_only=o.mask_only, depth_model=o.depth_model,
                              segment_model=o.segment_model, device=o.device)
    return {"result": bokeh.bokeh(image, opts, mask=inputs.get("subject"))}


@dataclass
class MatteOptions:
    band: int | None = option(None, "half-width in px of the edge band to refine (default: from the image size)",
                              minimum=0, maximum=1 << 16)
    iterations: int = option(20, "solver iterations", minimum=1, maximum=1000)
    output: str = option("alpha", "the soft alpha or the RGBA cut-out", choices=("alpha", "rgba"))


def _matte(models, inputs, o, context, y):
    """Refine Edges: the edge of the given mask matted into a soft alpha; a mask without both a sure
    subject and a sure background has no edge, which is an error (not the mask handed back)."""
    from ..matting.trimap import BG_AT, FG_AT
    from ..tasks import matte

    image, mask = inputs["image"], inputs["mask"]
    missing = [name for name, part in (("white (subject)", mask >= FG_AT), ("black (background)", mask <= BG_AT))
               if not part.any()]
    if missing:
        raise MattekitError(f"The mask has no edge to refine: it needs both a white (subject) and a black "
                            f"(background) part, and it has no {' or '.join(missing)} part.")
    band = None if o.band is None else min(o.band, max(mask.shape))
    alpha = matte.alpha_from_mask(image, mask, matte.MatteOptions(band=band, iterations=o.iterations))
    return {"result": alpha if o.output == "alpha" else matte.cutout(image, alpha)}


def _task(name, summary, options, inputs, finish, output_channels=(1, 3, 4), size="same", needs=None) -> Task:
    return Task(name, summary, options, inputs, (Port("result", "image", output_channels, size=size),),
                prepare=_nothing_to_infer, finish=finish, main=None, needs=needs)


LEGACY = {
    "segment": [
        _task("remove", "Cut the subject out: its alpha (output=mask) or the RGBA cut-out (output=rgba).",
              RemoveOptions, (IMAGE,), _remove),
        _task("cutout", "Apply a given alpha to an image: RGBA, the alpha, or a composite over a colour (no model).",
              CutoutOptions, (IMAGE, Port("alpha", "alpha")), _cutout)],
    "upscale": [_task("upscale", "Super-resolution: the image (grey, RGB, with or without alpha) at scale x its size.",
                      UpscaleOptions, (Port("image", "image", (1, 2, 3, 4)),), _upscale, (1, 2, 3, 4), "scaled")],
    "bokeh": [_task("bokeh", "Depth of field: a lens blur keeping the subject (or the focus point) sharp.",
                    BokehOptions, (IMAGE, Port("subject", "mask", optional=True)), _bokeh)],
    "matte": [_task("matte", "Refine Edges: the edge of a given mask matted into a soft alpha or an RGBA cut-out.",
                    MatteOptions, (IMAGE, Port("mask", "mask")), _matte)],
}
