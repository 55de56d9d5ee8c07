"""Matting (task ``matte``): a soft alpha and clean foreground colours from a trimap, a mask or a model.

- :func:`alpha_from_trimap` - learning-free matting inside a trimap's unknown band;
- :func:`alpha_from_mask` - the same from a segmentation probability map (the trimap is made
  from the mask, and the mask stays in the estimate where colours say little);
- with neither, the alpha comes from ``model``: a matting network (task "matte", e.g.
  modnet-portrait) directly, or a segmentation network whose mask is matted.
The result is assembled by :mod:`mattekit.tasks.cutout` (cut-out with decontaminated colours by default).

Images are sRGB float32 H x W x 3|4 in [0,1]; alphas, masks and trimaps H x W.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .. import catalog, matting, ops
from . import cutout
from .cutout import CutoutOptions, assemble
from ..errors import MattekitError
from ..matting import trimap as trimaps
from .registry import Legacy, Port, Task, model_input, no_model_input, option
from .segment import DEVICE_HELP, WEIGHTS_HELP, mask_from_prediction, upsampling_of


@dataclass
class MatteOptions(CutoutOptions):
    """Matting: where the alpha comes from and how hard the solver works, plus the cut-out options."""

    model: str | None = option(None, "without a trimap or mask: a matting model (e.g. modnet-portrait) or a "
                               "segmentation model whose mask is matted; default: the catalog's segmentation model",
                               model=("segment", "matte"))
    weights: str | None = option(None, WEIGHTS_HELP, path=True, hosts=("cli", "api"))
    device: str = option("auto", DEVICE_HELP)
    band: int | None = option(None, "half-width in pixels of the unknown band of trimaps made from masks "
                              "(default: from the image size)", minimum=0, maximum=4096)
    iterations: int = option(20, "solver iterations at the solve resolution", minimum=1, maximum=500)
    extra_iterations: int = option(0, "extra solver iterations at full resolution (slower, slightly sharper)",
                                   minimum=0, maximum=200, aliases=("--refine",))

    def alpha_options(self) -> matting.AlphaOptions:
        return matting.AlphaOptions(iterations=self.iterations, refine=self.extra_iterations)


def alpha_from_trimap(image: np.ndarray, trimap: np.ndarray, options: MatteOptions | None = None) -> np.ndarray:
    """Alpha (H x W float32) of ``image`` for a trimap (0 / 0.5 / 1 floats, or a 0/128/255 image)."""
    options = options or MatteOptions()
    t = np.asarray(trimap)
    if t.dtype != np.float32 or t.ndim != 2:
        t = trimaps.normalise(t)
    return matting.estimate_alpha(image[..., :3], t, options.alpha_options())


def alpha_from_mask(image: np.ndarray, mask: np.ndarray, options: MatteOptions | None = None,
                    extent: tuple[int, int] | None = None) -> np.ndarray:
    """Alpha refined from a subject mask (probabilities, or a 0/255 image) by matting its uncertain edge.
    ``extent``: (height, width) of the photo ``image`` is a tile of (see :class:`mattekit.matting.AlphaOptions`)."""
    options = options or MatteOptions()
    m = np.clip(ops.grey_map(mask), 0.0, 1.0)
    band = None if options.band is None else min(options.band, max(m.shape))  # wider covers the image anyway
    trimap = trimaps.from_mask(m, band=band)
    alpha_options = replace(options.alpha_options(), extent=extent)
    return matting.estimate_alpha(image[..., :3], trimap, alpha_options, guess=m)


def check_edge(mask: np.ndarray) -> None:
    """A mask to refine needs both a sure-subject and a sure-background part; else one sentence saying why."""
    missing = [name for name, part in (("white (subject)", mask >= trimaps.FG_AT),
                                       ("black (background)", mask <= trimaps.BG_AT)) if not part.any()]
    if missing:
        raise MattekitError(f"The mask has no edge to refine: it needs both a white (subject) and a black "
                            f"(background) part, and it has no {' or '.join(missing)} part.")


def _model_task(options: MatteOptions) -> str:
    """The catalog task of ``options.model``: "matte" for matting networks, else "segment"."""
    if options.model is None:
        return "segment"
    entry = catalog.load().get(options.model)
    if entry.task not in ("segment", "matte"):
        raise MattekitError(f"Model '{entry.name}' is for {entry.task}, not for matting; use a segment or matte model.")
    return entry.task


def _needs(options: MatteOptions, given: set[str]) -> dict[str, str]:
    if "trimap" in given or "mask" in given:
        if options.model is not None:
            raise MattekitError("A model is for images without a trimap or a mask; leave it out or leave them out.")
        return {}
    return {"model": _model_task(options)}


def _prepare(models, inputs, options: MatteOptions):
    """The model's input when the alpha comes from a model; nothing to infer with a trimap or a mask."""
    return (model_input if "model" in models else no_model_input)(models, inputs, options)


def _finish(models, inputs, options: MatteOptions, context, prediction) -> dict:
    image = inputs["image"]
    if inputs.get("trimap") is not None:
        alpha = alpha_from_trimap(image, _plane(inputs["trimap"], image, "trimap"), options)
    elif inputs.get("mask") is not None:
        mask = np.clip(ops.grey_map(_plane(inputs["mask"], image, "mask")), 0.0, 1.0)
        check_edge(mask)
        alpha = alpha_from_mask(image, mask, options)
    elif models["model"].entry.task == "matte":
        low = prediction[0, 0].float().cpu().numpy()
        h, w = image.shape[:2]
        alpha = np.clip(ops.resize(low, h, w, upsampling_of(models)), 0.0, 1.0)
    else:
        alpha = alpha_from_mask(image, mask_from_prediction(image, prediction, upsampling=upsampling_of(models)), options)
    return {"result": assemble(image, alpha, options, backdrop=inputs.get("backdrop"))}


def _plane(plane: np.ndarray, image: np.ndarray, what: str) -> np.ndarray:
    """An H x W (x C) trimap or mask as H x W, checked against the image's size."""
    plane = plane[..., 0] if plane.ndim == 3 else plane
    if plane.shape != image.shape[:2]:
        raise MattekitError(f"The {what} is {plane.shape[1]}x{plane.shape[0]} but the image is "
                            f"{image.shape[1]}x{image.shape[0]}; they must have the same size.")
    return plane


TASK = Task(
    name="matte",
    summary="Alpha matting: a soft alpha and decontaminated colours from a trimap, a mask's soft edge, or a model.",
    options=MatteOptions,
    inputs=(Port("image", "image", (3, 4)),
            Port("trimap", "trimap", optional=True, help="black = background, white = subject, grey = unknown"),
            Port("mask", "mask", optional=True, help="a soft or hard subject mask whose edge is matted"),
            cutout.BACKDROP),
    outputs=(cutout.RESULT,),
    prepare=_prepare,
    finish=_finish,
    needs=_needs,
    suffix=lambda options: cutout.suffix_for(options, "_matte", "_alpha"),
    output_format=cutout.format_for,
    menu="Refine _Edges...",
    legacy=(Legacy("--alpha-only", "--result alpha", {"result": "alpha"}),
            Legacy("--fg-only", "--result foreground", {"result": "foreground"}),
            cutout.OLD_BG),
)
