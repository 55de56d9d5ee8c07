"""Alpha compositing: a foreground over a background, drop shadows, the
photo's own blurred background and background colours given as text. Colours float32 in [0,1], H x W x 3
(or 4 with alpha); alphas H x W.
"""

from __future__ import annotations

import numpy as np

from .filters import gaussian_blur


def composite_over(fg: np.ndarray, alpha: np.ndarray, background) -> np.ndarray:
    """Straight-alpha ``fg`` (H x W x 3) over ``background`` (H x W x 3 image or an RGB triple)."""
    a = alpha[..., None] if alpha.ndim == 2 else alpha
    bg = np.broadcast_to(np.asarray(background, np.float32), fg.shape)
    return (fg[..., :3] * a + bg * (1.0 - a)).astype(np.float32)


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


def drop_shadow(
    alpha: np.ndarray, offset: tuple[int, int] = (12, 12), sigma: float = 8.0, opacity: float = 0.5
) -> np.ndarray:
    """Coverage (H x W) of a soft shadow cast by ``alpha``: shifted by ``offset`` (dy, dx) px, blurred by ``sigma``."""
    a = np.asarray(alpha, np.float32)
    h, w = a.shape
    dy, dx = (int(v) for v in offset)
    shifted = np.zeros_like(a)
    shifted[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)] = a[
        max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)
    ]
    return np.clip(gaussian_blur(shifted, sigma) * opacity, 0.0, 1.0)


def composite(
    fg: np.ndarray, alpha: np.ndarray, background, shadow: np.ndarray | None = None, shadow_colour=(0.0, 0.0, 0.0)
) -> np.ndarray:
    """Straight-alpha foreground colours over a background (RGB triple or H x W x 3 image),
    optionally with a shadow coverage (see :func:`drop_shadow`) laid on the background first.
    Returns H x W x 3 float32."""
    bg = np.broadcast_to(np.asarray(background, np.float32), fg[..., :3].shape)
    if shadow is not None:
        bg = composite_over(np.broadcast_to(np.asarray(shadow_colour, np.float32), bg.shape), shadow, bg)
    return composite_over(fg[..., :3], alpha, bg)


def parse_colour(text: str) -> tuple[float, float, float]:
    """'#rrggbb', 'rrggbb', 'r,g,b' (0..255) or a few names -> RGB floats in [0,1]; ValueError otherwise."""
    names = {
        "white": "#ffffff",
        "black": "#000000",
        "green": "#00ff00",
        "blue": "#0000ff",
        "red": "#ff0000",
        "grey": "#808080",
        "gray": "#808080",
    }
    t = names.get(text.strip().lower(), text.strip())
    if "," in t:
        parts = [float(v) for v in t.split(",")]
        if len(parts) != 3 or not all(0 <= v <= 255 for v in parts):
            raise ValueError(text)
        return parts[0] / 255.0, parts[1] / 255.0, parts[2] / 255.0
    t = t.lstrip("#")
    if len(t) != 6:
        raise ValueError(text)
    return int(t[0:2], 16) / 255.0, int(t[2:4], 16) / 255.0, int(t[4:6], 16) / 255.0
