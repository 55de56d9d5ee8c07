"""Depth: a relative depth map of a photo from a catalog depth model (Depth Anything V2)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch.nn.functional as F

from .. import catalog, runtime


@dataclass
class DepthOptions:
    """model: catalog name (None = the catalog's default depth model); device: auto/cpu/cuda/mps;
    weights: a user-supplied weights file; normalize: rescale the map to [0,1] (1 = nearest)."""

    model: str | None = None
    device: str = "auto"
    weights: str | None = None
    normalize: bool = True


def normalize_depth(disparity: np.ndarray) -> np.ndarray:
    """Min-max rescale a disparity-like map to [0,1] (a flat map becomes all zeros)."""
    lo, hi = float(disparity.min()), float(disparity.max())
    return ((disparity - lo) / max(hi - lo, 1e-8)).astype(np.float32)


def estimate_depth(image: np.ndarray, options: DepthOptions | None = None) -> np.ndarray:
    """Relative inverse depth of an sRGB image (H x W x 3|4 float32 [0,1]) -> float32 H x W.

    Larger values are nearer. The network sees the image as the catalog says (Depth Anything:
    short side 518, sides multiples of 14, cubic resize, ImageNet mean/std); its map is resized
    back to H x W bilinearly with aligned corners, as upstream ``infer_image`` does. With
    ``normalize`` (default) the map is rescaled to [0,1]; otherwise it is the raw prediction (>= 0).
    """
    options = options or DepthOptions()
    cat = catalog.load()
    entry = cat.get(options.model, "depth") if options.model else cat.default("depth")
    predictor = runtime.get_predictor(entry, device=options.device, weights_path=options.weights)
    x = runtime.prepare(entry.input, image[..., :3])
    with predictor.lock:
        low = predictor(x)  # 1 x 1 x h x w
    height, width = image.shape[:2]
    full = F.interpolate(low, (height, width), mode="bilinear", align_corners=True)[0, 0]
    depth = full.cpu().numpy().astype(np.float32)
    return normalize_depth(depth) if options.normalize else depth

