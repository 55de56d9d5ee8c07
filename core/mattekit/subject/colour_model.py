"""The colour model of a hinted subject: the pixels the segmentation model was unsure of decided by the colours of
the subject and the background (GrabCut, :func:`colour_refine`), started from labels the model's answer and the
hint give (:func:`colour_labels`). Pure numpy/OpenCV; no torch."""

from __future__ import annotations

import cv2
import numpy as np

from .hints import Hint, allowed

SURE = (0.1, 0.9)  # the model's probability below / above which the colour model may not overrule it
#                   (chosen on the tuning halves over (0.3, 0.7))
COLOUR_SIZE = 320  # GrabCut works on the region scaled down to at most this many pixels a side
COLOUR_ITERATIONS = 4  # GrabCut's iterations
POINT_RADIUS = 0.01  # a point marks a disc of this fraction of the image's size (at least 2 px) as sure
MISSED_RADIUS = 0.05  # around an include point the model missed, a disc of this fraction is probably subject


def _disc_radius(height: int, width: int) -> int:
    return max(2, int(round(POINT_RADIUS * max(height, width))))


def colour_labels(mask: np.ndarray, hint: Hint, sure: tuple[float, float] = SURE) -> np.ndarray:
    """GrabCut's starting labels (H x W uint8, ``cv2.GC_*``) from the model's ``mask`` (H x W [0,1]):
    sure where the model is confident (outside ``sure``), probable elsewhere; sure background outside
    :func:`allowed`; sure discs at the include / exclude points. The model is not trusted where a point
    contradicts it: an include point on its background makes its sure background only probable and a
    disc around the point probably subject (an exclude point on its subject, when there are include
    points to keep, makes its sure subject only probable); where it found nothing inside a box, the
    box's inside is probably subject (plain GrabCut)."""
    height, width = mask.shape
    labels = np.where(mask >= 0.5, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    if not any(mask[y, x] < 0.5 for x, y in hint.include):
        labels[mask < sure[0]] = cv2.GC_BGD
    if not (hint.include and any(mask[y, x] >= 0.5 for x, y in hint.exclude)):
        labels[mask > sure[1]] = cv2.GC_FGD
    where = allowed(hint, height, width)
    if where is not None:
        if hint.box is not None and not (mask[where] >= 0.5).any():
            labels[where] = cv2.GC_PR_FGD
        labels[~where] = cv2.GC_BGD
    radius = _disc_radius(height, width)
    for x, y in hint.include:
        if mask[y, x] < 0.5:
            cv2.circle(
                labels,
                (int(x), int(y)),
                max(radius, int(round(MISSED_RADIUS * max(height, width)))),
                int(cv2.GC_PR_FGD),
                -1,
            )
    for points, label in ((hint.include, cv2.GC_FGD), (hint.exclude, cv2.GC_BGD)):
        for x, y in points:
            cv2.circle(labels, (int(x), int(y)), radius, int(label), -1)
    return labels


def colour_refine(
    image: np.ndarray,
    mask: np.ndarray,
    hint: Hint,
    size: int = COLOUR_SIZE,
    iterations: int = COLOUR_ITERATIONS,
    sure: tuple[float, float] = SURE,
) -> np.ndarray:
    """``mask`` (H x W float32 [0,1]) with the pixels the model was unsure of decided by colour: GrabCut
    (Gaussian mixtures of the subject's and the background's colours, graph cut) started from
    :func:`colour_labels`, run on ``image`` (H x W x 3 float [0,1]) scaled so that its longer side is
    at most ``size`` px. Where the model was sure and nothing contradicts it, its value stays; elsewhere
    GrabCut's decision (soft only at its upsampled edge). Unchanged when GrabCut has no subject or no
    background to learn from, or when the hint outlines nothing (exclude points only)."""
    if hint.box is None and hint.mask is None and not hint.include:
        return mask
    height, width = mask.shape
    labels = colour_labels(mask, hint, sure)
    trusted = ((labels == cv2.GC_FGD) & (mask > sure[1])) | ((labels == cv2.GC_BGD) & (mask < sure[0]))
    scale = min(1.0, size / max(height, width))
    small_size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    pixels = np.round(np.clip(image[..., :3], 0, 1) * 255).astype(np.uint8)
    small = cv2.resize(pixels, small_size, interpolation=cv2.INTER_AREA) if scale < 1 else pixels
    work = cv2.resize(labels, small_size, interpolation=cv2.INTER_NEAREST) if scale < 1 else labels.copy()
    subject = (work == cv2.GC_FGD) | (work == cv2.GC_PR_FGD)
    if subject.all() or not subject.any():
        return mask
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's k-means start draws from this thread's generator: same input, same bytes
    cv2.grabCut(
        np.ascontiguousarray(small[..., ::-1]), work, None, background, foreground, iterations, cv2.GC_INIT_WITH_MASK
    )
    decided = ((work == cv2.GC_FGD) | (work == cv2.GC_PR_FGD)).astype(np.float32)
    if scale < 1:
        decided = np.clip(cv2.resize(decided, (width, height), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    return np.where(trusted, mask, decided).astype(np.float32)
