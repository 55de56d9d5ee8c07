"""Background removal (task ``remove``): the subject's mask from a segmentation network, its edge
matted into a soft alpha, and the cut-out the user asked for.

Stages (the predictor is passed in as ``models["model"]``):
prepare -> the network input (of the hinted region when the user gave a hint: :mod:`mattekit.hints`);
infer -> the network; finish -> the mask at full resolution (:func:`mattekit.masks.hinted_mask`), its
uncertain edge matted (:func:`mattekit.masks.alpha_from_mask`), the cut-out (:func:`mattekit.cutout.assemble`).
A trimap-free matting network (catalog task "matte": MODNet, BiRefNet-matting) gives the alpha itself, resized as its
own pipeline does and only constrained by a hint.
With ``hint_model`` (SAM 2.1) and a hint on the subject, the hint model alone answers it
(``models["hint_model"]``, :func:`mattekit.prompting.prompted_mask`, in ``finish``); the edge is matted the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .. import cutout, hints, masks, prompting
from ..errors import InputError
from .registry import (BACKDROP, RESULT, WEIGHTS_PARSE, CutoutOptions, ModelOptions, OptionError, Port,
                       Task, option, segment_or_matte)


@dataclass
class SegmentOptions(ModelOptions, CutoutOptions):
    """Background removal: which model, how the mask becomes an alpha, and the cut-out options."""

    model: str | None = option(None, "segmentation model, or a trimap-free matting model (people, birefnet-matting) "
                               "whose soft alpha is used as it is (see `mattekit models list`); default: the "
                               "catalog's segmentation model", model=("segment", "matte"))
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
    hint_model: str | None = option(
        None, "answer the hint (a box, include points or a hint mask; exclude points with them) with this promptable "
        "model (SAM 2.1, see `mattekit models list`) instead of the segmentation model", model="prompt",
        missing="leave out --hint-model to answer the hint with the segmentation model")
    hint_weights: str | None = option(None, "use this hint model weights file instead of the catalog's download",
                                      path=True, parse=WEIGHTS_PARSE, hosts=("cli", "api"))

    def __post_init__(self):
        """The hint's texts are checked here, so a malformed box or point is refused before any work."""
        try:
            if self.box is not None:
                hints.parse_box(self.box)
            hints.parse_points(self.point)
            hints.parse_points(self.exclude)
        except InputError as exc:
            raise OptionError(str(exc)) from None


HINT_MASK = Port("hint_mask", "mask", optional=True,
                 help="a rough mask of the subject (a selection or scribble; white = subject): the model looks there")


def hint_of(inputs: dict, options: SegmentOptions) -> hints.Hint:
    """The user's hint (box, points, hint mask) for ``inputs["image"]``, checked against its size."""
    height, width = inputs["image"].shape[:2]
    return hints.make(height, width, options.box, options.point, options.exclude, inputs.get("hint_mask"))


def prompted(options: SegmentOptions, given: set[str]) -> bool:
    """Whether the hint model answers: one is named and the hint says where the subject is (a box, an include
    point or a hint mask: :func:`mattekit.prompting.answerable`)."""
    return bool(options.hint_model) and (options.box is not None or bool(options.point) or "hint_mask" in given)


def _needs(options: SegmentOptions, given: set[str]) -> dict[str, str]:
    return {"hint_model": "prompt"} if prompted(options, given) else {"model": segment_or_matte(options.model)}


def _prepare(models, inputs: dict, options: SegmentOptions) -> tuple:
    """The network input for the image, or for the hinted region of it (context: that region); with the
    hint model, no network input (context: the hint)."""
    hint = hint_of(inputs, options)
    if "hint_model" in models:
        return None, hint
    return masks.hinted_input(models["model"], inputs["image"], hint)


def _finish(models, inputs, options: SegmentOptions, context, prediction) -> dict:
    """The mask, its alpha (H x W) and the cut-out; without matting the colours are the photo's own."""
    image = inputs["image"]
    if "hint_model" in models:
        mask = prompting.prompted_mask(models["hint_model"].net, image, context)
        alpha = prompting.keep_allowed(masks.alpha_from_mask(image, mask, options.matting, in_place=True), context)
    elif "model" in models and models["model"].entry.task == "matte":  # a matting network's alpha is the answer: resized as the
        # model's own pipeline does (as `matte --model` gives it), neither rounded, refined nor matted again
        alpha = masks.hinted_mask(image, prediction, False, context, soft=True, upsampling=masks.upsampling_of(models))
    else:
        mask = masks.hinted_mask(image, prediction, options.refine, context, colour=options.colour,
                                 upsampling=masks.upsampling_of(models))
        alpha = masks.alpha_from_mask(image, mask, options.matting, in_place=True)
    looks = cutout.CutoutOptions.of(options)
    if not options.matting:
        looks = replace(looks, decontaminate=False)
    return {"result": cutout.assemble(image, alpha, looks, backdrop=inputs.get("backdrop"))}


TASK = Task(
    name="remove",
    summary="Cut the subject out of each image: an RGBA cut-out, its alpha, or a composite.",
    options=SegmentOptions,
    inputs=(Port("image", "image", (3, 4), integers=True), BACKDROP, HINT_MASK),
    outputs=(RESULT,),
    prepare=_prepare,
    finish=_finish,
    needs=_needs,
    streams=True,
    suffix=lambda options: cutout.suffix_for(cutout.CutoutOptions.of(options), "_cutout"),
    # PNG (or a named JPEG), whatever the photo's format:
    output_format=lambda options, source, named: cutout.format_for(cutout.CutoutOptions.of(options), "", named),
    menu="Remove _Background...",
    api="remove_background",
)
