"""Foreground colour estimation ("colour decontamination") under a soft alpha.

Where alpha is partial, a photo pixel mixes the subject's colour F with the old
background's colour B: ``I = alpha F + (1 - alpha) B``. Cutting out with the photo's own
colours keeps that old background in every hair and soft edge - the halo users see when
they composite over something else. Here F and B are estimated for every pixel by
minimising, over the whole image::

    sum_i |alpha_i F_i + (1 - alpha_i) B_i - I_i|^2
      + sum_{i~j} (eps + gamma |alpha_i - alpha_j|) (|F_i - F_j|^2 + |B_i - B_j|^2)

(the compositing equation plus smoothness that relaxes across alpha edges), solved
coarse-to-fine: from a tiny copy of the image up to full size, each level starts from the
previous level's F and B and runs a few Jacobi sweeps of the per-pixel 2x2 solves. The cost
is a small constant number of whole-image passes (the idea of Germer et al.'s multi-level
foreground estimation; this is an independent vectorised implementation).
"""
from __future__ import annotations

import cv2
import numpy as np


NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def _sweeps(image: np.ndarray, alpha: np.ndarray, fg: np.ndarray, bg: np.ndarray, count: int,
            eps: float, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """``count`` Jacobi sweeps of the per-pixel solves at one level; returns the new (F, B)."""
    h, w = alpha.shape
    a = alpha[..., None]
    padded = np.pad(alpha, 1, mode="edge")
    weights = [eps + gamma * np.abs(alpha - padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]) for dy, dx in NEIGHBOURS]
    total = sum(weights)[..., None]
    weights = [wt[..., None] for wt in weights]
    # Per-pixel 2x2 system [[a^2 + W, a(1-a)], [a(1-a), (1-a)^2 + W]] [F, B] = [a I + sum w F_j, (1-a) I + sum w B_j],
    # solved for F and B together (6 channels) by its inverse.
    m00, m01, m11 = a * a + total, a * (1.0 - a), (1.0 - a) * (1.0 - a) + total
    inv_det = 1.0 / (m00 * m11 - m01 * m01)
    i00, i01, i11 = m11 * inv_det, -m01 * inv_det, m00 * inv_det
    ai, bi = a * image, (1.0 - a) * image
    both = np.concatenate([fg, bg], axis=-1)
    for _ in range(count):
        p = np.pad(both, ((1, 1), (1, 1), (0, 0)), mode="edge")
        s = sum(wt * p[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for wt, (dy, dx) in zip(weights, NEIGHBOURS))
        rf, rb = ai + s[..., :3], bi + s[..., 3:]
        both = np.concatenate([i00 * rf + i01 * rb, i01 * rf + i11 * rb], axis=-1)
        np.clip(both, 0.0, 1.0, out=both)
    return both[..., :3], both[..., 3:]


def estimate_foreground(image: np.ndarray, alpha: np.ndarray, *, eps: float = 5e-3, gamma: float = 0.1,
                        coarse_sweeps: int = 10, fine_sweeps: int = 2, start_size: int = 32,
                        return_background: bool = False):
    """Foreground colours F (H x W x 3 float32 in [0,1]) of an sRGB image under ``alpha`` (H x W).

    Only the bounding box of partial alpha (0 < alpha < 1, plus a margin) is computed, and on
    large levels only the tiles holding partial alpha; opaque pixels keep the photo's colour.
    Levels grow by 2 from ``start_size`` pixels on the long side; levels up to 1/4 of full size
    get ``coarse_sweeps`` sweeps, the two finest ``fine_sweeps``. ``return_background`` also
    returns the estimated background colours.
    """
    image = np.ascontiguousarray(image[..., :3], dtype=np.float32)
    alpha = np.clip(np.asarray(alpha, np.float32), 0.0, 1.0)
    fg_out, bg_out = image.copy(), image.copy()
    partial = (alpha > 1e-3) & (alpha < 1.0 - 1e-3)
    if partial.any():
        h, w = alpha.shape
        rows, cols = np.flatnonzero(partial.any(axis=1)), np.flatnonzero(partial.any(axis=0))
        margin = max(8, int(0.02 * max(h, w)))
        ys = slice(max(0, rows[0] - margin), min(h, rows[-1] + 1 + margin))
        xs = slice(max(0, cols[0] - margin), min(w, cols[-1] + 1 + margin))
        f, b = _multilevel(image[ys, xs], alpha[ys, xs], eps, gamma, coarse_sweeps, fine_sweeps, start_size)
        a = alpha[ys, xs, None]
        # An opaque pixel is all subject, a clear one all background: those keep the photo's colour.
        fg_out[ys, xs] = np.where(a >= 1.0 - 1e-3, image[ys, xs], f)
        bg_out[ys, xs] = np.where(a <= 1e-3, image[ys, xs], b)
    return (fg_out, bg_out) if return_background else fg_out


def _multilevel(image, alpha, eps, gamma, coarse_sweeps, fine_sweeps, start_size):
    h, w = alpha.shape
    sizes = [(h, w)]
    while max(sizes[-1]) > start_size:
        sh, sw = sizes[-1]
        sizes.append((max(1, (sh + 1) // 2), max(1, (sw + 1) // 2)))
    sizes.reverse()
    # Start from the mean colours of the (mostly) foreground and background pixels.
    weight = alpha[..., None]
    mean_f = (image * weight).sum((0, 1)) / max(float(weight.sum()), 1e-6)
    mean_b = (image * (1 - weight)).sum((0, 1)) / max(float((1 - weight).sum()), 1e-6)
    fg = np.broadcast_to(mean_f.astype(np.float32), sizes[0] + (3,)).copy()
    bg = np.broadcast_to(mean_b.astype(np.float32), sizes[0] + (3,)).copy()
    for level, (sh, sw) in enumerate(sizes):
        if (sh, sw) == (h, w):
            img, a = image, alpha
        else:
            img = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
            a = cv2.resize(alpha, (sw, sh), interpolation=cv2.INTER_AREA)
        if fg.shape[:2] != (sh, sw):
            fg = cv2.resize(fg, (sw, sh), interpolation=cv2.INTER_LINEAR)
            bg = cv2.resize(bg, (sw, sh), interpolation=cv2.INTER_LINEAR)
        count = fine_sweeps if level >= len(sizes) - 2 else coarse_sweeps
        if sh * sw <= TILE * TILE * 4:
            fg, bg = _sweeps(img, a, fg, bg, count, eps, gamma)
        else:
            _tiled_sweeps(img, a, fg, bg, count, eps, gamma)
    return fg, bg


TILE = 256


def _tiled_sweeps(image, alpha, fg, bg, count, eps, gamma) -> None:
    """The sweeps of :func:`_sweeps` tile by tile, in place, skipping tiles without partial alpha.

    A tile is computed with a halo of ``count`` pixels, so its interior is exactly what the
    whole-image sweeps give; where alpha is all 0 or all 1 the colours cannot matter (opaque
    pixels keep the photo's colour, clear ones are invisible) and stay as upsampled.
    """
    h, w = alpha.shape
    partial = ((alpha > 1e-3) & (alpha < 1.0 - 1e-3)).astype(np.uint8)
    partial = cv2.dilate(partial, np.ones((2 * count + 1, 2 * count + 1), np.uint8))
    for top in range(0, h, TILE):
        for left in range(0, w, TILE):
            bottom, right = min(h, top + TILE), min(w, left + TILE)
            if not partial[top:bottom, left:right].any():
                continue
            ys = slice(max(0, top - count), min(h, bottom + count))
            xs = slice(max(0, left - count), min(w, right + count))
            f, b = _sweeps(image[ys, xs], alpha[ys, xs], fg[ys, xs], bg[ys, xs], count, eps, gamma)
            inner = (slice(top - ys.start, bottom - ys.start), slice(left - xs.start, right - xs.start))
            fg[top:bottom, left:right], bg[top:bottom, left:right] = f[inner], b[inner]
