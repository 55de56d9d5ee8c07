"""Relative depth maps from a depth network's prediction (Depth Anything V2), as a disparity:
larger values are nearer, 1 = nearest once normalised.

The network sees the image as the catalog says (Depth Anything: short side 518, sides multiples
of 14, cubic resize, ImageNet mean/std); its map is resized back to H x W bilinearly with aligned
corners, as upstream ``infer_image`` does. Maps are float32 H x W.
"""

from __future__ import annotations

import numpy as np

from ..ops.filters import guided_filter


def normalize_depth(disparity: np.ndarray) -> np.ndarray:
    """Min-max rescale a disparity-like map to [0,1] (a flat map becomes all zeros)."""
    lo, hi = float(disparity.min()), float(disparity.max())
    return ((disparity - lo) / max(hi - lo, 1e-8)).astype(np.float32)


def depth_from_prediction(prediction, height: int, width: int) -> np.ndarray:
    """The network's 1 x 1 x h x w map resized to H x W (bilinear, aligned corners): float32 H x W."""
    import torch.nn.functional as F

    full = F.interpolate(prediction.float(), (height, width), mode="bilinear", align_corners=True)[0, 0]
    return full.cpu().numpy().astype(np.float32)


def estimate_depth(predictor, image: np.ndarray, normalize: bool = True) -> np.ndarray:
    """Relative inverse depth of an sRGB image (H x W x 3|4 float32 [0,1]) by ``predictor`` -> float32 H x W."""
    depth = depth_from_prediction(predictor(predictor.prepare(image)), *image.shape[:2])
    return normalize_depth(depth) if normalize else depth


def refine_depth(image: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Snap a smooth, upsampled depth map (H x W in [0,1]) to the edges of ``image`` (H x W x 3|4 float32
    [0,1]) by a colour guided filter: float32 H x W in [0,1]."""
    h, w = depth.shape
    factor = max(1.0, min(h, w) / 518.0)
    radius = max(2, round(2 * factor))
    out = guided_filter(image[..., :3], depth, radius, eps=1e-4, subsample=max(1, round(factor / 2)))
    return np.clip(out, 0.0, 1.0).astype(np.float32)
