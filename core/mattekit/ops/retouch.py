"""Automatic photo corrections: gentle denoise, white balance, exposure and local contrast.

Each step can be switched off and all scale with one ``strength`` (:class:`RetouchOptions`).
Highlights are protected: a channel that was clipped stays clipped, and no channel that was below
clipping is pushed to it (increases are rolled off smoothly into the remaining headroom).
Images are sRGB float32 H x W x 3|4 in [0,1] unless said to be linear RGB.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import cv2
import numpy as np

from .filters import guided_filter
from .pixels import linear_to_srgb, srgb_to_linear
from .resizing import resize

CLIP_LEVEL = 1.0 - 0.6 / 255.0  # at or above: clipped (8-bit 255); results stay below it
LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)  # Rec. 709 luminance of linear sRGB
EXPOSURE_BAND = (0.35, 0.75)  # medians of the sRGB-encoded brightest channel taken as well exposed
# Log-chromaticity axes: blue-yellow (the daylight / tungsten locus) and green-magenta.
_BY = np.log(np.array([1.0, 0.8, 0.58]))
_BY = (_BY - _BY.mean()) / np.linalg.norm(_BY - _BY.mean())
_GM = np.cross(_BY, np.ones(3) / np.sqrt(3.0))
_GM /= np.linalg.norm(_GM)


@dataclass
class RetouchOptions:
    """Which steps run and how strongly: strength 0 = unchanged, 1 = the default correction, up to 2.
    The ``enhance`` task declares these fields for the front ends and passes them on with :meth:`of`."""

    white_balance: bool = True
    contrast: bool = True
    denoise: bool = True
    strength: float = 1.0

    @classmethod
    def of(cls, options) -> RetouchOptions:
        """These fields, read from ``options`` (a task's options that declare them)."""
        return cls(**{f.name: getattr(options, f.name) for f in fields(cls)})


# --------------------------------------------------------------------------- white balance


def estimate_illuminant(linear: np.ndarray) -> np.ndarray:
    """Colour of the light in a linear-RGB image (H x W x 3) by the grey-edge hypothesis
    (Minkowski p = 6 mean of the gradient magnitude per channel, sigma 1; clipped and black
    pixels left out). Returns a unit RGB vector."""
    small = linear
    scale = 1024.0 / max(linear.shape[:2])
    if scale < 1.0:
        h, w = linear.shape[:2]  # explicit sizes: a 1-px side must not round to 0
        small = resize(linear, max(1, round(h * scale)), max(1, round(w * scale)), "area")
    g = cv2.GaussianBlur(small, (0, 0), 1.0)
    gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)
    mag = np.sqrt(gx * gx + gy * gy).reshape(-1, 3).astype(np.float64)
    top = small.reshape(-1, 3).max(axis=1)
    mag = mag[(top < 0.95) & (top > 0.01)]
    if mag.shape[0] < 16 or not np.all(mag.max(axis=0) > 0):
        return np.full(3, 1.0 / np.sqrt(3.0))
    mag /= mag.max()
    e = np.mean(mag**6, axis=0) ** (1.0 / 6.0)
    return e / np.linalg.norm(e)


