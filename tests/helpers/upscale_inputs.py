"""Inputs of the upscaling tests: the user file of realesr-animevideov3, a crop of a real photo and an orange disc on
transparent black."""

from __future__ import annotations

import numpy as np

ANIME = "realesr-animevideov3.pth"  # re-zipped copy: its sha256 differs from the catalog's, so it is a user file


def _photo(shared, top: int, left: int, size: int) -> np.ndarray:
    """A crop of a real photo (Set14 img_002 HR, 720x576) as float32 RGB [0,1]."""
    import cv2

    bgr = cv2.imread(str(shared / "data/sr/Set14/x4/HR/img_002_SRF_4_HR.png"))
    return np.ascontiguousarray(bgr[top : top + size, left : left + size, ::-1], dtype=np.float32) / 255.0


def _disc_rgba(size: int = 48) -> np.ndarray:
    """An orange textured disc on a fully transparent black background."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.hypot(yy - size / 2 + 0.5, xx - size / 2 + 0.5)
    alpha = np.clip(size * 0.3 - r + 0.5, 0, 1)
    rgb = np.stack([0.9 + 0.05 * np.sin(xx), 0.5 + 0.05 * np.cos(yy), 0.1 + 0 * xx], -1)
    rgb[alpha == 0] = 0.0
    return np.concatenate([rgb, alpha[..., None]], -1).astype(np.float32)
