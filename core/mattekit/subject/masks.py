"""The network's subject mask for a user's hint: the network's input for the region the hint outlines
(:func:`hinted_input`), and its prediction there pasted back into the photo, decided by colours where the network is
unsure and constrained by the hint (:func:`hinted_mask`, :mod:`mattekit.subject.hints`).

The prediction becomes a full-resolution mask in :mod:`mattekit.finish.refine`; its edge is matted in
:mod:`mattekit.finish.edge`. Images are sRGB H x W x 3|4 (float32 in [0,1], or uint8/uint16 where said); predictions
are 1 x 1 x h x w tensors or h x w arrays in [0,1]; masks H x W float32 in [0,1]. A predictor is a loaded model
(:class:`mattekit.runtime.Predictor`): ``prepare(image)``, a call and what it says of its model (``task``, ``upsampling``).
"""
from __future__ import annotations

import numpy as np

from ..finish.device import device_of
from ..finish.refine import mask_from_prediction
from ..ops.pixels import unit_float
from . import hints


def upsampling_of(predictor) -> str:
    """How ``predictor``'s prediction is resized to the photo (its :attr:`~mattekit.runtime.Predictor.upsampling`);
    "bilinear" for None (a prediction made without a catalog model)."""
    return predictor.upsampling if predictor is not None else "bilinear"

def predict_mask(predictor, image: np.ndarray, refine: bool = True) -> np.ndarray:
    """Subject mask of ``image`` (H x W x 3|4 float32 [0,1]) by ``predictor``: float32 H x W in [0,1]."""
    return mask_from_prediction(image, predictor(predictor.prepare(image)), refine,
                                upsampling=predictor.upsampling, device=device_of(predictor, image))

def hinted_input(predictor, image: np.ndarray, hint: hints.Hint) -> tuple:
    """(the network input for ``image`` or for its region the ``hint`` outlines, the context that
    :func:`hinted_mask` takes: the hint and that region (:class:`mattekit.subject.hints.Hinted`), None without a
    hint)."""
    if not hint:
        return predictor.prepare(image), None
    region = hints.region(hint, *image.shape[:2])
    return predictor.prepare(image[region.slices]), hints.Hinted(hint, region)

def hinted_mask(image: np.ndarray, prediction, refine: bool, context, colour: bool = False,
                soft: bool = False, upsampling: str = "bilinear", device=None) -> np.ndarray:
    """The subject mask H x W float32 [0,1] of ``image`` from the network's ``prediction`` of
    :func:`hinted_input`'s input: pasted back into the image and finished by the hint (:func:`hint_finished`).
    ``soft``: the prediction is a matting model's alpha (not rounded; see
    :func:`mattekit.finish.refine.mask_from_prediction`); ``device``:
    where a GPU refines it."""
    if context is None:
        return mask_from_prediction(image, prediction, refine, soft, upsampling, device)
    mask = np.zeros(image.shape[:2], np.float32)
    mask[context.region.slices] = mask_from_prediction(image[context.region.slices], prediction, refine, soft,
                                                       upsampling, device)
    return hint_finished(image, mask, context, colour)

def hint_finished(image: np.ndarray, mask: np.ndarray, context: hints.Hinted, colour: bool = False) -> np.ndarray:
    """``mask`` (H x W float32 [0,1], the network's answer for the region of ``context`` (its hint and region),
    zero outside it) with ``colour`` decided by a colour model where the network is unsure inside the
    region (:func:`mattekit.subject.hints.colour_refine`, in place), and constrained by the hint (a new array)."""
    hint, crop = context.hint, context.region
    region = mask[crop.slices]
    # Include points pick among the network's parts only without a box or hint mask (which already say
    # where the subject is; the network may split one subject in parts, DAVIS libby) and only when each
    # lands on a part; otherwise they steer the colour model and drop nothing. (On the tuning halves the
    # two rules tie on grabcut50 within 0.001 IoU; on DAVIS first frames with u2netp: 0.8299 vs 0.8265.)
    select = hint.box is None and hint.mask is None and all(mask[y, x] >= 0.5 for x, y in hint.include)
    if colour:
        pixels = unit_float(image[crop.slices][..., :3])
        region[...] = hints.colour_refine(pixels, region, hints.within(hint, crop))
    return hints.constrain(mask, hint, select=select)
