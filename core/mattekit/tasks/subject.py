"""The subject a user's hint points at, shared by tasks ``remove`` and ``select-subject`` (a module of this
folder that declares no task): their options (:class:`SubjectOptions`), the hint, the models that answer it and the
subject's alpha. Arrays as the registry's (H x W x C sRGB images in [0, 1], H x W alphas).

A hint on the subject is answered by the hint model (SAM 2.1: the one ``hint_model`` names, else the catalog's
``prompt`` default), which alone answers it (:func:`mattekit.prompting.prompted_mask`). With ``hint_model`` none
(or exclude points alone) the segmentation network answers: a box alone cuts the whole image's answer when that
answer's subject lies in the box, and otherwise the network answers the box's region (:func:`box_alone`); with
another hint the segmentation network runs on the hinted region (:func:`mattekit.masks.hinted_input`; with a box
also on the whole image, in the same network call, whose answer joins the region's when its subject lies in the box:
:func:`mattekit.hints.with_plain_answer`). Either way the mask's edge is matted. A trimap-free matting network's
alpha is the answer as it is.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import hints, masks, prompting
from ..errors import InputError
from .registry import NONE, WEIGHTS_PARSE, ModelOptions, OptionError, Port, option, segment_or_matte


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
    hint says where the subject is (a box, an include point or a hint mask: :func:`mattekit.prompting.answerable`)."""
    return options.hint_model != NONE and (options.box is not None or bool(options.point) or "hint_mask" in given)


def needs(options: SubjectOptions, given: set[str]) -> dict[str, str]:
    return {"hint_model": "prompt"} if prompted(options, given) else {"model": segment_or_matte(options.model)}


def box_alone(hint: hints.Hint, options: SubjectOptions) -> bool:
    """Whether the hint is a box alone: with exclude points or none, no include point nor hint mask (which say where
    in the box to look), and no ``box_focus``. The network first answers the whole image (:func:`_box_alone`)."""
    return hint.box is not None and not hint.include and hint.mask is None and not options.box_focus


def _box_alone(models, inputs, options: SubjectOptions, hint: hints.Hint, prediction):
    """The alpha for a box alone from the network's answer on the whole image: that answer cut to the box (nothing
    outside it nor at an exclude point's part) when at least :data:`mattekit.hints.PICKED` of its subject lies in
    the box, as without a box; otherwise the whole image's answer picked another subject, and the network answers
    the box's region (a second call, as with ``box_focus``). A matting network's alpha is always cut."""
    image = inputs["image"]
    if models["model"].entry.task == "segment":
        upsampling = masks.upsampling_of(models)
        plain = masks.mask_from_prediction(image, prediction, options.refine, upsampling=upsampling)
        if hints.share_in_box(plain, hint) < hints.PICKED:
            x, context = masks.hinted_input(models["model"], image, hint)
            region = models["model"](x)
            mask = masks.hinted_mask(image, region, options.refine, context, colour=options.colour,
                                     upsampling=upsampling)
            top, left, bottom, right = context[1]
            return masks.alpha_from_mask(image, mask, options.matting, in_place=True,
                                         detail=masks.detail_of(bottom - top, right - left, region))
        found = masks.alpha_from_mask(image, plain, options.matting, in_place=True,
                                      detail=masks.detail_of(*image.shape[:2], prediction))
    else:
        found = alpha(models, inputs, options, None, prediction)
    return hints.constrain(found, hint, select=False)


def prepare(models, inputs: dict, options: SubjectOptions) -> tuple:
    """The network input for the image, or for the hinted region of it (context: the hint and that region, None for
    the whole image), 1 x C x h x w; with a box and more (include points, a hint mask, ``box_focus``) and a segmentation model,
    2 x C x h x w: the whole image's input after the region's, so the runner infers both in one call (:func:`alpha`
    joins their answers), unless the region is the whole image or the model's input size follows the image's and
    the two differ in shape; for a box alone the whole image's input (context: the hint and None, :func:`box_alone`);
    with the hint model, no network input (context: the hint)."""
    hint = hint_of(inputs, options)
    if "hint_model" in models:
        return None, hint
    predictor = models["model"]
    if box_alone(hint, options):
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


def _around_missed_points(models, image, options: SubjectOptions, context, prediction) -> tuple:
    """(context, prediction) of the network's answer for the hint of ``context``: for include points alone (no box
    nor hint mask) of which one lands on the whole image's background, the answer on a window around the points
    (:func:`mattekit.hints.around`: a second network call), where the subject the user means can lead; otherwise the
    given ones."""
    hint = context[0]
    if hint.box is not None or hint.mask is not None or not hint.include:
        return context, prediction
    plain = masks.mask_from_prediction(image, prediction, options.refine, upsampling=masks.upsampling_of(models))
    if all(plain[y, x] >= 0.5 for x, y in hint.include):
        return context, prediction
    x, (_, region) = masks.hinted_input(models["model"], image, hints.around(hint, *image.shape[:2]))
    return (hint, region), models["model"](x)


def alpha(models, inputs, options: SubjectOptions, context, prediction):
    """The subject's alpha, H x W float32 in [0, 1]: the hint model's mask, or the network's, matted at its edge;
    a matting network's own alpha."""
    image = inputs["image"]
    if "hint_model" not in models and context is not None and context[1] is None:  # a box alone (box_alone)
        return _box_alone(models, inputs, options, context[0], prediction)
    if "hint_model" in models:
        mask = prompting.prompted_mask(models["hint_model"].net, image, context)
        found = prompting.keep_allowed(masks.alpha_from_mask(image, mask, options.matting, in_place=True), context)
    elif "model" in models and models["model"].entry.task == "matte":  # a matting network's alpha is the answer: resized as the
        # model's own pipeline does (as `matte --model` gives it), neither rounded, refined nor matted again
        found = masks.hinted_mask(image, prediction, False, context, soft=True, upsampling=masks.upsampling_of(models))
    else:
        if context is not None:
            context, prediction = _around_missed_points(models, image, options, context, prediction)
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
