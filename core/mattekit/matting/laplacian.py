"""The closed-form matting Laplacian of Levin, Lischinski and Weiss (2008) as a 5x5 stencil.

For 3x3 windows ``w_k`` fully inside the image, with colour mean ``mu_k`` and covariance
``S_k``, the Laplacian is ``L_ij = sum_k [delta_ij - (1 + (I_i - mu_k)^T (S_k + eps/9 I)^-1
(I_j - mu_k)) / 9]`` over the windows holding both pixels. Pixels interact up to two apart,
so row ``i`` is 25 numbers; by symmetry 13 are stored per pixel (the diagonal and the
entries towards the "positive" half of the 5x5 neighbourhood; the half-stencil layout of
:mod:`mattekit.matting.solver`).

Numerics: window means, centred colours, covariances and a Cholesky factor ``S = R^T R``
are computed in float64; the centred colours are then whitened (``R^-T (I - mu)``), so every
product that remains is of vectors of length at most 3 and float32 suffices without
cancellation, even for the nearly singular covariances of flat windows (eps = 1e-7).
Windows are taken in strips of rows so that the working set stays in cache; when only some
rows of the matrix are wanted (the unknown pixels of a trimap), only the windows holding one
of them are computed, gathered into flat runs (an edge band is a thin ring: about 40 % of the
windows its strips' boxes hold). Each entry gets its windows' terms in the same order either
way (strip by strip, then by the pair's first member), so the wanted rows are the same floats.
"""

from __future__ import annotations

import cv2
import numpy as np

WINDOW = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
STRIP = 32  # rows of window centres per pass: keeps the working set in cache


def _white(wide: np.ndarray, eps: float) -> np.ndarray:
    """The whitened colours ``3 R^-T c`` (9 x 3 x N float32) of the centred colours ``wide`` (9 x 3 x N float64: per
    member of :data:`WINDOW`, per channel, per window), ``9 (S + eps/9 I) = R^T R`` with ``S`` each window's covariance:
    ``w_a . w_b = c_a^T (S + eps/9 I)^-1 c_b``, of length at most 3. The covariance and its Cholesky factor in float64:
    for nearly rank-deficient windows eps is far below the float32 resolution of the colour variances."""
    cov = {}
    for i in range(3):
        for j in range(i, 3):
            acc = wide[0, i] * wide[0, j]
            for c in wide[1:]:
                acc += c[i] * c[j]
            cov[i, j] = acc
    r00 = np.sqrt(cov[0, 0] + eps)
    r01 = cov[0, 1] / r00
    r02 = cov[0, 2] / r00
    r11 = np.sqrt(np.maximum(cov[1, 1] + eps - r01 * r01, eps))
    r12 = (cov[1, 2] - r01 * r02) / r11
    r22 = np.sqrt(np.maximum(cov[2, 2] + eps - r02 * r02 - r12 * r12, eps))
    inv00, inv11, inv22 = ((1.0 / r).astype(np.float32) for r in (r00, r11, r22))
    r01, r02, r12 = (r.astype(np.float32) for r in (r01, r02, r12))
    c = (3.0 * wide).astype(np.float32)
    white = np.empty_like(c)
    white[:, 0] = c[:, 0] * inv00
    white[:, 1] = (c[:, 1] - r01 * white[:, 0]) * inv11
    white[:, 2] = (c[:, 2] - r02 * white[:, 0] - r12 * white[:, 1]) * inv22
    return white


# The plane of the entry between members a and b (b >= a) of a window, stored on pixel k + a at offset b - a.
PAIR_PLANES = [[(by - ay + 2) * 5 + (bx - ax + 2) - 12 for by, bx in WINDOW[a:]] for a, (ay, ax) in enumerate(WINDOW)]


def pair_terms(white, a: int):
    """The entries the pairs (a, b), b = a .. 8, of each window add to the stencil's planes ``PAIR_PLANES[a]``:
    (9 - a) x ... float32 from the whitened colours ``white`` (9 x 3 x ..., the members in the order of
    :data:`WINDOW`): numpy arrays or torch tensors alike."""
    wa, wb = white[a], white[a:]
    g = wa[0] * wb[:, 0]
    g += wa[1] * wb[:, 1]
    g += wa[2] * wb[:, 2]
    g += 1.0
    g *= -np.float32(1.0 / 9.0)
    g[0] += 1.0  # the pair (a, a): the diagonal
    return g


def laplacian_stencil(image: np.ndarray, eps: float = 1e-7, rows_of: np.ndarray | None = None) -> np.ndarray:
    """Matting Laplacian of an RGB image (H x W x 3, float in [0,1]) -> float32 half stencil (13, H, W).

    Windows are the 3x3 windows fully inside the image (border pixels get the entries of
    the windows that hold them). Plane 0 is the diagonal, planes 1..12 the entries towards
    the neighbours at (0, 1), (0, 2), (1, -2) ... (2, 2) (see :mod:`mattekit.matting.solver`).
    ``rows_of`` (H x W bool): only the rows of the matrix for these pixels are wanted; windows
    holding none of them are skipped, so other rows miss entries.
    """
    h, w = image.shape[:2]
    stencil = np.zeros((13, h, w), np.float32)
    if h < 3 or w < 3:
        return stencil
    img = np.ascontiguousarray(image[..., :3], dtype=np.float64)
    mu = cv2.split(cv2.boxFilter(img, cv2.CV_64F, (3, 3), normalize=True, borderType=cv2.BORDER_REPLICATE))
    padded = cv2.split(cv2.copyMakeBorder(img, 1, 1, 1, 1, cv2.BORDER_REPLICATE))  # H + 2 x W + 2 each
    # Window centres (inside the image) whose window holds a wanted pixel.
    centres = np.zeros((h, w), bool)
    if rows_of is None:
        centres[1:-1, 1:-1] = True
    else:
        centres[1:-1, 1:-1] = cv2.dilate(rows_of.astype(np.uint8), np.ones((3, 3), np.uint8))[1:-1, 1:-1]
    flat = stencil.reshape(-1)
    for top in range(1, h - 1, STRIP):
        ys, xs = np.nonzero(centres[top : top + STRIP])
        if ys.size:
            _accumulate(flat, padded, mu, ys + top, xs, eps)
    return stencil


def _accumulate(flat: np.ndarray, padded: list, mu: list, ys: np.ndarray, xs: np.ndarray, eps: float) -> None:
    """Add into ``flat`` (the 13 x H x W stencil, flat) the entries of the windows centred at rows ``ys`` and columns
    ``xs`` (N each, distinct windows), pair member by pair member. ``padded``: the image's channels with a 1-px
    border, ``mu``: the window means, three (H + 2) x (W + 2) and H x W float64 planes."""
    h, w = mu[0].shape
    k = ys * w + xs
    inside = (ys + 1) * (w + 2) + xs + 1
    at = [inside + dy * (w + 2) + dx for dy, dx in WINDOW]
    wide = np.empty((9, 3, k.size))  # the centred colours of each window's members
    for c in range(3):
        centre, plane = mu[c].reshape(-1).take(k), padded[c].reshape(-1)
        for m in range(9):
            np.subtract(plane.take(at[m]), centre, out=wide[m, c])
    white = _white(wide, eps)
    for a, (ay, ax) in enumerate(WINDOW):
        target = (np.array(PAIR_PLANES[a])[:, None] * (h * w) + (k + ay * w + ax)[None]).reshape(-1)
        flat[target] += pair_terms(white, a).reshape(-1)  # (distinct targets: no pair adds twice)
