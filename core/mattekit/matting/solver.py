"""Multigrid-preconditioned conjugate gradients for symmetric stencil systems on a pixel grid.

A system matrix is stored as a *half stencil*: an array ``S`` of shape (n, H, W) holding,
for each pixel, the diagonal (plane 0) and its entries towards the neighbours of the
"positive" half of a K x K neighbourhood (the offsets after the centre in raster order):
K = 5 gives 13 planes, K = 3 gives 5. Symmetry supplies the other half. Only pixels of a
boolean ``mask`` are unknowns; entries touching other pixels must be zero (callers move those
terms to the right-hand side). The matrix must be symmetric positive (semi)definite there.

The preconditioner is an aggregation multigrid V-cycle: 2x2 blocks of unknowns merge into
one coarse unknown, coarse operators are exact Galerkin products (a 5x5 stencil becomes 3x3
and stays 3x3), damped Jacobi smooths before and after each coarse correction, and the
coarsest level (a few dozen unknowns) is solved directly. Every step is a few whole-array
OpenCV/numpy calls: the cost is linear in the grid size, and since the iteration count is
fixed the solver always returns in bounded time.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

COARSEST = 64  # unknowns at or below which a level is solved directly


def half_offsets(n_planes: int) -> list[tuple[int, int]]:
    """(dy, dx) of each plane of a half stencil: (0, 0) first, then the positive half in raster order."""
    k = {13: 5, 5: 3}[n_planes]
    r = k // 2
    return [(i // k - r, i % k - r) for i in range(k * k // 2, k * k)]


def _window(a: np.ndarray, dy: int, dx: int, h: int, w: int, pad: int) -> np.ndarray:
    """The (h, w) view of a ``pad``-padded array shifted by (dy, dx)."""
    return a[pad + dy : pad + dy + h, pad + dx : pad + dx + w]


def apply(stencil: np.ndarray, x: np.ndarray) -> np.ndarray:
    """y = A x for a half stencil (n, H, W) and x (H, W), float32."""
    n, h, w = stencil.shape
    pad = 2 if n == 13 else 1
    xp = cv2.copyMakeBorder(x, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0.0)
    yp = np.zeros((h + 2 * pad, w + 2 * pad), np.float32)
    y = yp[pad : pad + h, pad : pad + w]
    cv2.accumulateProduct(stencil[0], x, y)
    for k, (dy, dx) in enumerate(half_offsets(n)[1:], 1):
        cv2.accumulateProduct(stencil[k], _window(xp, dy, dx, h, w, pad), y)
        cv2.accumulateProduct(stencil[k], x, _window(yp, dy, dx, h, w, pad))
    return y


def _shift_add(dst: np.ndarray, src: np.ndarray, dy: int, dx: int) -> None:
    """dst[y + dy, x + dx] += src[y, x] wherever both exist."""
    h, w = dst.shape
    dst[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)] += src[
        max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)
    ]


def coarsen(stencil: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Galerkin coarse operator P^T A P over 2x2 aggregates -> (3x3 half stencil, coarse mask)."""
    n, h, w = stencil.shape
    hc, wc = (h + 1) // 2, (w + 1) // 2
    if (h, w) != (2 * hc, 2 * wc):
        stencil = np.pad(stencil, ((0, 0), (0, 2 * hc - h), (0, 2 * wc - w)))
        mask = np.pad(mask, ((0, 2 * hc - h), (0, 2 * wc - w)))
    coarse = np.zeros((5, hc, wc), np.float32)
    add_galerkin(coarse, stencil)
    cmask = mask[0::2, 0::2] | mask[1::2, 0::2] | mask[0::2, 1::2] | mask[1::2, 1::2]
    return coarse, cmask


