"""Smoothing filters: box mean, Gaussian blur and the guided filter. Arrays are float32 H x W (x C);
radii and sigmas in pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from .resizing import resize


def box_mean(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window, edges handled by reflection. Works on H x W or H x W x C."""
    k = 2 * int(radius) + 1
    return cv2.boxFilter(x, cv2.CV_32F, (k, k), normalize=True, borderType=cv2.BORDER_REFLECT)


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
