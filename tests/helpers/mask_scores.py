"""The mask metrics of shared/data/README.md, written here from their definitions with numpy and SciPy's exact
Euclidean distance transform, so that tests can check `mattekit bench` figures without mattekit's own metrics
(mattekit_bench.metrics uses OpenCV's 3x3 chamfer distances and erosion; here OpenCV only reads the files).

Ground truth: uint8 0 = background, 255 = subject, 128 = an uncertain band that every metric ignores.
Predictions: float in [0,1], or the 8-bit alpha files `remove --result alpha` writes (see :func:`saved_alpha`).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

BAND = 128


def gt_mask(shared: Path, name: str) -> np.ndarray:
    """grabcut50's ground truth of the photo ``name`` (its stem names the mask), H x W uint8."""
    return cv2.imread(str(shared / "data/grabcut50/gt" / (Path(name).stem + ".png")), cv2.IMREAD_GRAYSCALE)


def saved_alpha(path: Path) -> np.ndarray:
    """An alpha file as written by `--result alpha` (8- or 16-bit greyscale PNG), as float64 in [0,1]."""
    values = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert values is not None and values.ndim == 2 and values.dtype in (np.uint8, np.uint16), path
    return values.astype(np.float64) / np.iinfo(values.dtype).max


def iou(alpha: np.ndarray, gt: np.ndarray) -> float:
    """|P & G| / |P | G| with P = alpha >= 0.5 and G = gt == 255, over the pixels outside the band."""
    known = gt != BAND
    p, g = (alpha >= 0.5) & known, (gt == 255) & known
    union = int(np.sum(p | g))
    return 1.0 if union == 0 else int(np.sum(p & g)) / union


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two maps' masks (a > 0.5 and b > 0.5): how far two runs of the same model agree; 1.0 when both are empty."""
    p, q = a > 0.5, b > 0.5
    union = int(np.sum(p | q))
    return 1.0 if union == 0 else int(np.sum(p & q)) / union


def mae(alpha: np.ndarray, gt: np.ndarray) -> float:
    """Mean |alpha - gt/255| over the pixels outside the band."""
    known = gt != BAND
    return float(np.mean(np.abs(alpha[known] - (gt[known] == 255))))


def _distance_to(target: np.ndarray) -> np.ndarray:
    """Each pixel's exact Euclidean distance to the nearest True pixel of ``target`` (inf where there is none)."""
    return ndimage.distance_transform_edt(~target) if target.any() else np.full(target.shape, np.inf)


def _boundary(mask: np.ndarray) -> np.ndarray:
    """The mask's pixels with a pixel outside the mask among their 8 neighbours (the image edge is no boundary)."""
    padded = np.pad(mask, 1, mode="edge")
    h, w = mask.shape
    inner = np.ones_like(mask)
    for dy in range(3):
        for dx in range(3):
            inner &= padded[dy : dy + h, dx : dx + w]
    return mask & ~inner


def boundary_f(alpha: np.ndarray, gt: np.ndarray, tolerance: float = 2.0) -> float:
    """The 2-px boundary F of alpha >= 0.5: F-measure of boundary pixels matched within ``tolerance`` px.

    In an uncertain band the true boundary is somewhere inside it: a band pixel nearer the subject than the
    background counts as subject (the ground-truth boundary runs along the band's centre line), a true boundary
    pixel in the band is matched within the tolerance plus its distance to the band's edge, and a predicted
    boundary pixel inside the band is matched."""
    band, subject = gt == BAND, gt == 255
    slack = np.zeros(gt.shape)
    if band.any():
        to_subject, to_background = _distance_to(subject), _distance_to(gt == 0)
        subject = subject | (band & (to_subject <= to_background))
        slack[band] = np.minimum(to_subject, to_background)[band]
    predicted, true = _boundary(alpha >= 0.5), _boundary(subject)
    if not predicted.any() or not true.any():
        return float(predicted.any() == true.any())
    precision = float(np.mean(_distance_to(true | band)[predicted] <= tolerance))
    recall = float(np.mean((_distance_to(predicted) <= tolerance + slack)[true]))
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
