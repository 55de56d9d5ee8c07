"""The subject a user's hint points at, shared by tasks ``remove`` and ``select-subject`` (a module of this
folder that declares no task): their options (:class:`SubjectOptions`), the hint, the models that answer it and the
subject's alpha. Arrays as the registry's (H x W x C sRGB images in [0, 1], H x W alphas).

A hint on the subject is answered by the hint model (SAM 2.1: the one ``hint_model`` names, else the catalog's
``prompt`` default), which alone answers it (:func:`mattekit.subject.prompting.prompted_mask`). With ``hint_model`` none
(or exclude points alone) the segmentation network answers: a box alone, or include points alone, keep the whole
image's answer when it holds the subject they point at, and otherwise the network answers their region
(:func:`whole_first`); with another hint the segmentation network runs on the hinted region (:func:`mattekit.subject.masks.hinted_input`; with a box
also on the whole image, in the same network call, whose answer joins the region's when its subject lies in the box:
:func:`mattekit.subject.hints.with_plain_answer`). Either way the mask's edge is matted. A trimap-free matting network's
alpha is the answer as it is.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..subject import hints, masks, prompting
from ..errors import InputError
from ..options import NONE, OptionError, option
from .common import WEIGHTS_PARSE, ModelOptions
from .registry import Port, segment_or_matte


@dataclass
class SubjectOptions(ModelOptions):
    """The subject's alpha: which model, how its mask becomes an alpha, and the user's hint."""

    model: str | None = option(None, "segmentation model, or a trimap-free matting model (people, birefnet-matting) "
                               "whose soft alpha is used as it is (see `mattekit models list`); default: the "
                               "catalog's segmentation model", model=("segment", "matte"))
    refine: bool = option(True, "edge-aware upsampling of the network's mask (off: plain bilinear)")
    matting: bool = option(True, "matte the mask's uncertain edge into a soft alpha (hair, fur); off: the "
                           "mask is the alpha and colours are not decontaminated")
    box: str | None = option(None, "the subject lies in this box: x0,y0,x1,y1 in pixels (x1, y1 exclusive); nothing "
                             "outside it is kept (answered by the hint model; with --hint-model none, a box alone gives the "
                             "whole image's answer cut to the box when its subject lies in the box, else the model's "
                             "answer on the box's region)", label="Box")
    box_focus: bool = option(False, "with a box and --hint-model none: the model always looks at the box's region, magnified, and the "
                             "whole image's answer joins it when its subject lies in the box (finer on a small subject; "
                             "may take clutter in the box for the subject)", label="Focus on the box")
    point: str | None = option(None, "a point x,y on the subject (repeatable): only the parts connected to these "
                               "points are kept", repeat=True, label="Include points")
    exclude: str | None = option(None, "a point x,y not on the subject (repeatable): the part there is left out",
                                 repeat=True, label="Exclude points")
    colour: bool = option(True, "with a hint the model answers on its region: where the network is unsure, decide "
                          "by the colours of the subject and the background (GrabCut inside the hint)",
                          label="Colour refinement")
    hint_model: str | None = option(
        None, "the promptable model (SAM 2.1, see `mattekit models list`) that answers the hint (a box, include "
        "points or a hint mask; exclude points with them); default: the catalog's, its weights fetched on first use; "
        "none: the segmentation model answers it", model="prompt",
        none="the segmentation model answers the hint",
        missing="use --hint-model none to answer the hint with the segmentation model")
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

    def check_image(self, height: int, width: int) -> None:
        """InputError unless the box and points fit an image of ``height`` x ``width`` (its header's size), so that
        a point outside it is refused before any model loads."""
        hints.make(height, width, self.box, self.point, self.exclude)


HINT_MASK = Port("hint_mask", "mask", optional=True,
                 help="a rough mask of the subject (a selection or scribble; white = subject): the model looks there")


def hint_of(inputs: dict, options: SubjectOptions) -> hints.Hint:
    """The user's hint (box, points, hint mask) for ``inputs["image"]``, checked against its size."""
    height, width = inputs["image"].shape[:2]
    return hints.make(height, width, options.box, options.point, options.exclude, inputs.get("hint_mask"))


def prompted(options: SubjectOptions, given: set[str]) -> bool:
    """Whether the hint model (the named one, else the catalog's) answers: ``hint_model`` is not ``none`` and the
    hint says where the subject is (a box, an include point or a hint mask: :func:`mattekit.subject.prompting.answerable`)."""
    return options.hint_model != NONE and (options.box is not None or bool(options.point) or "hint_mask" in given)


def needs(options: SubjectOptions, given: set[str]) -> dict[str, str]:
    return {"hint_model": "prompt"} if prompted(options, given) else {"model": segment_or_matte(options.model)}


def whole_first(hint: hints.Hint, options: SubjectOptions, task: str) -> bool:
    """Whether the network first answers the whole image for the hint (:func:`_whole_first`): a box alone (with
    exclude points or none; no include point nor hint mask, which say where in the box to look, and no
    ``box_focus``), or include points alone on a segmentation network (no box nor hint mask)."""
    if hint.mask is not None:
        return False
    if hint.box is not None:
        return not hint.include and not options.box_focus
    return bool(hint.include) and task == "segment"


def _whole_first(models, inputs, options: SubjectOptions, hint: hints.Hint, prediction):
    """The alpha for a hint of :func:`whole_first` from the network's answer on the whole image (``prediction``)
    when that answer holds the subject the hint points at (:func:`mattekit.subject.hints.picked`): a box cuts it (nothing
    outside the box nor at an exclude point's part), include points keep its parts at them. Otherwise that answer
    picked another subject, and the network answers the hint's region in a second call: the box's, or a window
    around the points (:func:`mattekit.subject.hints.around`). A matting network's alpha is always cut."""
    image = inputs["image"]
    if models["model"].entry.task != "segment":
        return hints.constrain(alpha(models, inputs, options, None, prediction), hint, select=False)
    height, width = image.shape[:2]
    upsampling = masks.upsampling_of(models)
    region = (0, 0, height, width)
    if hints.picked(prediction[0, 0].float().cpu().numpy(), hint, height, width):
        mask = masks.mask_from_prediction(image, prediction, options.refine, upsampling=upsampling)
        if hint.box is not None:
            found = masks.alpha_from_mask(image, mask, options.matting, in_place=True,
                                          detail=masks.detail_of(height, width, prediction))
            return hints.constrain(found, hint, select=False)
        mask = masks.hint_finished(image, mask, (hint, region), colour=options.colour)
    else:
        look = hint if hint.box is not None else hints.around(hint, height, width)
        x, (_, region) = masks.hinted_input(models["model"], image, look)
        prediction = models["model"](x)
        mask = masks.hinted_mask(image, prediction, options.refine, (hint, region), colour=options.colour,
                                 upsampling=upsampling)
    top, left, bottom, right = region
    return masks.alpha_from_mask(image, mask, options.matting, in_place=True,
                                 detail=masks.detail_of(bottom - top, right - left, prediction))


def prepare(models, inputs: dict, options: SubjectOptions) -> tuple:
    """The network input for the image, or for the hinted region of it (context: the hint and that region, None for
    the whole image), 1 x C x h x w; with a box and more (include points, a hint mask, ``box_focus``) and a segmentation model,
    2 x C x h x w: the whole image's input after the region's, so the runner infers both in one call (:func:`alpha`
    joins their answers), unless the region is the whole image or the model's input size follows the image's and
    the two differ in shape; for a hint of :func:`whole_first` the whole image's input (context: the hint and None);
    with the hint model, no network input (context: the hint)."""
    hint = hint_of(inputs, options)
    if "hint_model" in models:
        return None, hint
    predictor = models["model"]
    if whole_first(hint, options, predictor.entry.task):
        return predictor.prepare(inputs["image"]), (hint, None)
    x, context = masks.hinted_input(predictor, inputs["image"], hint)
    if hint.box is not None and predictor.entry.task == "segment" and not _whole(context, inputs["image"]):
        import torch  # here, as runtime: a bad input is refused before torch is imported (tests/test_reliability.py)

        from ..runtime import input_size
        if tuple(input_size(predictor.entry, *inputs["image"].shape[:2])) == tuple(x.shape[2:]):
            x = torch.cat([x, predictor.prepare(inputs["image"])])
    return x, context


def _whole(context, image) -> bool:
    """Whether the hinted region of ``context`` (hint, (top, left, bottom, right)) is the whole ``image``."""
    return context[1] == (0, 0, *image.shape[:2])


def alpha(models, inputs, options: SubjectOptions, context, prediction):
    """The subject's alpha, H x W float32 in [0, 1]: the hint model's mask, or the network's, matted at its edge;
    a matting network's own alpha."""
    image = inputs["image"]
    if "hint_model" not in models and context is not None and context[1] is None:  # whole_first
        return _whole_first(models, inputs, options, context[0], prediction)
    if "hint_model" in models:
        mask = prompting.prompted_mask(models["hint_model"].net, image, context)
        found = prompting.keep_allowed(masks.alpha_from_mask(image, mask, options.matting, in_place=True), context)
    elif "model" in models and models["model"].entry.task == "matte":  # a matting network's alpha is the answer: resized as the
        # model's own pipeline does (as `matte --model` gives it), neither rounded, refined nor matted again
        found = masks.hinted_mask(image, prediction, False, context, soft=True, upsampling=masks.upsampling_of(models))
    else:
        mask = masks.hinted_mask(image, prediction, options.refine, context, colour=options.colour,
                                 upsampling=masks.upsampling_of(models))
        if context is not None and context[0].box is not None:  # the whole image's answer too, for what the box's
            # region cut off or lost (hints.with_plain_answer): prepare's second row, the one row when the region is
            # the whole image, or a second run where its shape differed from the region's
            plain = (masks.mask_from_prediction(image, prediction[-1:], options.refine, upsampling=masks.upsampling_of(models))
                     if len(prediction) == 2 or _whole(context, image)
                     else masks.predict_mask(models["model"], image, options.refine))
            mask = hints.with_plain_answer(mask, plain, context[0])
        seen = image.shape[:2] if context is None or context[1] is None else (context[1][2] - context[1][0],
                                                                            context[1][3] - context[1][1])
        found = masks.alpha_from_mask(image, mask, options.matting, in_place=True,
                                      detail=masks.detail_of(*seen, prediction))
    return found
