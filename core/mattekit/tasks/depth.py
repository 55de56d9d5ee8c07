"""Depth (task ``depth``): a relative depth map of a photo from a catalog depth model (Depth Anything V2).

The network sees the image as the catalog says (Depth Anything: short side 518, sides multiples
of 14, cubic resize, ImageNet mean/std); its map is resized back to H x W bilinearly with aligned
corners, as upstream ``infer_image`` does. Larger values are nearer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .registry import Port, Task, model_input, option
from .segment import DEVICE_HELP, WEIGHTS_HELP


@dataclass
class DepthOptions:
    model: str | None = option(None, "depth model (see `mattekit models list`); default: the catalog's", model="depth")
    weights: str | None = option(None, WEIGHTS_HELP, path=True, hosts=("cli", "api"))
    device: str = option("auto", DEVICE_HELP)
    normalize: bool = option(True, "rescale the map to [0,1] (1 = nearest); off: the raw prediction (>= 0)")


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


def _finish(models, inputs, options: DepthOptions, context, prediction) -> dict:
    depth = depth_from_prediction(prediction, *inputs["image"].shape[:2])
    return {"depth": normalize_depth(depth) if options.normalize else depth}


TASK = Task(
    name="depth",
    summary="A relative depth map (1 = nearest) of each photo from a depth model.",
    options=DepthOptions,
    inputs=(Port("image", "image", (3, 4)),),
    outputs=(Port("depth", "depth"),),
    prepare=model_input,
    finish=_finish,
    streams=True,
    suffix="_depth",
    output_format=lambda options, source, named: ".exr" if named == ".exr" or source == ".exr" else ".png",
)
