"""Small image operations shared by the tasks. Arrays are float32, H x W (x C), values in [0,1]."""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

import cv2
import numpy as np

from .machine import cpu_count

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB decoding, float32; negatives mirror, values above 1 extend the curve."""
    shape = np.shape(x)
    x = np.ascontiguousarray(x, dtype=np.float32)
    a = np.abs(x)
    curve = cv2.pow(cv2.addWeighted(a, 1 / 1.055, a, 0.0, 0.055 / 1.055), 2.4).reshape(a.shape)
    return np.copysign(np.where(a <= 0.04045, a * np.float32(1 / 12.92), curve), x).reshape(shape)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB encoding, the inverse of :func:`srgb_to_linear`."""
    shape = np.shape(x)
    x = np.ascontiguousarray(x, dtype=np.float32)
    a = np.abs(x)
    curve = cv2.addWeighted(cv2.pow(a, 1 / 2.4), 1.055, a, 0.0, -0.055).reshape(a.shape)
    return np.copysign(np.where(a <= 0.0031308, a * np.float32(12.92), curve), x).reshape(shape)


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
WHOLE_BYTES = 16 << 20  # integer images whose float copy is at most this are resized as one float array


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
    (its inclusive range between the float32 neighbours of the bounds): 3x faster than numpy's three."""
    if x.dtype != np.float32 or x.ndim != 2 or not x.size:
        return (x > low) & (x < high)
    above, below = np.nextafter(np.float32(low), np.float32(np.inf)), np.nextafter(np.float32(high), np.float32(-np.inf))
    inside = cv2.inRange(x, float(above), float(below))  # 255 inside, 0 outside
    return np.bitwise_and(inside, 1, out=inside).view(bool)


