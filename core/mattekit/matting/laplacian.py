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
Windows are processed in strips of rows so that the working set stays in cache; when only
some rows of the matrix are wanted (the unknown pixels of a trimap), a strip's windows that
hold none of them are skipped.
"""

from __future__ import annotations

import cv2
import numpy as np

WINDOW = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
STRIP = 32  # rows of window centres per pass: keeps the working set in cache
GAP = 48  # columns without wanted windows that split a strip's pass in two


def _accumulate(
    stencil: np.ndarray, padded: np.ndarray, mu: np.ndarray, top: int, bottom: int, left: int, right: int, eps: float
) -> None:
    """Add the contributions of the windows centred on rows [top, bottom) and columns [left, right).

    ``padded``: the image with a 1-px border, float64; ``mu``: window means, float64.
    """
    # Centred colours of the 9 members of each window, their covariance and its Cholesky
    # factor in float64: for nearly rank-deficient windows eps is far below the float32
    # resolution of the colour variances.
    wide = [
        padded[1 + top + dy : 1 + bottom + dy, 1 + left + dx : 1 + right + dx] - mu[top:bottom, left:right]
        for dy, dx in WINDOW
    ]
    cov = {}
    for i in range(3):
        for j in range(i, 3):
            acc = wide[0][..., i] * wide[0][..., j]
            for c in wide[1:]:
                acc += c[..., i] * c[..., j]
            cov[i, j] = acc
    # 9 (S + eps/9 I) = R^T R with R upper triangular; the whitened colours 3 R^-T c satisfy
    # w_a . w_b = c_a^T (S + eps/9 I)^-1 c_b and have length at most 3: float32 from here on.
    r00 = np.sqrt(cov[0, 0] + eps)
    r01 = cov[0, 1] / r00
    r02 = cov[0, 2] / r00
    r11 = np.sqrt(np.maximum(cov[1, 1] + eps - r01 * r01, eps))
    r12 = (cov[1, 2] - r01 * r02) / r11
    r22 = np.sqrt(np.maximum(cov[2, 2] + eps - r02 * r02 - r12 * r12, eps))
    inv00, inv11, inv22 = ((1.0 / r).astype(np.float32) for r in (r00, r11, r22))
    r01, r02, r12 = (r.astype(np.float32) for r in (r01, r02, r12))
    white = []
    for c in wide:
        c = (3.0 * c).astype(np.float32)
        w0 = c[..., 0] * inv00
        w1 = (c[..., 1] - r01 * w0) * inv11
        w2 = (c[..., 2] - r02 * w0 - r12 * w1) * inv22
        white.append((w0, w1, w2))
    add_pairs(stencil, white, top, bottom, left, right)


def add_pairs(stencil, white: list, top: int, bottom: int, left: int, right: int) -> None:
    """Add into ``stencil`` (13 x H x W float32) the entries of the windows centred on rows [top, bottom) and columns
    [left, right), from the whitened colours of their 9 members (``white``: per member of :data:`WINDOW` three
    (bottom - top) x (right - left) float32 arrays): numpy arrays or torch tensors alike."""
    ninth = np.float32(1.0 / 9.0)
    for a, (ay, ax) in enumerate(WINDOW):
        wa = white[a]
        for b in range(a, 9):
            by, bx = WINDOW[b]
            wb = white[b]
            g = wa[0] * wb[0]
            g += wa[1] * wb[1]
            g += wa[2] * wb[2]
            g += 1.0
            g *= -ninth
            if a == b:
                g += 1.0
            # Entry between pixels k + a and k + b, stored on pixel k + a at offset b - a.
            plane = (by - ay + 2) * 5 + (bx - ax + 2) - 12
            stencil[plane, top + ay : bottom + ay, left + ax : right + ax] += g


def _runs(flags: np.ndarray, gap: int) -> list[tuple[int, int]]:
    """[start, stop) of the runs of True in a 1-D bool array, runs less than ``gap`` apart merged."""
    on = np.flatnonzero(flags)
    if on.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(on) > gap)
    return list(zip(on[np.r_[0, breaks + 1]], on[np.r_[breaks, on.size - 1]] + 1))


def laplacian_stencil(image: np.ndarray, eps: float = 1e-7, rows_of: np.ndarray | None = None) -> np.ndarray:
    """Matting Laplacian of an RGB image (H x W x 3, float in [0,1]) -> float32 half stencil (13, H, W).

    Windows are the 3x3 windows fully inside the image (border pixels get the entries of
    the windows that hold them). Plane 0 is the diagonal, planes 1..12 the entries towards
    the neighbours at (0, 1), (0, 2), (1, -2) ... (2, 2) (see :mod:`mattekit.matting.solver`).
    ``rows_of`` (H x W bool): only the rows of the matrix for these pixels are wanted; windows
    holding none of them are skipped (in blocks of strips), so other rows may miss entries.
    """
    h, w = image.shape[:2]
    stencil = np.zeros((13, h, w), np.float32)
    if h < 3 or w < 3:
        return stencil
    img = np.ascontiguousarray(image[..., :3], dtype=np.float64)
    mu = cv2.boxFilter(img, cv2.CV_64F, (3, 3), normalize=True, borderType=cv2.BORDER_REPLICATE)
    padded = cv2.copyMakeBorder(img, 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    # Window centres whose window holds a wanted pixel.
    centres = None if rows_of is None else cv2.dilate(rows_of.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    for top in range(1, h - 1, STRIP):
        bottom = min(top + STRIP, h - 1)
        if centres is None:
            spans = [(1, w - 1)]
        else:
            spans = [(max(1, a), min(w - 1, b)) for a, b in _runs(centres[top:bottom].any(axis=0), GAP)]
        for left, right in spans:
            if left < right:
                _accumulate(stencil, padded, mu, top, bottom, left, right, eps)
    return stencil
