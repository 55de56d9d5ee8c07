"""The subject's answer for a user's hint, from a network's prediction or the hint model's.

A hint answered by a segmentation network: a box alone, or include points alone, first take the whole image's
answer and keep it when it holds the subject they point at (:func:`whole_first`, :func:`answer_from_whole`); any
other hint runs the network on its region (:func:`network_input`; with a box also on the whole image, in the same
call, whose answer joins the region's when its subject lies in the box: :func:`network_answer`,
:func:`mattekit.subject.hints.with_plain_answer`). Either way the answer is a mask (:class:`Answer`) whose edge the
finish mattes (:mod:`mattekit.finish.edge`). A trimap-free matting network's alpha is the answer as it is. A hint
answered by the hint model (SAM 2.1): :func:`prompted_alpha`. The region's input and its prediction pasted back into
the photo, decided by colours where the network is unsure and constrained by the hint: :func:`hinted_input`,
:func:`hinted_mask`; without a hint: :func:`predict_mask`.

Images are sRGB H x W x 3|4 (float32 in [0,1], or uint8/uint16); predictions N x 1 x h x w tensors (or an h x w
array without a hint) in [0,1]; alphas H x W float32 in [0,1]. A predictor is a loaded model
(:class:`mattekit.predictor.Predictor`): ``prepare(image)``, a call and what it says of its model (``task``, ``net_size``). A context is
what :func:`network_input` returns beside the input: None for the whole image without a hint, else the hint and
the region answered (:class:`mattekit.subject.hints.Hinted`; region None for a hint of :func:`whole_first`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..finish.device import device_of
from ..finish.edge import alpha_from_mask
from ..finish.refine import mask_from_prediction
from ..ops.resizing import prediction_array
from ..ops.pixels import unit_float
from . import hints, prompting
from .colour_model import colour_refine


def whole_first(hint: hints.Hint, task: str, box_focus: bool = False) -> bool:
    """Whether a network of ``task`` ("segment" or "matte") first answers the whole image for ``hint``: a box alone
    (with exclude points or none; no include point nor hint mask, which say where in the box to look, and no
    ``box_focus``), or include points alone on a segmentation network (no box nor hint mask)."""
    if hint.mask is not None:
        return False
    if hint.box is not None:
        return not hint.include and not box_focus
    return bool(hint.include) and task == "segment"


def network_input(predictor, image: np.ndarray, hint: hints.Hint, box_focus: bool = False) -> tuple:
    """(the network input, its context) for ``hint`` on ``image``: for a hint of :func:`whole_first` the whole
    image's input, 1 x C x h x w; else the hinted region's (:func:`hinted_input`), and with a
    box and more (include points, a hint mask, ``box_focus``) on a segmentation network 2 x C x h x w: the whole
    image's input after the region's, so that one network call answers both (:func:`network_answer` joins them),
    unless the region is the whole image or the network's input size follows the image's and the two differ."""
    if whole_first(hint, predictor.task, box_focus):
        return predictor.prepare(image), hints.Hinted(hint, None)
    x, context = hinted_input(predictor, image, hint)
    if hint.box is not None and predictor.task == "segment" and not _covers_image(context, image):
        from ..engines import stack_inputs

        if tuple(predictor.net_size(*image.shape[:2])) == tuple(x.shape[2:]):
            x = stack_inputs([x, predictor.prepare(image)], "cpu")
    return x, context


def _covers_image(context: hints.Hinted, image: np.ndarray) -> bool:
    """Whether the hinted region of ``context`` is the whole ``image``."""
    return context.region == hints.Box(0, 0, image.shape[1], image.shape[0])


class Answer(NamedTuple):
    """A segmentation or matting network's answer for a hint as the photo's subject mask, and what its finish
    (:func:`mattekit.finish.edge.alpha_from_mask`) needs: ``mask`` H x W float32 in [0,1]; ``detail``: photo px per
    network px where it was answered (:func:`detail_of`); ``soft``: a matting network's alpha,
    taken as it is (its edge is not matted again); ``cut``: the hint that cuts the finished alpha (nothing outside the
    box nor at an exclude point's part: :func:`mattekit.subject.hints.constrain`, nothing selected), or None."""

    mask: np.ndarray
    detail: float = 1.0
    soft: bool = False
    cut: hints.Hint | None = None


def detail_of(height: int, width: int, prediction) -> float:
    """Photo px per network px for a prediction (1 x 1 x h x w tensor or h x w array) of a region of height x
    width px: the larger of the two sides' ratios (the coarser one)."""
    low = prediction.shape[-2:]
    return max(height / low[0], width / low[1])


def answer_from_whole(
    predictor, image: np.ndarray, hint: hints.Hint, prediction, refine: bool = True, colour: bool = True, device=None
) -> Answer:
    """The answer for a hint of :func:`whole_first` from ``predictor``'s answer on the whole image (``prediction``)
    when that answer holds the subject the hint points at (:func:`mattekit.subject.hints.picked`): a box cuts it
    (nothing outside the box nor at an exclude point's part, once its edge is matted), include points keep its parts
    at them. Otherwise that answer picked another subject, and the network answers the hint's region in a second
    call: the box's, or a window around the points (:func:`mattekit.subject.hints.around`). A matting network's alpha
    is always cut. ``refine``, ``colour``, ``device``: as for :func:`network_answer`."""
    if predictor.task != "segment":
        whole = network_answer(predictor, image, None, prediction, refine, colour, device)
        return whole._replace(cut=hint)
    height, width = image.shape[:2]
    upsampling = upsampling_of(predictor)
    region = hints.Box(0, 0, width, height)
    low = prediction_array(prediction)  # h x w, read once for the check and the mask
    if hints.picked(low, hint, height, width):
        detail = detail_of(height, width, prediction)
        cut = hint if hint.box is not None else None
        context = None if cut is not None else hints.Hinted(hint, region)
        mask = hinted_mask(image, low, refine, context, colour=colour, upsampling=upsampling, device=device)
        return Answer(mask, detail, cut=cut)
    look = hint if hint.box is not None else hints.around(hint, height, width)
    x, looked = hinted_input(predictor, image, look)
    prediction = predictor(x)
    detail = detail_of(looked.region.height, looked.region.width, prediction)
    return Answer(
        hinted_mask(
            image,
            prediction,
            refine,
            hints.Hinted(hint, looked.region),
            colour=colour,
            upsampling=upsampling,
            device=device,
        ),
        detail,
    )


def network_answer(
    predictor, image: np.ndarray, context, prediction, refine: bool = True, colour: bool = True, device=None
) -> Answer:
    """The subject's answer from the network's ``prediction`` of :func:`network_input`'s input with its ``context``:
    the mask (``refine``: edge-aware upsampling, else plain) with ``colour`` deciding by colours where the network is
    unsure inside the hint; a matting network's alpha as it is (``soft``), resized as the model's own pipeline does
    (neither rounded nor refined). ``predictor`` None: a segmentation prediction made without a catalog model (no
    hint), resized bilinearly. ``device``: where the mask is refined (:func:`mattekit.finish.device.device_of`; None:
    here). Its edge is matted by the finish (:func:`mattekit.tasks.hinted_subject.alpha`)."""
    if context is not None and context.region is None:
        return answer_from_whole(predictor, image, context.hint, prediction, refine, colour, device)
    upsampling = upsampling_of(predictor)
    if predictor is not None and predictor.task == "matte":
        return Answer(hinted_mask(image, prediction, False, context, soft=True, upsampling=upsampling), soft=True)
    seen = image.shape[:2] if context is None else (context.region.height, context.region.width)
    detail = detail_of(*seen, prediction)
    mask = hinted_mask(image, prediction, refine, context, colour=colour, upsampling=upsampling, device=device)
    if context is not None and context.hint.box is not None:  # the whole image's answer too, for what the box's
        # region cut off or lost (hints.with_plain_answer): network_input's second row, the one row when the region
        # is the whole image, or a second run where its shape differed from the region's
        whole = (
            prediction[-1:]
            if len(prediction) == 2 or _covers_image(context, image)
            else predictor(predictor.prepare(image))
        )
        plain = mask_from_prediction(image, whole, refine, upsampling=upsampling, device=device)
        mask = hints.with_plain_answer(mask, plain, context.hint)
    return Answer(mask, detail)


def edge_matted(predictor, matting: bool) -> bool:
    """Whether a segmentation mask's edge is matted: ``matting`` asks for it and ``predictor``'s catalog entry (None:
    no catalog model) keeps it on (``edge_matting``, measured per model: docs/quality.md "The default's rule")."""
    return matting and (predictor is None or predictor.edge_matting)


def prompted_alpha(net, image: np.ndarray, hint: hints.Hint, matting: bool = True) -> np.ndarray:
    """The subject's alpha for ``hint`` answered by the hint model ``net`` (SAM 2.1,
    :func:`mattekit.subject.prompting.prompted_mask`): its mask's edge matted (``matting``), nothing kept where the
    hint allows no subject."""
    mask = prompting.prompted_mask(net, image, hint)
    return prompting.keep_allowed(alpha_from_mask(image, mask, matting, in_place=True), hint)


def upsampling_of(predictor) -> str:
    """How ``predictor``'s prediction is resized to the photo (its :attr:`~mattekit.predictor.Predictor.upsampling`);
    "bilinear" for None (a prediction made without a catalog model)."""
    return predictor.upsampling if predictor is not None else "bilinear"


def predict_mask(predictor, image: np.ndarray, refine: bool = True) -> np.ndarray:
    """Subject mask of ``image`` (H x W x 3|4 float32 [0,1]) by ``predictor``: float32 H x W in [0,1]."""
    return mask_from_prediction(
        image,
        predictor(predictor.prepare(image)),
        refine,
        upsampling=predictor.upsampling,
        device=device_of(predictor, image),
    )


def hinted_input(predictor, image: np.ndarray, hint: hints.Hint) -> tuple:
    """(the network input for ``image`` or for its region the ``hint`` outlines, the context that
    :func:`hinted_mask` takes: the hint and that region (:class:`mattekit.subject.hints.Hinted`), None without a
    hint)."""
    if not hint:
        return predictor.prepare(image), None
    region = hints.region(hint, *image.shape[:2])
    return predictor.prepare(image[region.slices]), hints.Hinted(hint, region)


def hinted_mask(
    image: np.ndarray,
    prediction,
    refine: bool,
    context,
    colour: bool = False,
    soft: bool = False,
    upsampling: str = "bilinear",
    device=None,
) -> np.ndarray:
    """The subject mask H x W float32 [0,1] of ``image`` from the network's ``prediction`` of
    :func:`hinted_input`'s input: pasted back into the image and finished by the hint (:func:`hint_finished`).
    ``soft``: the prediction is a matting model's alpha (not rounded; see
    :func:`mattekit.finish.refine.mask_from_prediction`); ``device``:
    where a GPU refines it."""
    seen = image if context is None else image[context.region.slices]
    answer = mask_from_prediction(seen, prediction, refine, soft, upsampling, device)
    if context is None:
        return answer
    if answer.shape != image.shape[:2]:  # the region's answer, pasted into the photo
        mask = np.zeros(image.shape[:2], np.float32)
        mask[context.region.slices] = answer
        answer = mask
    return hint_finished(image, answer, context, colour)


def hint_finished(image: np.ndarray, mask: np.ndarray, context: hints.Hinted, colour: bool = False) -> np.ndarray:
    """``mask`` (H x W float32 [0,1], the network's answer for the region of ``context`` (its hint and region),
    zero outside it) with ``colour`` decided by a colour model where the network is unsure inside the
    region (:func:`mattekit.subject.colour_model.colour_refine`, in place), and constrained by the hint (a new array)."""
    hint, crop = context.hint, context.region
    region = mask[crop.slices]
    # Include points pick among the network's parts only without a box or hint mask (which already say
    # where the subject is; the network may split one subject in parts, DAVIS libby) and only when each
    # lands on a part; otherwise they steer the colour model and drop nothing. (On the tuning halves the
    # two rules tie on grabcut50 within 0.001 IoU; on DAVIS first frames with u2netp: 0.8299 vs 0.8265.)
    select = hint.box is None and hint.mask is None and all(mask[y, x] >= 0.5 for x, y in hint.include)
    if colour:
        pixels = unit_float(image[crop.slices][..., :3])
        region[...] = colour_refine(pixels, region, hints.within(hint, crop))
    return hints.constrain(mask, hint, select=select)