def box_mean(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window, edges handled by reflection. Works on H x W or H x W x C."""
    k = 2 * int(radius) + 1
    return cv2.boxFilter(x, cv2.CV_32F, (k, k), normalize=True, borderType=cv2.BORDER_REFLECT)


_FLAGS = {"bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "cubic": cv2.INTER_CUBIC, "nearest": cv2.INTER_NEAREST}


def lanczos(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """PIL's Lanczos resize (a = 3, widened by the factor when shrinking: antialiased) of H x W (x C) to
    (height, width), float32 in [0,1]. uint8 runs PIL's 8-bit path (rounded to 8 bits after each of its
    two passes: bit for bit what rembg feeds its networks); other types are resized as floats, channel
    by channel (PIL's "F" mode: no rounding)."""
    from PIL import Image

    if x.dtype == np.uint8 and (x.ndim == 2 or x.shape[2] in (1, 3)):
        pixels = Image.fromarray(np.ascontiguousarray(x if x.ndim == 2 else x[..., 0] if x.shape[2] == 1 else x))
        out = np.asarray(pixels.resize((width, height), Image.Resampling.LANCZOS), np.float32) / np.float32(255)
        return out.reshape((height, width) + x.shape[2:])
    x = unit_float(x)
    planes = [x] if x.ndim == 2 else [x[..., c] for c in range(x.shape[2])]
    out = [np.array(Image.fromarray(np.ascontiguousarray(p, np.float32), mode="F")
                      .resize((width, height), Image.Resampling.LANCZOS)) for p in planes]
    return out[0] if x.ndim == 2 else np.stack(out, axis=2)


def torch_area(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """PyTorch's ``interpolate(mode="area")`` of H x W (x C) float32 to (height, width): adaptive average
    pooling (output pixel i averages input pixels floor(i*n/m) .. ceil((i+1)*n/m) - 1 on each axis), which
    differs from OpenCV's area resize for non-integer factors and copies pixels when enlarging. Separable."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    t = t[None, None] if x.ndim == 2 else t.permute(2, 0, 1)[None]
    out = torch.nn.functional.adaptive_avg_pool2d(t, (height, width))[0]
    return out[0].numpy() if x.ndim == 2 else np.ascontiguousarray(out.permute(1, 2, 0).numpy())


def resize(x: np.ndarray, height: int, width: int, method: str = "bilinear") -> np.ndarray:
    """Resize H x W (x C) to (height, width) float32; ``area`` for shrinking, bilinear/cubic otherwise,
    ``lanczos`` / ``torch-area`` where a model's reference pipeline uses PIL's Lanczos (:func:`lanczos`) /
    PyTorch's area mode (:func:`torch_area`).

    Floats are taken as they are; uint8/uint16 are read as [0,1] (:func:`unit_float`). An integer image
    shrunk to a smaller float copy than :data:`WHOLE_BYTES` is never made float whole: its rows are made
    float a strip at a time and shrunk in width, then the narrow result in height (for non-integer
    factors OpenCV gives the same values as one 2-D resize; otherwise they differ by float rounding).
    An ``area`` shrink by a whole factor k in height does both steps strip by strip (strips of a multiple
    of k rows: the same values, and no full-height narrow copy).
    """
    if method == "lanczos" and x.dtype == np.uint8:
        return lanczos(x, height, width)
    if x.dtype.kind in "ui" and height <= x.shape[0] and width <= x.shape[1] and x.size * 4 > WHOLE_BYTES:
        rows = max(1, STRIP_BYTES // (x[0].size * 4))
        k = x.shape[0] // height
        if method == "area" and k > 1 and x.shape[0] == k * height:
            rows = max(1, rows // k) * k
            out = np.empty((height, width) + x.shape[2:], np.float32)
            for y in range(0, x.shape[0], rows):
                narrow = resize(unit_float(x[y : y + rows]), min(rows, x.shape[0] - y), width, method)
                out[y // k : (y + rows) // k] = resize(narrow, narrow.shape[0] // k, width, method)
            return out
        narrow = np.empty((x.shape[0], width) + x.shape[2:], np.float32)
        for y in range(0, x.shape[0], rows):
            narrow[y : y + rows] = resize(unit_float(x[y : y + rows]), min(rows, x.shape[0] - y), width, method)
        return resize(narrow, height, width, method)
    x = unit_float(x)
    if x.shape[:2] == (height, width):
        return x
    if method == "lanczos":
        return lanczos(x, height, width)
    if method == "torch-area":
        return torch_area(x, height, width)
    out = cv2.resize(np.ascontiguousarray(x), (width, height), interpolation=_FLAGS[method])
    return out.reshape((height, width) + x.shape[2:])


def shrunk(x: np.ndarray, scale: int) -> np.ndarray:
    """``x`` (H x W [x C], its pixels' channels contiguous; float [0,1] or uint8/uint16) shrunk ``scale`` times by
    block means, float32 in [0,1]:
    ceil(H / scale) x ceil(W / scale); the last row and column of blocks average what is left over. The one
    full-size pass is OpenCV's area resize of the integers, so no float copy of the photo is made."""
    h, w = x.shape[:2]
    hs, ws = h // scale * scale, w // scale * scale
    rows = []
    for ys in (slice(0, hs), slice(hs, h)):
        if ys.stop > ys.start:
            parts = [cv2.resize(x[ys, xs], (-(-(xs.stop - xs.start) // scale), -(-(ys.stop - ys.start) // scale)),
                                interpolation=cv2.INTER_AREA)
                     for xs in (slice(0, ws), slice(ws, w)) if xs.stop > xs.start]
            rows.append(np.concatenate([p.reshape(p.shape[:2] + x.shape[2:]) for p in parts], axis=1))
    return unit_float(np.concatenate(rows, axis=0)).astype(np.float32, copy=False)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float, subsample: int = 1) -> np.ndarray:
    """Edge-preserving smoothing of ``src`` that follows the edges of ``guide`` (He et al.'s guided filter).

    guide: H x W x 3 (colour: locally ``q = a . I + b``, a 3x3 covariance solve per pixel; ``src`` H x W)
    or H x W (grey: locally ``q = a I + b`` for each channel of ``src``, H x W or H x W x C).
    radius: box radius in pixels; eps: regularisation (in squared guide units: larger smooths more).
    ``subsample`` > 1 computes the coefficients on a shrunken copy (the "fast" variant) and upsamples
    them, which keeps 12 MP images fast. Returns float32 of ``src``'s shape.
    """
    grey = guide.ndim == 2
    h, w = src.shape[:2]
    guide = np.ascontiguousarray(guide if grey else guide[..., :3], dtype=np.float32)
    src = np.ascontiguousarray(src, dtype=np.float32)
    s = max(1, int(subsample))
    if s > 1:
        small = (max(1, round(h / s)), max(1, round(w / s)))
        g, p = resize(guide, *small, method="area"), resize(src, *small, method="area")
        r = max(1, round(radius / s))
    else:
        g, p, r = guide, src, int(radius)
    mean_a, mean_b = (_grey_coefficients if grey else _colour_coefficients)(g, p, r, eps)
    if s > 1:
        mean_a, mean_b = resize(mean_a, h, w), resize(mean_b, h, w)
    if grey:
        return mean_a * (guide[..., None] if src.ndim == 3 else guide) + mean_b
    out = _dot3(mean_a, guide)
    out += mean_b
    return out


def _dot3(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-pixel dot product of two H x W x 3 float32 arrays, H x W: the channels' products added in
    channel order, the same bits as ``(x * y).sum(-1)`` without its slow reduction over a 3-long axis."""
    out = x[..., 0] * y[..., 0]
    out += x[..., 1] * y[..., 1]
    out += x[..., 2] * y[..., 2]
    return out


def _grey_coefficients(g: np.ndarray, p: np.ndarray, r: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Box means of the guided filter's a and b for a grey guide ``g`` (h x w) and ``p`` (h x w [x C])."""
    mean_i = box_mean(g, r)
    var_i = box_mean(g * g, r) - mean_i * mean_i
    if p.ndim == 3:
        mean_i, var_i, g = mean_i[..., None], var_i[..., None], g[..., None]
    mean_p = box_mean(p, r)
    cov = box_mean(p * g, r) - mean_i * mean_p
    a = cov / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, r), box_mean(b, r)


def _colour_coefficients(g: np.ndarray, p: np.ndarray, r: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Box means of the guided filter's a (h x w x 3) and b (h x w) for a colour guide ``g`` and ``p`` (h x w)."""
    mean_i = box_mean(g, r)
    mean_p = box_mean(p, r)
    cov_ip = box_mean(g * p[..., None], r) - mean_i * mean_p[..., None]
    # Unique entries of the per-pixel 3x3 covariance of the guide, regularised by eps.
    var = {}
    for i, j in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)):
        var[i, j] = box_mean(g[..., i] * g[..., j], r) - mean_i[..., i] * mean_i[..., j]
        if i == j:
            var[i, j] += eps
    a11, a12, a13, a22, a23, a33 = (var[k] for k in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)))
    # Inverse of the symmetric matrix through its adjugate.
    c11 = a22 * a33 - a23 * a23
    c12 = a13 * a23 - a12 * a33
    c13 = a12 * a23 - a13 * a22
    c22 = a11 * a33 - a13 * a13
    c23 = a13 * a12 - a11 * a23
    c33 = a11 * a22 - a12 * a12
    det = a11 * c11 + a12 * c12 + a13 * c13
    x, y, z = cov_ip[..., 0], cov_ip[..., 1], cov_ip[..., 2]
    a = np.empty(det.shape + (3,), np.float32)
    for k, (u, v, t) in enumerate(((c11, c12, c13), (c12, c22, c23), (c13, c23, c33))):
        np.divide(u * x + v * y + t * z, det, out=a[..., k])
    b = mean_p - _dot3(a, mean_i)
    return box_mean(a, r), box_mean(b, r)


def composite_over(fg: np.ndarray, alpha: np.ndarray, background) -> np.ndarray:
    """Straight-alpha ``fg`` (H x W x 3) over ``background`` (H x W x 3 image or an RGB triple)."""
    a = alpha[..., None] if alpha.ndim == 2 else alpha
    bg = np.broadcast_to(np.asarray(background, np.float32), fg.shape)
    return (fg[..., :3] * a + bg * (1.0 - a)).astype(np.float32)


def bounding_box(alpha: np.ndarray, threshold: float = 0.05, margin: float = 0.0) -> tuple[int, int, int, int] | None:
    """(top, left, bottom, right) of pixels with alpha > threshold, grown by ``margin`` x size; None if empty."""
    rows = np.flatnonzero((alpha > threshold).any(axis=1))
    cols = np.flatnonzero((alpha > threshold).any(axis=0))
    if rows.size == 0:
        return None
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    pad_y, pad_x = round((bottom - top) * margin), round((right - left) * margin)
    h, w = alpha.shape
    return max(0, top - pad_y), max(0, left - pad_x), min(h, bottom + pad_y), min(w, right + pad_x)


def tiles_holding(flags: np.ndarray, reach: int, tile: int) -> list[tuple[slice, slice]]:
    """(rows, columns) of the tile x tile blocks of an H x W grid holding a True pixel of ``flags``
    (H x W bool) within ``reach`` px: where band-limited work (edge filter, matting, colours) is done."""
    height, width = flags.shape
    found = []
    for y in range(0, height, tile):
        for x in range(0, width, tile):
            if flags[max(0, y - reach) : y + tile + reach, max(0, x - reach) : x + tile + reach].any():
                found.append((slice(y, min(height, y + tile)), slice(x, min(width, x + tile))))
    return found


def grown(box: tuple[slice, slice], margin: int, shape: tuple[int, ...]) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """``box`` (row and column slices) grown by ``margin`` px within ``shape`` (H, W, ...), and the
    box's place inside the grown one."""
    ys, xs = box
    y0, x0 = max(0, ys.start - margin), max(0, xs.start - margin)
    outer = (slice(y0, min(shape[0], ys.stop + margin)), slice(x0, min(shape[1], xs.stop + margin)))
    return outer, (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))


