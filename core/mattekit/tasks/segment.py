"""Background removal (task ``remove``): the subject's mask from a segmentation network, its edge
matted into a soft alpha, and the cut-out the user asked for (:mod:`mattekit.tasks.cutout`).

Stages (the predictor is passed in as ``models["model"]``):
prepare -> the network input (of the hinted region when the user gave a hint: :mod:`mattekit.hints`);
infer -> the network; finish -> :func:`mask_from_prediction` at full resolution, with a hint its
unsure pixels decided by colour and the hint's constraints, :func:`alpha_from_mask`, :func:`mattekit.tasks.cutout.assemble`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import hints, ops
from . import cutout
from .cutout import CutoutOptions, assemble
from ..errors import InputError
from .registry import Legacy, OptionError, Port, Task, option

DEVICE_HELP = "auto (default), cpu, cuda, cuda:N or mps"
WEIGHTS_HELP = "use this weights file instead of the catalog's download"


@dataclass
class SegmentOptions(CutoutOptions):
    """Background removal: which model, how the mask becomes an alpha, and the cut-out options."""

    model: str | None = option(None, "segmentation model (see `mattekit models list`); default: the catalog's",
                               model="segment")
    weights: str | None = option(None, WEIGHTS_HELP, path=True, hosts=("cli", "api"))
    device: str = option("auto", DEVICE_HELP)
    refine: bool = option(True, "edge-aware upsampling of the network's mask (off: plain bilinear)")
    matting: bool = option(True, "matte the mask's uncertain edge into a soft alpha (hair, fur); off: the "
                           "mask is the alpha and colours are not decontaminated")
    box: str | None = option(None, "the subject lies in this box: x0,y0,x1,y1 in pixels (x1, y1 exclusive); the "
                             "model runs on the box's region and nothing outside it is kept", label="Box")
    point: str | None = option(None, "a point x,y on the subject (repeatable): only the parts connected to these "
                               "points are kept", repeat=True, label="Include points")
    exclude: str | None = option(None, "a point x,y not on the subject (repeatable): the part there is left out",
                                 repeat=True, label="Exclude points")
    colour: bool = option(True, "with a hint: where the network is unsure, decide by the colours of the subject "
                          "and the background (GrabCut inside the hint)", label="Colour refinement")

    def __post_init__(self):
        """The hint's texts are checked here, so a malformed box or point is refused before any work."""
        try:
            if self.box is not None:
                hints.parse_box(self.box)
            hints.parse_points(self.point)
            hints.parse_points(self.exclude)
        except InputError as exc:
            raise OptionError(str(exc)) from None


def refine_mask(image: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Upsample a low-resolution probability map (h x w) to the image (H x W x 3) following its edges.

    Bilinear upsampling followed by a colour guided filter whose radius is three times the
    upsampling factor, so edges land on the photo's edges rather than on the network's grid.
    Returns float32 H x W in [0,1].
    """
    height, width = image.shape[:2]
    up = ops.resize(low, height, width, "bilinear")
    factor = max(height / low.shape[0], width / low.shape[1])
    if factor <= 1.0:
        return np.clip(up, 0.0, 1.0)
    radius = max(2, round(3 * factor))
    subsample = max(1, round(factor / 4))
    out = ops.guided_filter(image, up, radius, eps=1e-4, subsample=subsample)
    return np.clip(out, 0.0, 1.0)


def mask_from_prediction(image: np.ndarray, prediction, refine: bool = True) -> np.ndarray:
    """The network's prediction (1 x 1 x h x w tensor or h x w array, [0,1]) as a full-resolution
    subject mask for ``image`` (H x W x 3|4): float32 H x W in [0,1]."""
    low = prediction if isinstance(prediction, np.ndarray) else prediction[0, 0].float().cpu().numpy()
    rgb = image[..., :3]
    if refine:
        return refine_mask(rgb, low)
    return np.clip(ops.resize(low, *rgb.shape[:2], "bilinear"), 0.0, 1.0)


def alpha_from_mask(image: np.ndarray, mask: np.ndarray, matting: bool = True) -> np.ndarray:
    """The subject's alpha (H x W) for a full-resolution mask: its edge matted, or the mask itself."""
    if not matting:
        return mask
    from . import matte

    return matte.alpha_from_mask(image[..., :3], mask)


def predict_mask(predictor, image: np.ndarray, refine: bool = True) -> np.ndarray:
    """Subject mask of ``image`` (H x W x 3|4 float32 [0,1]) by ``predictor``: float32 H x W in [0,1]."""
    return mask_from_prediction(image, predictor(predictor.prepare(image)), refine)


HINT_MASK = Port("hint_mask", "mask", optional=True,
                 help="a rough mask of the subject (a selection or scribble; white = subject): the model looks there")


def hint_of(inputs: dict, options: SegmentOptions) -> hints.Hint:
    """The user's hint (box, points, hint mask) for ``inputs["image"]``, checked against its size."""
    height, width = inputs["image"].shape[:2]
    return hints.make(height, width, options.box, options.point, options.exclude, inputs.get("hint_mask"))


def _prepare(models, inputs: dict, options: SegmentOptions) -> tuple:
    """The network input for the image, or for the hinted region of it (context: that region)."""
    hint = hint_of(inputs, options)
    image = inputs["image"]
    if not hint:
        return models["model"].prepare(image), None
    top, left, bottom, right = hints.region(hint, *image.shape[:2])
    return models["model"].prepare(image[top:bottom, left:right]), (hint, (top, left, bottom, right))


def _finish(models, inputs, options: SegmentOptions, context, prediction) -> dict:
    image = inputs["image"]
    if context is None:
        mask = mask_from_prediction(image, prediction, options.refine)
    else:
        hint, (top, left, bottom, right) = context
        crop = image[top:bottom, left:right, :3]
        mask = np.zeros(image.shape[:2], np.float32)
        mask[top:bottom, left:right] = mask_from_prediction(crop, prediction, options.refine)
        if options.colour:
            region = mask[top:bottom, left:right]
            region[...] = hints.colour_refine(crop, region, hints.within(hint, top, left, bottom, right))
        mask = hints.constrain(mask, hint)
    alpha = alpha_from_mask(image, mask, options.matting)
    if not options.matting:
        options = _plain(options)
    return {"result": assemble(image, alpha, options, backdrop=inputs.get("backdrop"))}


def _plain(options: SegmentOptions) -> SegmentOptions:
    """Without matting the colours are the photo's own (no decontamination)."""
    from dataclasses import replace

    return replace(options, decontaminate=False)


TASK = Task(
    name="remove",
    summary="Cut the subject out of each image: an RGBA cut-out, its alpha, or a composite.",
    options=SegmentOptions,
    inputs=(Port("image", "image", (3, 4)), cutout.BACKDROP, HINT_MASK),
    outputs=(cutout.RESULT,),
    prepare=_prepare,
    finish=_finish,
    streams=True,
    suffix=lambda options: cutout.suffix_for(options, "_cutout", "_mask"),
    output_format=lambda options, source, named: cutout.format_for(options, "", named),  # PNG (or a named JPEG)
    menu="Remove _Background...",
    api="remove_background",
    legacy=(Legacy("--mask", "--result alpha", {"result": "alpha"}),
            cutout.OLD_BG),
)