def white_balance_gains(illuminant: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Per-channel gains (geometric mean 1) that neutralise ``illuminant``, partly.

    Estimates from one photo mistake some scene colour for the light, so the correction is
    shrunk: 60% along the blue-yellow axis (where real light sources lie), 40% along
    green-magenta, times ``strength``. Measured on casts applied to real photos, this
    halves the typical over-correction of a full grey-edge correction.
    """
    lc = np.log(np.maximum(illuminant, 1e-6))
    lc -= lc.mean()
    a_by, a_gm = min(1.0, 0.6 * strength), min(1.0, 0.4 * strength)
    correction = -(a_by * (lc @ _BY) * _BY + a_gm * (lc @ _GM) * _GM)
    gains = np.exp(correction - correction.mean())
    return gains.astype(np.float32)


def white_balance(linear: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Automatic white balance of a linear-RGB image (H x W x 3) -> linear RGB (may exceed 1)."""
    return linear * white_balance_gains(estimate_illuminant(linear), strength)


# ------------------------------------------------------------------------ exposure, contrast


def tone(linear: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Exposure and local contrast on lightness only; colours keep their chromaticity.

    Exposure is judged on the brightest channel (a saturated red is not dark): when the median of its
    sRGB encoding lies outside 0.35..0.75, a gamma on lightness moves it half-way into that band (gamma
    within 0.67..1.5, so black and white stay put); a photo inside the band keeps its exposure. Local
    contrast: the mid-scale detail of lightness (a 1.5 px Gaussian minus an edge-preserving base, a
    guided filter of radius 1/24 of the long side) is added at 50% x strength, so flat areas keep their
    level and the finest texture and noise are not amplified. The linear RGB of each pixel is scaled by
    the ratio of new to old luminance. Returns linear RGB (may exceed 1).
    """
    y = np.maximum(linear @ LUMA, 0.0)
    light = linear_to_srgb(np.minimum(y, 1.0))
    value = linear_to_srgb(np.minimum(linear.max(axis=-1), 1.0))
    med = float(np.median(value[:: max(1, value.shape[0] // 256), :: max(1, value.shape[1] // 256)]))
    new = light
    if 0.02 < med < 0.98:
        goal = min(max(med, EXPOSURE_BAND[0]), EXPOSURE_BAND[1])
        gamma = float(np.clip(np.log(goal) / np.log(med), 2.0 / 3.0, 1.5)) ** (0.5 * strength)
        new = np.power(light, np.float32(gamma))
    radius = max(4, round(max(new.shape) / 24))
    base = guided_filter(new, new, radius, 0.1**2)
    detail = cv2.GaussianBlur(new, (0, 0), 1.5) - base
    new = new + np.float32(0.5 * strength) * detail
    y_new = srgb_to_linear(np.clip(new, 0.0, 1.0))
    ratio = np.clip((y_new + 1e-4) / (y + 1e-4), 0.25, 4.0)
    return linear * ratio[..., None]


# ---------------------------------------------------------------------------------- denoise


def noise_sigma(grey: np.ndarray) -> float:
    """Standard deviation of white noise in a grey image, robustly (Immerkaer's operator, MAD)."""
    k = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    resp = cv2.filter2D(grey.astype(np.float32), -1, k)[1:-1, 1:-1]
    if resp.size == 0:  # 1 or 2 px across: no interior to measure, taken as clean
        return 0.0
    return float(np.median(np.abs(resp)) * 1.4826 / 6.0)


def denoise(rgb: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Gentle edge-preserving denoise of sRGB (H x W x 3): luma lightly, chroma more.

    The noise level is measured first; a clean image is left as it is. Luma: self-guided
    filter (radius 2, eps (2 sigma)^2), applied at 60% x strength so fine texture survives.
    Chroma (B - Y, R - Y): guided by the denoised luma (radius 4, eps (3 sigma)^2).
    """
    y = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    sigma = noise_sigma(y)
    if sigma < 0.5 / 255 or strength <= 0:
        return rgb
    cb, cr = rgb[..., 2] - y, rgb[..., 0] - y
    y_smooth = guided_filter(y, y, 2, (2 * sigma) ** 2)
    y_new = y + np.float32(min(1.0, 0.6 * strength)) * (y_smooth - y)
    chroma = guided_filter(y_new, np.stack([cb, cr], -1), 4, (3 * sigma) ** 2)
    mix = np.float32(min(1.0, strength))
    cb, cr = cb + mix * (chroma[..., 0] - cb), cr + mix * (chroma[..., 1] - cr)
    r, b = y_new + cr, y_new + cb
    g = (y_new - 0.299 * r - 0.114 * b) / 0.587
    return np.stack([r, g, b], -1).astype(np.float32)


# ------------------------------------------------------------------------------- highlights


def protect_highlights(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Clipped pixels of ``before`` stay as they were; no other channel reaches clipping.

    Pixels whose brightest channel is near clipping (0.9 .. clipped) fade smoothly back to
    their original values, so clipped areas keep their colour and have no seams. An increase
    uses at most the headroom ``CLIP_LEVEL - before``: the first half as it is, the rest
    rolled off smoothly (exponentially) towards the limit. Decreases are kept.
    """
    head = np.maximum(np.float32(CLIP_LEVEL) - before, 0.0)
    rise = after - before
    knee = 0.5 * head
    soft = 0.5 * head
    over = np.maximum(rise - knee, 0.0)
    rolled = knee + soft * (1.0 - np.exp(-over / np.maximum(soft, 1e-6)))
    out = np.where(rise > knee, before + rolled, after)
    top = np.maximum(np.maximum(before[..., 0], before[..., 1]), before[..., 2])
    fade = np.clip((top - 0.9) / (CLIP_LEVEL - 0.9), 0.0, 1.0)
    fade = (fade * fade * (3.0 - 2.0 * fade))[..., None]
    out = np.where(fade >= 1.0, before, out + fade * (before - out))
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def enhance(image: np.ndarray, options: RetouchOptions | None = None) -> np.ndarray:
    """Enhance an sRGB image (H x W x 3|4 float32 [0,1]) -> same shape; alpha passes through."""
    options = options or RetouchOptions()
    s = float(options.strength)
    if not 0.0 <= s <= 2.0:
        raise ValueError(f"strength must be between 0 and 2, got {s:g}")
    before = np.ascontiguousarray(image[..., :3], dtype=np.float32)
    rgb = denoise(before, s) if options.denoise else before
    if options.white_balance or options.contrast:
        linear = srgb_to_linear(np.clip(rgb, 0.0, 1.0))
        if options.white_balance:
            linear = white_balance(linear, s)
        if options.contrast:
            linear = tone(linear, s)
        rgb = linear_to_srgb(np.maximum(linear, 0.0))
    out = protect_highlights(before, rgb)
    if image.shape[-1] == 4:
        out = np.concatenate([out, image[..., 3:4]], axis=-1)
    return out
