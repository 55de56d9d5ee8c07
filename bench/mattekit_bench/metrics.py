"""Quality metrics for masks. Predictions are float H x W in [0,1]; ground truth is uint8 0/255
with 128 marking an uncertain band that every metric ignores (the GrabCut convention)."""

from __future__ import annotations

import cv2
import numpy as np

IGNORE = 128


def _valid(gt: np.ndarray) -> np.ndarray:
    return gt != IGNORE


def iou(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> float:
    """Intersection over union of pred >= threshold and gt == 255, band ignored."""
    v = _valid(gt)
    p, g = (pred >= threshold) & v, (gt == 255) & v
    union = np.count_nonzero(p | g)
    return 1.0 if union == 0 else np.count_nonzero(p & g) / union


def mae(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean |pred - gt/255| over the valid pixels."""
    v = _valid(gt)
    return float(np.abs(pred[v] - (gt[v] == 255)).mean())


def _edges(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.uint8)
    return (m ^ cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)).astype(bool)


def boundary_f(pred: np.ndarray, gt: np.ndarray, tolerance: float = 2.0, threshold: float = 0.5) -> float:
    """F-measure of boundary pixels matched within ``tolerance`` px (the 2-px boundary F).

    With an uncertain band the true boundary lies somewhere inside it: the ground-truth
    boundary is the band's centre line, and the tolerance there grows by the band's half width;
    a predicted boundary inside the band counts as matched.
    """
    band = gt == IGNORE
    fg = gt == 255
    if band.any():
        d_fg = cv2.distanceTransform((~fg).astype(np.uint8), cv2.DIST_L2, 3)
        d_bg = cv2.distanceTransform((gt != 0).astype(np.uint8), cv2.DIST_L2, 3)
        fg = fg | (band & (d_fg <= d_bg))
        slack = np.where(band, np.minimum(d_fg, d_bg), 0.0)
    else:
        slack = 0.0
    pe, ge = _edges(pred >= threshold), _edges(fg)
    if not pe.any() or not ge.any():
        return float(pe.any() == ge.any())
    dist_to_g = cv2.distanceTransform((~(ge | band)).astype(np.uint8), cv2.DIST_L2, 3)
    dist_to_p = cv2.distanceTransform((~pe).astype(np.uint8), cv2.DIST_L2, 3)
    precision = float((dist_to_g[pe] <= tolerance).mean())
    recall = float((dist_to_p <= tolerance + slack)[ge].mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