_POOL: dict[str, ThreadPoolExecutor] = {}
_POOL_LOCK = threading.Lock()
_IN_POOL = threading.local()


def each_tile(work: Callable[[_Item], _Result], tiles: Sequence[_Item]) -> list[_Result]:
    """``[work(tile) for tile in tiles]``, the calls spread over one thread per core (the band's numpy and
    OpenCV arithmetic lets go of the GIL), the results in the tiles' order. ``work`` must only read shared
    arrays: the caller writes the results once all are made. One tile, one core, or a call from inside such a
    thread: in this thread. ``$MATTEKIT_FINISH_THREADS`` caps the threads (1: none)."""
    threads = min(len(tiles), cpu_count(), _thread_cap())
    if threads <= 1 or getattr(_IN_POOL, "inside", False):
        return [work(tile) for tile in tiles]
    with _POOL_LOCK:
        pool = _POOL.get("tiles")
        if pool is None or pool._max_workers < threads:  # noqa: SLF001 - grown when the affinity grew
            pool = _POOL["tiles"] = ThreadPoolExecutor(cpu_count(), "mattekit-tile", initializer=_mark_pool_thread)
    return list(pool.map(work, tiles))


def _mark_pool_thread() -> None:
    _IN_POOL.inside = True


def _thread_cap() -> int:
    text = os.environ.get("MATTEKIT_FINISH_THREADS", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else 1 << 16


def parse_colour(text: str) -> tuple[float, float, float]:
    """'#rrggbb', 'rrggbb', 'r,g,b' (0..255) or a few names -> RGB floats in [0,1]; ValueError otherwise."""
    names = {"white": "#ffffff", "black": "#000000", "green": "#00ff00", "blue": "#0000ff", "red": "#ff0000", "grey": "#808080", "gray": "#808080"}
    t = names.get(text.strip().lower(), text.strip())
    if "," in t:
        parts = [float(v) for v in t.split(",")]
        if len(parts) != 3 or not all(0 <= v <= 255 for v in parts):
            raise ValueError(text)
        return tuple(v / 255.0 for v in parts)
    t = t.lstrip("#")
    if len(t) != 6:
        raise ValueError(text)
    return tuple(int(t[i : i + 2], 16) / 255.0 for i in (0, 2, 4))


# ----------------------------------------------------------------------------------- alpha compositing

def premultiply(rgba: np.ndarray) -> np.ndarray:
    """Straight RGBA (H x W x 4) -> premultiplied RGBA (colour times alpha), float32."""
    rgba = np.asarray(rgba, np.float32)
    return np.concatenate([rgba[..., :3] * rgba[..., 3:4], rgba[..., 3:4]], axis=-1)


def unpremultiply(rgba: np.ndarray, threshold: float = 1e-6) -> np.ndarray:
    """Premultiplied RGBA -> straight RGBA, float32; colour is 0 where alpha <= ``threshold``."""
    rgba = np.asarray(rgba, np.float32)
    a = rgba[..., 3:4]
    safe = np.where(a > threshold, a, 1.0)
    colour = np.where(a > threshold, np.clip(rgba[..., :3] / safe, 0.0, 1.0), 0.0)
    return np.concatenate([colour, a], axis=-1).astype(np.float32)


def gaussian_blur(x: np.ndarray, sigma: float, coarse: bool = False) -> np.ndarray:
    """Gaussian blur of H x W (x C) float32 with standard deviation ``sigma`` px (reflecting edges).

    ``coarse``: for a wide blur (sigma >= 16 px) blur a copy shrunk by a power of two (sigma stays
    >= 8 px there) and enlarge it bilinearly, the shrinking and enlarging counted in the blur's
    variance: the cost no longer grows with sigma, and the result differs from the exact blur by
    well under 1 % of the input's range.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if sigma <= 0:
        return x.copy()
    h, w = x.shape[:2]
    factor = 1
    while coarse and sigma >= 16 * factor and min(h, w) >= 32 * factor:
        factor *= 2
    if factor == 1:
        return cv2.GaussianBlur(x, (0, 0), sigmaX=float(sigma), borderType=cv2.BORDER_REFLECT).reshape(x.shape)
    # Variances in full-size pixels: the area shrink's box (f^2 - 1) / 12, the bilinear tent's f^2 / 6.
    rest = np.sqrt(sigma**2 - (factor**2 - 1) / 12 - factor**2 / 6) / factor
    small = resize(x, -(-h // factor), -(-w // factor), "area")
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=float(rest), borderType=cv2.BORDER_REFLECT).reshape(small.shape)
    return resize(small, h, w, "bilinear")


def fit_cover(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale ``image`` to cover (height, width) keeping its aspect ratio, then crop the centre."""
    h, w = image.shape[:2]
    s = max(height / h, width / w)
    nh, nw = max(height, int(np.ceil(h * s))), max(width, int(np.ceil(w * s)))
    scaled = resize(image, nh, nw, "area" if s < 1 else "bilinear")
    top, left = (nh - height) // 2, (nw - width) // 2
    return scaled[top : top + height, left : left + width]


def blurred_background(image: np.ndarray, alpha: np.ndarray, sigma: float) -> np.ndarray:
    """The photo's own background, blurred, with the subject left out (H x W x 3).

    A normalised convolution of the colours weighted by ``1 - alpha``: the subject does not
    smear into its surroundings as it would with a plain blur of the photo. Where the subject
    covers everything within reach of the blur, the plain blur fills in.
    """
    rgb = np.ascontiguousarray(image[..., :3], dtype=np.float32)
    weight = np.clip(1.0 - np.asarray(alpha, np.float32), 0.0, 1.0)
    num = gaussian_blur(rgb * weight[..., None], sigma)
    den = gaussian_blur(weight, sigma)[..., None]
    plain = gaussian_blur(rgb, sigma)
    return np.where(den > 1e-3, num / np.maximum(den, 1e-3), plain).astype(np.float32)


def drop_shadow(alpha: np.ndarray, offset: tuple[int, int] = (12, 12), sigma: float = 8.0,
                opacity: float = 0.5) -> np.ndarray:
    """Coverage (H x W) of a soft shadow cast by ``alpha``: shifted by ``offset`` (dy, dx) px, blurred by ``sigma``."""
    a = np.asarray(alpha, np.float32)
    h, w = a.shape
    dy, dx = (int(v) for v in offset)
    shifted = np.zeros_like(a)
    shifted[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)] = \
        a[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
    return np.clip(gaussian_blur(shifted, sigma) * opacity, 0.0, 1.0)


def composite(fg: np.ndarray, alpha: np.ndarray, background, shadow: np.ndarray | None = None,
              shadow_colour=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Straight-alpha foreground colours over a background (RGB triple or H x W x 3 image),
    optionally with a shadow coverage (see :func:`drop_shadow`) laid on the background first.
    Returns H x W x 3 float32."""
    bg = np.broadcast_to(np.asarray(background, np.float32), fg[..., :3].shape)
    if shadow is not None:
        bg = composite_over(np.broadcast_to(np.asarray(shadow_colour, np.float32), bg.shape), shadow, bg)
    return composite_over(fg[..., :3], alpha, bg)
