"""The local colour-linear model of an alpha (per window ``alpha = a . I + b``, the model the matting
Laplacian is built on): fitted on a shrunk photo, applied to the full-size colours, which carries an alpha
solved at reduced resolution back to full resolution. Images float32 sRGB in [0,1]; boxes (rows, columns) slices.
"""

from __future__ import annotations

import cv2
import numpy as np


def colour_linear_fit(
    small_image: np.ndarray, small_alpha: np.ndarray, eps: float = 1e-5, radius: int = 1
) -> list[np.ndarray]:
    """The local colour-linear model of an alpha on a downscaled image (h x w x 3 and h x w, float32):
    in each (2r+1)^2 window alpha is fitted as ``a . I + b`` (a ridge regression with ``eps``: the
    guided filter's coefficients), and the coefficients are averaged over the windows holding each
    pixel. Returns [a_r, a_g, a_b, b], four h x w float32 planes (:func:`colour_linear_apply` uses them)."""
    k = 2 * radius + 1

    def mean(x):
        return cv2.boxFilter(x, cv2.CV_32F, (k, k), borderType=cv2.BORDER_REFLECT)

    g = [np.ascontiguousarray(small_image[..., c], dtype=np.float32) for c in range(3)]
    p = np.ascontiguousarray(small_alpha, dtype=np.float32)
    mi = [mean(c) for c in g]
    mp = mean(p)
    x, y, z = (mean(c * p) - m * mp for c, m in zip(g, mi))
    v = {}
    for i, j in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)):
        v[i, j] = mean(g[i] * g[j]) - mi[i] * mi[j] + (eps if i == j else 0.0)
    a11, a12, a13, a22, a23, a33 = (v[key] for key in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)))
    c11, c12, c13 = a22 * a33 - a23 * a23, a13 * a23 - a12 * a33, a12 * a23 - a13 * a22
    c22, c23, c33 = a11 * a33 - a13 * a13, a13 * a12 - a11 * a23, a11 * a22 - a12 * a12
    inv_det = 1.0 / (a11 * c11 + a12 * c12 + a13 * c13)
    coef = [
        (c11 * x + c12 * y + c13 * z) * inv_det,
        (c12 * x + c22 * y + c23 * z) * inv_det,
        (c13 * x + c23 * y + c33 * z) * inv_det,
    ]
    coef.append(mp - coef[0] * mi[0] - coef[1] * mi[1] - coef[2] * mi[2])
    return [mean(c) for c in coef]


def enlarged(plane: np.ndarray, factor: int, box: tuple[slice, slice]) -> np.ndarray:
    """``plane`` (h x w [x C], a photo shrunk ``factor`` times, its last row and column holding what was
    left over) enlarged ``factor`` times bilinearly, only inside ``box`` (row and column slices of the
    full size): the same values as enlarging it all, then cropping (the plane is read 2 pixels around)."""
    ys, xs = box
    hs, ws = plane.shape[:2]
    f = factor
    y0, y1 = max(0, ys.start // f - 2), min(hs, -(-ys.stop // f) + 2)
    x0, x1 = max(0, xs.start // f - 2), min(ws, -(-xs.stop // f) + 2)
    inner = (slice(ys.start - y0 * f, ys.stop - y0 * f), slice(xs.start - x0 * f, xs.stop - x0 * f))
    size = ((x1 - x0) * f, (y1 - y0) * f)
    return cv2.resize(np.ascontiguousarray(plane[y0:y1, x0:x1]), size, interpolation=cv2.INTER_LINEAR)[inner]


def colour_linear_apply(
    coefficients: list[np.ndarray], factor: int, colours: np.ndarray, box: tuple[slice, slice]
) -> np.ndarray:
    """Alpha in ``box`` (row and column slices of the full image) from :func:`colour_linear_fit`'s
    coefficients of the image shrunk ``factor`` times, enlarged bilinearly (:func:`enlarged`) and applied
    to the box's full-size ``colours`` (box's size x 3, float32 [0,1]): float32, clipped to [0, 1]."""
    a0, a1, a2, b = (enlarged(c, factor, box) for c in coefficients)
    out = a0 * colours[..., 0] + a1 * colours[..., 1] + a2 * colours[..., 2] + b
    return np.clip(out, 0.0, 1.0).astype(np.float32)