def add_galerkin(coarse, stencil) -> None:
    """Add into ``coarse`` (5, hc, wc float32, a 3x3 half stencil) the Galerkin product P^T A P of ``stencil`` (n, 2 hc,
    2 wc) over 2x2 aggregates: numpy arrays or torch tensors alike."""
    plane_of = {d: i for i, d in enumerate(half_offsets(5))}
    for k, (dy, dx) in enumerate(half_offsets(stencil.shape[0])):
        for py in (0, 1):
            for px in (0, 1):
                part = stencil[k, py::2, px::2]
                cy, cx = (py + dy) // 2, (px + dx) // 2
                if k == 0:
                    coarse[0] += part
                elif (cy, cx) == (0, 0):
                    coarse[0] += 2.0 * part  # both (p, q) and (q, p) fall in one block
                elif (cy, cx) in plane_of:
                    coarse[plane_of[cy, cx]] += part
                else:  # stored on the other block, as the mirrored entry
                    _shift_add(coarse[plane_of[-cy, -cx]], part, cy, cx)


def _restrict(r: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Sums over the 2x2 blocks (hc x wc = ``shape``); a block cut by an odd edge sums what it holds."""
    out = r[0::2, 0::2].copy()
    for dy, dx in ((1, 0), (0, 1), (1, 1)):
        part = r[dy::2, dx::2]
        out[: part.shape[0], : part.shape[1]] += part
    return out


def _prolong(xc: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    return cv2.resize(xc, (xc.shape[1] * 2, xc.shape[0] * 2), interpolation=cv2.INTER_NEAREST)[:h, :w]


def _dense(stencil: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The masked matrix as a dense array, with the flat indices of its unknowns."""
    h, w = mask.shape
    flat = np.flatnonzero(mask)
    index = np.full(h * w, -1, np.int64)
    index[flat] = np.arange(flat.size)
    ys, xs = np.divmod(flat, w)
    dense = np.zeros((flat.size, flat.size), np.float64)
    dense[np.arange(flat.size), np.arange(flat.size)] = stencil[0].ravel()[flat]
    for k, (dy, dx) in enumerate(half_offsets(stencil.shape[0])[1:], 1):
        y2, x2 = ys + dy, xs + dx
        inside = (y2 >= 0) & (y2 < h) & (x2 >= 0) & (x2 < w)
        cols = np.full(flat.size, -1)
        cols[inside] = index[y2[inside] * w + x2[inside]]
        rows = np.flatnonzero(cols >= 0)
        values = stencil[k].ravel()[flat[rows]]
        dense[rows, cols[rows]] += values
        dense[cols[rows], rows] += values
    return flat, dense


def _inverse(a: np.ndarray) -> np.ndarray:
    """Inverse of a small symmetric positive semidefinite matrix by Gauss-Jordan elimination.

    Directions with no stiffness (a zero pivot: unknowns that nothing constrains) get a zero
    row and column, like a pseudo-inverse. Plain numpy: LAPACK's thread start-up costs more
    than this whole inversion for the few dozen unknowns of a coarsest level.
    """
    n = a.shape[0]
    a = a.astype(np.float64, copy=True)
    inv = np.eye(n)
    tiny = 1e-12 * max(1.0, float(np.abs(np.diag(a)).max(initial=0.0)))
    dead = np.zeros(n, bool)
    for k in range(n):
        pivot = a[k, k]
        if pivot <= tiny:
            dead[k] = True
            a[k], a[:, k], inv[k] = 0.0, 0.0, 0.0
            continue
        row_a, row_inv = a[k] / pivot, inv[k] / pivot
        factor = a[:, k].copy()
        factor[k] = 0.0
        a -= np.multiply.outer(factor, row_a)
        inv -= np.multiply.outer(factor, row_inv)
        a[k], inv[k] = row_a, row_inv
    inv[dead] = 0.0
    inv[:, dead] = 0.0
    return inv


def drop_known(stencil, mask, padded) -> None:
    """Zero, in place, the entries of a 5x5 half stencil (13, h, w) that touch a pixel off ``mask`` (h x w, float
    0/1; ``padded``: it with 2 px of zeros around), so that only the unknowns' rows and columns are left: numpy arrays
    or torch tensors alike."""
    h, w = mask.shape
    for k, (dy, dx) in enumerate(half_offsets(13)):
        stencil[k] *= mask * padded[2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w]


def direct(stencil: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A coarsest level's direct solve: (the flat indices of its unknowns, n; the inverse of its masked matrix,
    n x n float64), for a half stencil (n_planes, H, W) and its mask (H x W bool) of at most a few dozen unknowns."""
    flat, dense = _dense(stencil, mask)
    return flat, _inverse(dense)


@dataclass
class _Level:
    stencil: np.ndarray
    mask: np.ndarray
    inv_diag: np.ndarray  # omega / diagonal on unknowns, 0 elsewhere
    direct: tuple | None = None  # (flat indices, inverse) on the coarsest level


class Multigrid:
    """V-cycle preconditioner for a masked SPD half-stencil system (see the module docstring)."""

    def __init__(self, stencil: np.ndarray, mask: np.ndarray, omega: float = 0.75):
        self.omega = omega
        self.levels: list[_Level] = []
        while True:
            diag = stencil[0]
            inv = np.zeros_like(diag)
            ok = mask & (diag > 1e-12 * max(1.0, float(diag.max(initial=0.0))))  # no stiffness: not smoothed
            inv[ok] = omega / diag[ok]
            level = _Level(stencil, mask, inv)
            self.levels.append(level)
            if int(mask.sum()) <= COARSEST:  # thin grids (1 or 2 px across) coarsen along their length
                level.direct = direct(stencil, mask)
                break
            stencil, mask = coarsen(stencil, mask)

    def __call__(self, r: np.ndarray) -> np.ndarray:
        return self._cycle(0, r)

    def _cycle(self, i: int, b: np.ndarray) -> np.ndarray:
        level = self.levels[i]
        if level.direct is not None:
            flat, inverse = level.direct
            x = np.zeros(b.shape, np.float32)
            x.ravel()[flat] = inverse @ b.ravel()[flat].astype(np.float64)
            return x
        x = level.inv_diag * b
        r = b - apply(level.stencil, x)
        coarse = self.levels[i + 1].mask.shape
        correction = _prolong(self._cycle(i + 1, _restrict(r, coarse)), b.shape)
        correction *= level.mask
        x += correction
        x += level.inv_diag * (b - apply(level.stencil, x))
        return x


def solve(
    stencil: np.ndarray,
    b: np.ndarray,
    mask: np.ndarray,
    x0: np.ndarray | None = None,
    iterations: int = 20,
    tol: float = 1e-6,
    omega: float = 0.75,
) -> np.ndarray:
    """Solve A x = b on the masked pixels by multigrid-preconditioned CG; x is 0 off the mask.

    ``stencil``: half stencil (13 or 5, H, W) float32, zero on entries off the mask; ``b``
    and ``x0``: (H, W). Stops after ``iterations`` or once the residual norm is below ``tol``
    times its initial value.
    """
    mask = np.asarray(mask, bool)
    weight = mask.astype(np.float32)
    b = np.asarray(b, np.float32) * weight
    x = np.zeros_like(b) if x0 is None else np.asarray(x0, np.float32) * weight
    if not mask.any():
        return x
    precondition = Multigrid(stencil, mask, omega)
    r = b - apply(stencil, x)
    r *= weight
    return conjugate_gradients(
        lambda v: apply(stencil, v),
        precondition,
        r,
        x,
        iterations,
        tol,
        dot=lambda u, v: float(np.vdot(u, v)),
        norm=lambda v: float(np.linalg.norm(v)),
    )


def conjugate_gradients(matvec, precondition, r, x, iterations: int, tol: float, dot, norm):
    """``x`` (H x W) improved in place by preconditioned conjugate gradients from its residual ``r`` = b - A x (masked):
    ``matvec(v)`` = A v, ``precondition(r)`` an approximate inverse, ``dot`` and ``norm`` floats of arrays; stops after
    ``iterations`` or once the residual's norm is below ``tol`` times its first. numpy arrays or torch tensors alike."""
    start = norm(r)
    z = precondition(r)
    p = z * 1.0  # (a copy)
    rz = dot(r, z)
    for _ in range(iterations):
        if start == 0.0 or norm(r) <= tol * start:
            break
        ap = matvec(p)
        pap = dot(p, ap)
        if not pap > 0.0:
            break
        step = rz / pap
        x += step * p
        r -= step * ap
        z = precondition(r)
        rz_new = dot(r, z)
        p *= rz_new / rz
        p += z
        rz = rz_new
    return x
