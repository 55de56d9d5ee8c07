"""Dense optical flow between frames (OpenCV's DIS) and sampling images along it: the whole image
(:func:`warp`) or some of its pixels (:func:`sample`). Flow fields are h x w x 2 float32 (x, y) in their own
pixels; a field smaller than the image it moves is rescaled to it bilinearly, pixel centres aligned.
"""

from __future__ import annotations

import functools
import threading

import cv2
import numpy as np

_LOCAL = threading.local()
DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def _dis(preset: str, refinement: int | None):
    """This thread's DIS flow object of ``preset`` with ``refinement`` variational refinement iterations per scale
    (None: the preset's), made once per thread: it is not thread-safe."""
    made = _LOCAL.__dict__.setdefault("dis", {})
    if (preset, refinement) not in made:
        made[preset, refinement] = dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
        if refinement is not None:
            dis.setVariationalRefinementIterations(refinement)
    return made[preset, refinement]


def flow(source: np.ndarray, target: np.ndarray, preset: str = "medium", refinement: int | None = None) -> np.ndarray:
    """Dense flow h x w x 2 (x, y) such that ``target(p + flow(p)) ~ source(p)``; uint8 greys in; ``preset``: a
    key of :data:`DIS_PRESETS`; ``refinement``: its variational refinement iterations per scale (None: the
    preset's, 5 for ``medium``)."""
    return _dis(preset, refinement).calc(source, target, None)


@functools.lru_cache(maxsize=4)
def _grid(height: int, width: int) -> np.ndarray:
    """(x, y) of every pixel: H x W x 2 float32, shared (read-only)."""
    grid = np.dstack(np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)))
    grid.flags.writeable = False
    return grid


@functools.lru_cache(maxsize=8)
def _scales(x: float, y: float, width: int) -> np.ndarray:
    """(x, y) float32 repeated ``width`` times: width x 2, shared (read-only). Multiplying an H x W x 2 array by it
    gives what multiplying by the pair does, with numpy's inner loop over the row, not over a pair."""
    row = np.tile(np.array([x, y], np.float32), (width, 1))
    row.flags.writeable = False
    return row


def warp(image: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Sample ``image`` (H x W [x C]) at p + field(p); ``field`` may be smaller (it is rescaled bilinearly)."""
    height, width = image.shape[:2]
    fh, fw = field.shape[:2]
    if (fh, fw) != (height, width):
        enlarged = cv2.resize(field, (width, height), interpolation=cv2.INTER_LINEAR)
        where = enlarged * _scales(width / fw, height / fh, width)  # a row of (x, y) scales: 20x faster than a pair
        where += _grid(height, width)  # one two-channel map: no strided copies of its channels
    else:
        where = field + _grid(height, width)
    return cv2.remap(image, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def on_field(pixels: np.ndarray, height: int, width: int, fh: int, fw: int) -> np.ndarray:
    """``pixels`` ((x, y) of an H x W image, ... x 2) on the grid of an h x w field, where a bilinear resize of the
    field to H x W reads for them (pixel centres aligned: (x + 0.5) * w / W - 0.5)."""
    grid = pixels + np.float32(0.5)
    grid *= _scales(fw / width, fh / height, grid.shape[1])
    grid -= np.float32(0.5)
    return grid


def sample(image: np.ndarray, field: np.ndarray, pixels: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """:func:`warp` at some pixels only: ``image`` (H x W) at p + field(p) for the ``pixels`` p ((x, y), ... x 2
    float32), ``grid`` their :func:`on_field` on the field's (h x w x 2) grid. The field is read bilinearly there
    (OpenCV's remap: weights in 1/32 px steps, where :func:`warp` resizes it), so a pixel's value depends on its
    own coordinates only."""
    height, width = image.shape[:2]
    fh, fw = field.shape[:2]
    where = cv2.remap(field, grid, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    where *= _scales(width / fw, height / fh, where.shape[1])
    where += pixels
    return cv2.remap(image, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def chain(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The flow a -> c from flows a -> b and b -> c (same size): first + second sampled along first."""
    return first + warp(second, first)
