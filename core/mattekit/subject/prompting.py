"""A user's hint answered by a promptable model (SAM 2.1) instead of a segmentation network.

The hint (:class:`mattekit.subject.hints.Hint`, in the photo's pixels) becomes SAM's prompts as they are: the box
(with a hint mask, the box around the mask and the box together) as a box prompt, include points as
positive clicks and exclude points as negative ones. :class:`mattekit.nets.sam2.predictor.SAM2ImagePredictor`
does the upstream resize, normalisation and coordinate mapping; one mask comes back (three, of which the one
with the best predicted IoU, for a single click: upstream's advice for ambiguous prompts). Its logits,
upsampled to the photo as upstream does, become a probability whose 0.5 level is upstream's mask (logits >
``mask_threshold``, 0.0), so the matting band (:func:`mattekit.finish.edge.alpha_from_mask`) softens the edge
without moving it. As with the segmentation path, nothing outside the box or the hint mask's neighbourhood
is kept (:func:`mattekit.subject.hints.allowed`).

Images are sRGB H x W x 3|4 (float32 in [0,1], or uint8/uint16); masks H x W float32 in [0,1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import hints


@dataclass(frozen=True)
class Prompts:
    """SAM's prompts in photo pixels: box (a :class:`~mattekit.subject.hints.Box`) or None; points ((x, y), ...)
    with labels (1 on the subject, 0 off it)."""

    box: hints.Box | None = None
    points: tuple[tuple[int, int], ...] = ()
    labels: tuple[int, ...] = ()

    @property
    def multimask(self) -> bool:
        """Three candidate masks only for a lone click (ambiguous: part, object, whole); a box or several
        clicks say enough for one."""
        return self.box is None and len(self.points) == 1


def answerable(hint: hints.Hint) -> bool:
    """Whether SAM can answer ``hint``: it needs something on the subject (a box, a hint mask or an include
    point); exclude points alone say only what the subject is not."""
    return hint.box is not None or hint.mask is not None or bool(hint.include)


def prompts_of(hint: hints.Hint) -> Prompts:
    """``hint`` as SAM's prompts. Our boxes end at x1, y1 exclusive, which is the right edge of the last
    pixel column in SAM's continuous pixel coordinates, so the numbers pass unchanged; points too."""
    mask_box = None if hint.mask is None else hints.Box.around(hint.mask)  # not empty: hints.make refuses that
    boxes = [box for box in (hint.box, mask_box) if box is not None]
    box = None
    if boxes:
        box = hints.Box(
            min(b.x0 for b in boxes), min(b.y0 for b in boxes), max(b.x1 for b in boxes), max(b.y1 for b in boxes)
        )
    return Prompts(box, tuple(hint.include) + tuple(hint.exclude), (1,) * len(hint.include) + (0,) * len(hint.exclude))


def rgb8(image: np.ndarray) -> np.ndarray:
    """The photo as SAM's predictor takes it (upstream reads a PIL image): uint8 H x W x 3 RGB from float [0,1]
    (rounded), uint8 or uint16 (rounded to 8 bits); alpha dropped."""
    pixels = image[..., :3]
    if pixels.dtype == np.uint8:
        return np.ascontiguousarray(pixels)
    if pixels.dtype == np.uint16:
        return ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return np.round(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)


def probability(logits: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Mask logits (H x W) -> float32 probability: the sigmoid of ``logits - threshold`` (0.5 exactly where
    upstream's mask ends)."""
    z = np.asarray(logits, np.float32) - np.float32(threshold)  # the one full-size array made; the rest in place
    np.clip(z, -60.0, 60.0, out=z)
    np.exp(np.negative(z, out=z), out=z)
    z += 1.0
    return np.reciprocal(z, out=z)


def prompted_mask(model, image: np.ndarray, hint: hints.Hint) -> np.ndarray:
    """The subject's probability (H x W float32) for ``image`` as SAM 2.1 ``model`` (a
    :class:`mattekit.nets.sam2.SAM2`, on its device) answers ``hint`` (:func:`answerable`), kept to where the
    hint allows. One image embedding per call."""
    from ..nets.sam2.predictor import SAM2ImagePredictor  # torch: imported when a hint model runs, not at startup

    if not answerable(hint):
        raise ValueError("SAM needs a box, a hint mask or an include point")
    sam = SAM2ImagePredictor(model)
    sam.set_image(rgb8(image))
    prompts = prompts_of(hint)
    logits, scores, _ = sam.predict(
        point_coords=prompts.points or None,
        point_labels=prompts.labels or None,
        box=prompts.box,
        multimask_output=prompts.multimask,
        return_logits=True,
    )
    best = int(np.argmax(scores)) if prompts.multimask else 0
    return keep_allowed(probability(logits[best], sam.mask_threshold), hint)


def keep_allowed(mask: np.ndarray, hint: hints.Hint) -> np.ndarray:
    """``mask`` (H x W) zeroed, in place, outside the box and the hint mask's neighbourhood
    (:func:`mattekit.subject.hints.allowed`); returns it."""
    where = hints.allowed(hint, *mask.shape)
    if where is not None:
        mask[~where] = 0.0
    return mask
