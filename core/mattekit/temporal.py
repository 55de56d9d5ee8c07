"""Temporal consistency for matte sequences: motion-compensated averaging over a window of frames.

A per-frame network sees every frame afresh, so its matte trembles from frame to frame even
where nothing moves. Here each frame's matte is averaged with the mattes of its ``radius``
neighbours on both sides after warping them onto it along dense optical flow (OpenCV's DIS),
each warped neighbour weighted, pixel by pixel, by how well its warped *plate* matches this
frame's plate: where the flow is right (static or tracked parts) neighbours count fully, where
it fails (occlusions, fast motion) they fade out and the frame's own matte stays.

The window is centred and bounded, so a frame's result depends only on plate frames
``t - radius .. t + radius``: any split of a shot into chunks, resumed or run on many machines,
gives the same bytes as one uninterrupted run.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class TemporalOptions:
    """radius: neighbours on each side (0 turns smoothing off); flow_side: the long side, in
    pixels, at which flow and plate agreement are computed; sigma: plate difference (sRGB, 0..1)
    at which a warped neighbour's weight falls to 1/e; decay: weight factor per frame of distance."""

    radius: int = 3
    flow_side: int = 512
    sigma: float = 0.06
    decay: float = 0.85

    def describe(self) -> dict:
        return {"method": "flow-window", "radius": self.radius, "flow_side": self.flow_side,
                "sigma": self.sigma, "decay": self.decay}


@dataclass
class FrameState:
    """What the filter keeps of one frame: its matte (H x W) and a small plate for flow."""

    alpha: np.ndarray  # float32 H x W in [0,1]
    small: np.ndarray  # float32 h x w x 3 sRGB, the plate at flow resolution
    grey: np.ndarray  # uint8 h x w


_FLOW = None


def _dis():
    global _FLOW
    if _FLOW is None:
        _FLOW = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return _FLOW


def prepare(image: np.ndarray, alpha: np.ndarray, options: TemporalOptions) -> FrameState:
    """Keep a frame for the filter: ``image`` sRGB H x W x 3|4 [0,1], ``alpha`` H x W [0,1]."""
    height, width = alpha.shape
    scale = min(1.0, options.flow_side / max(height, width))
    size = (max(8, round(width * scale)), max(8, round(height * scale)))
    small = cv2.resize(np.ascontiguousarray(image[..., :3], np.float32), size, interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(np.clip(small * 255.0 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    return FrameState(np.asarray(alpha, np.float32), small, grey)


def flow(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Dense flow h x w x 2 (x, y) such that ``target(p + flow(p)) ~ source(p)``; uint8 greys in."""
    return _dis().calc(source, target, None)


def warp(image: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Sample ``image`` (H x W [x C]) at p + field(p); ``field`` may be smaller (it is rescaled)."""
    height, width = image.shape[:2]
    fh, fw = field.shape[:2]
    if (fh, fw) != (height, width):
        field = cv2.resize(field, (width, height), interpolation=cv2.INTER_LINEAR)
        field = field * np.array([width / fw, height / fh], np.float32)
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(image, grid_x + field[..., 0], grid_y + field[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def smooth(center: FrameState, neighbours: list[tuple[int, FrameState]], options: TemporalOptions) -> np.ndarray:
    """The temporally consistent matte of ``center`` from its neighbours [(distance, state)].

    Returns float32 H x W in [0,1]: (alpha + sum w_n * warped alpha_n) / (1 + sum w_n), with
    w_n = decay^|distance| * exp(-(plate difference after warping / sigma)^2), smoothed a little.
    """
    if not neighbours:
        return center.alpha
    height, width = center.alpha.shape
    total = center.alpha.astype(np.float32).copy()
    weight = np.ones((height, width), np.float32)
    for distance, other in neighbours:
        field = flow(center.grey, other.grey)
        diff = np.abs(warp(other.small, field) - center.small).mean(axis=2)
        diff = cv2.GaussianBlur(diff, (0, 0), 1.0)
        w = np.float32(options.decay ** abs(distance)) * np.exp(-np.square(diff / options.sigma))
        w = cv2.resize(w.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
        total += w * warp(other.alpha, field)
        weight += w
    return np.clip(total / weight, 0.0, 1.0)


def ema(previous: np.ndarray | None, alpha: np.ndarray, keep: float = 0.6) -> np.ndarray:
    """A plain exponential moving average (no motion compensation): the baseline to beat."""
    return alpha if previous is None else (keep * previous + (1.0 - keep) * alpha).astype(np.float32)
