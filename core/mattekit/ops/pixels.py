"""Pixel values: integer and float scales, channel layout, the sRGB transfer curve and range tests.

Floats are float32 in [0,1]; uint8 and uint16 hold 0..255 and 0..65535; images are H x W (x C).
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from .regions import each_row_strip, row_strips

STRIP_VALUES = 3 << 20  # values of rows a transfer curve works on at once (strips in parallel threads)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB decoding, float32; negatives mirror, values above 1 extend the curve."""
    return _in_strips(_decoded, x)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB encoding, the inverse of :func:`srgb_to_linear`."""
    return _in_strips(_encoded, x)


def _decoded(x: np.ndarray) -> np.ndarray:
    a = np.abs(x)
    curve = cv2.pow(cv2.addWeighted(a, 1 / 1.055, a, 0.0, 0.055 / 1.055), 2.4).reshape(a.shape)
    return np.copysign(np.where(a <= 0.04045, a * np.float32(1 / 12.92), curve), x)


def _encoded(x: np.ndarray) -> np.ndarray:
    a = np.abs(x)
    curve = cv2.addWeighted(cv2.pow(a, 1 / 2.4), 1.055, a, 0.0, -0.055).reshape(a.shape)
    return np.copysign(np.where(a <= 0.0031308, a * np.float32(12.92), curve), x)


def _in_strips(curve: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """``curve`` (element by element, on float32) of ``x`` (any shape) as float32 of its shape; an image of more than
    :data:`STRIP_VALUES` values in strips of rows over the cores (the same values: each is its own)."""
    shape = np.shape(x)
    x = np.ascontiguousarray(x, dtype=np.float32)
    return (curve(x) if x.ndim < 2 else row_strips(curve, x, STRIP_VALUES)).reshape(shape)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def finite(x: np.ndarray, low: float = -FLOAT32_MAX, high: float = FLOAT32_MAX) -> np.ndarray:
    """``x`` (a float array of any shape, changed in place and returned) with NaN as 0, then clipped to [``low``,
    ``high``]: +-inf become the bounds, by default the largest finite float32 values (numpy's nan_to_num's choice,
    without its extra passes)."""
    np.copyto(x, 0, where=np.isnan(x))
    return np.clip(x, low, high, out=x)


def grey_map(x: np.ndarray) -> np.ndarray:
    """A mask or trimap (H x W or H x W x C; uint8, uint16 or float) as float32 H x W, its first channel, 0..1 scale."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., 0]
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    if x.dtype == np.uint16:
        return x.astype(np.float32) / 65535.0
    return x.astype(np.float32)


def unit_float(x: np.ndarray) -> np.ndarray:
    """Pixels as float32 in [0,1]: uint8 / 255, uint16 / 65535 (a new array); floats as they are (no copy
    for float32)."""
    x = np.asarray(x)
    if x.dtype.kind in "ui":
        out = x.astype(np.float32)
        np.divide(out, np.float32(np.iinfo(x.dtype).max), out=out)
        return out
    return x.astype(np.float32, copy=False)


STRIP_BYTES = 4 << 20  # float bytes converted at a time by resize (integer input) and quantise


def with_channels(pixels) -> np.ndarray:
    """An HxW, HxWx1, HxWx3 or HxWx4 array as HxWxC (a view); ValueError for any other shape."""
    px = np.asarray(pixels)
    if px.ndim == 2:
        px = px[..., None]
    if px.ndim != 3 or px.shape[2] not in (1, 3, 4) or 0 in px.shape:
        raise ValueError(f"expected an HxW, HxWx1, HxWx3 or HxWx4 array, got shape {px.shape}")
    return px


def quantise(pixels, bit_depth: int = 8, out: np.ndarray | None = None) -> np.ndarray:
    """An image (HxW[xC], floats in [0,1] or integers) as HxWxC uint8 (bit_depth 8) or uint16 (16).

    Floats: NaN -> 0, clipped to [0,1], scaled and rounded half to even, in strips of rows of at most
    :data:`STRIP_BYTES` (no full-size float temporary). uint8/uint16 of the wanted depth are returned as
    they are (no copy; copied into ``out`` when given); other integers are rescaled from their own range.
    ``out``: an HxWxC (or HxW for HxW input) array of the wanted dtype to fill instead of a new one.
    """
    px = with_channels(pixels)
    dtype = np.uint16 if bit_depth == 16 else np.uint8
    ints = np.empty(px.shape, dtype) if out is None else out[..., None] if out.ndim == 2 else out
    if px.dtype == dtype:
        if out is None:
            return px
        ints[...] = px
        return out
    scale = float(np.iinfo(px.dtype).max) if px.dtype.kind in "ui" else 1.0
    top = float(np.iinfo(dtype).max)
    rows = max(1, STRIP_BYTES // (px.shape[1] * px.shape[2] * 4))
    buffer = np.empty((min(rows, px.shape[0]),) + px.shape[1:], np.float32)  # one strip, reused
    for y in range(0, px.shape[0], rows):
        strip = buffer[: min(rows, px.shape[0] - y)]
        np.copyto(strip, px[y : y + rows], casting="unsafe")
        if scale != 1.0:
            strip /= np.float32(scale)
        np.fmax(strip, 0, out=strip)  # NaN -> 0 (fmax ignores NaN)
        np.minimum(strip, 1, out=strip)
        strip *= np.float32(top)
        ints[y : y + rows] = np.rint(strip, out=strip)
    return ints if out is None else out


def between(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """``(x > low) & (x < high)`` for an H x W array and Python float bounds (float32 maps compared with the
    bounds rounded to float32, as numpy compares them): bool H x W. A float32 map is done in one OpenCV pass
    (its inclusive range between the float32 neighbours of the bounds): 3x faster than numpy's three; a large one
    in strips of rows over the cores."""
    if x.dtype != np.float32 or x.ndim != 2 or not x.size:
        return (x > low) & (x < high)
    above, below = (
        np.nextafter(np.float32(low), np.float32(np.inf)),
        np.nextafter(np.float32(high), np.float32(-np.inf)),
    )
    inside = np.empty(x.shape, np.uint8)

    def strip(rows: slice) -> None:
        cv2.inRange(x[rows], float(above), float(below), dst=inside[rows])  # 255 inside, 0 outside
        np.bitwise_and(inside[rows], 1, out=inside[rows])

    each_row_strip(strip, x.shape[0], x.shape[1], STRIP_VALUES)
    return inside.view(bool)
