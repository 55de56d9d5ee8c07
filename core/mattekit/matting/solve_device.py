"""The edge matte's solve (:func:`mattekit.matting.alpha.solve_band`: the matting Laplacian of
:mod:`mattekit.matting.laplacian` and the multigrid-preconditioned conjugate gradients of :mod:`mattekit.matting.solver`)
as torch operations on a model's device (a GPU), with the same arithmetic (float64 window covariances and Cholesky
factors, float32 after), the Laplacian's windows taken all at once rather than in strips, so the alpha equals the CPU's
to float rounding. The colour evidence, the trimap and the coarsest level's direct inverse (a few dozen unknowns) stay
on the CPU. Images h x w x 3 float32 in [0,1]; masks, targets and weights h x w (bool or float32); stencils
(13 or 5, h, w) float32 tensors.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..ops.on_device import to_device, unless_out_of_memory
from . import solver
from .laplacian import PAIR_PLANES, WINDOW, pair_terms


def solve_on(
    device: torch.device,
    image: np.ndarray,
    fg: np.ndarray,
    unknown: np.ndarray,
    prior: np.ndarray,
    weight: np.ndarray,
    x0: np.ndarray,
    eps: float,
    iterations: int,
    omega: float = 0.75,
) -> np.ndarray | None:
    """Minimise ``x^T L x + sum weight (x - prior)^2`` over the ``unknown`` pixels (h x w bool), the ``fg`` pixels
    (h x w bool) fixed to 1 and the others to 0, L the matting Laplacian of ``image`` (regulariser ``eps``), by
    ``iterations`` of multigrid-preconditioned conjugate gradients from ``x0`` on ``device``: x, h x w float32 (0 off
    the unknown pixels), on the host; None where the device's memory runs out (the caller solves it on the CPU)."""
    return unless_out_of_memory(_solve, device, image, fg, unknown, prior, weight, x0, eps, iterations, omega)


def _solve(device, image, fg, unknown, prior, weight, x0, eps, iterations, omega) -> np.ndarray:
    def put(a):
        return to_device(np.ascontiguousarray(a, dtype=np.float32), device)

    mask, weight = put(unknown), put(weight)
    stencil = laplacian(put(image), eps)
    rhs = weight * put(prior) - apply(stencil, put(fg))
    solver.drop_known(stencil, mask, F.pad(mask, (2, 2, 2, 2)))
    stencil[0] += weight
    return conjugate_gradients(stencil, rhs, mask, put(x0), iterations, omega).cpu().numpy()


def laplacian(image: torch.Tensor, eps: float) -> torch.Tensor:
    """:func:`mattekit.matting.laplacian.laplacian_stencil` of ``image`` (h x w x 3 float32) with every row: the half
    stencil (13, h, w) float32. Entries of rows a ``rows_of`` there would skip come out whole here; the solve keeps
    only rows of unknown pixels, which are the same."""
    h, w = image.shape[:2]
    stencil = torch.zeros((13, h, w), dtype=torch.float32, device=image.device)
    if h < 3 or w < 3:
        return stencil
    img = image.permute(2, 0, 1).double()
    mu = F.avg_pool2d(F.pad(img[None], (1, 1, 1, 1), mode="replicate"), 3, 1)[0, :, 1 : h - 1, 1 : w - 1]
    wide = [img[:, 1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx] - mu for dy, dx in WINDOW]  # 3 x (h-2) x (w-2) each
    cov = {}
    for i in range(3):
        for j in range(i, 3):
            acc = wide[0][i] * wide[0][j]
            for c in wide[1:]:
                acc += c[i] * c[j]
            cov[i, j] = acc
    r00 = torch.sqrt(cov[0, 0] + eps)
    r01, r02 = cov[0, 1] / r00, cov[0, 2] / r00
    r11 = torch.sqrt(torch.clamp(cov[1, 1] + eps - r01 * r01, min=eps))
    r12 = (cov[1, 2] - r01 * r02) / r11
    r22 = torch.sqrt(torch.clamp(cov[2, 2] + eps - r02 * r02 - r12 * r12, min=eps))
    inv00, inv11, inv22 = ((1.0 / r).float() for r in (r00, r11, r22))
    r01, r02, r12 = (r.float() for r in (r01, r02, r12))
    c = (3.0 * torch.stack(wide)).float()  # 9 x 3 x (h-2) x (w-2)
    white = torch.empty_like(c)
    white[:, 0] = c[:, 0] * inv00
    white[:, 1] = (c[:, 1] - r01 * white[:, 0]) * inv11
    white[:, 2] = (c[:, 2] - r02 * white[:, 0] - r12 * white[:, 1]) * inv22
    for a, (ay, ax) in enumerate(WINDOW):
        stencil[PAIR_PLANES[a], 1 + ay : h - 1 + ay, 1 + ax : w - 1 + ax] += pair_terms(white, a)
    return stencil


def apply(stencil: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """y = A x for a half stencil (n, h, w) and x (h, w), float32 (:func:`mattekit.matting.solver.apply`): the stored
    half as one product with x's neighbours at the stencil's offsets (``unfold``), the mirrored half as one ``fold``
    (each product added at its neighbour), a few kernels rather than two per plane."""
    n, h, w = stencil.shape
    k = 5 if n == 13 else 3
    planes = stencil.view(n, h * w)
    near = F.unfold(x[None, None], k, padding=k // 2)[0, k * k // 2 :]  # x at the half offsets: n x hw
    y = (planes * near).sum(0).view(h, w)
    mirrored = torch.cat(
        [torch.zeros((k * k // 2 + 1, h * w), dtype=x.dtype, device=x.device), planes[1:] * x.view(1, -1)]
    )
    return y + F.fold(mirrored[None], (h, w), k, padding=k // 2)[0, 0]


def coarsen(stencil: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`mattekit.matting.solver.coarsen`: the Galerkin operator over 2 x 2 aggregates (a 3 x 3 half stencil,
    (5, ceil(h/2), ceil(w/2))) and the coarse mask (float32 0/1)."""
    n, h, w = stencil.shape
    hc, wc = (h + 1) // 2, (w + 1) // 2
    stencil = F.pad(stencil, (0, 2 * wc - w, 0, 2 * hc - h))
    mask = F.pad(mask, (0, 2 * wc - w, 0, 2 * hc - h))
    coarse = torch.zeros((5, hc, wc), dtype=torch.float32, device=stencil.device)
    solver.add_galerkin(coarse, stencil)
    return coarse, torch.maximum(
        torch.maximum(mask[0::2, 0::2], mask[1::2, 0::2]), torch.maximum(mask[0::2, 1::2], mask[1::2, 1::2])
    )


class Multigrid:
    """:class:`mattekit.matting.solver.Multigrid` on a device: the same V-cycle (damped Jacobi around a coarse
    correction, 2 x 2 aggregates, the coarsest level's inverse made on the CPU). Masks are float32 0/1 tensors."""

    def __init__(self, stencil: torch.Tensor, mask: torch.Tensor, omega: float = 0.75):
        self.levels = []
        while True:
            diag = stencil[0]
            floor = 1e-12 * max(1.0, float(diag.max()))
            inv = torch.where((mask > 0) & (diag > floor), omega / diag, torch.zeros_like(diag))
            if int(mask.sum()) <= solver.COARSEST:
                flat, inverse = solver.direct(stencil.cpu().numpy(), mask.cpu().numpy() > 0)
                device = stencil.device
                self.levels.append(
                    (stencil, mask, inv, (torch.from_numpy(flat).to(device), torch.from_numpy(inverse).to(device)))
                )
                break
            self.levels.append((stencil, mask, inv, None))
            stencil, mask = coarsen(stencil, mask)

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        return self._cycle(0, r)

    def _cycle(self, i: int, b: torch.Tensor) -> torch.Tensor:
        stencil, mask, inv, direct = self.levels[i]
        if direct is not None:
            flat, inverse = direct
            x = torch.zeros_like(b)
            x.view(-1)[flat] = (inverse @ b.reshape(-1)[flat].double()).float()
            return x
        x = inv * b
        r = b - apply(stencil, x)
        coarse = self.levels[i + 1][1].shape
        r = F.pad(r, (0, 2 * coarse[1] - r.shape[1], 0, 2 * coarse[0] - r.shape[0]))
        restricted = r[0::2, 0::2] + r[1::2, 0::2] + r[0::2, 1::2] + r[1::2, 1::2]
        correction = self._cycle(i + 1, restricted).repeat_interleave(2, 0).repeat_interleave(2, 1)
        x += correction[: b.shape[0], : b.shape[1]] * mask
        x += inv * (b - apply(stencil, x))
        return x


def conjugate_gradients(
    stencil: torch.Tensor,
    b: torch.Tensor,
    mask: torch.Tensor,
    x0: torch.Tensor,
    iterations: int,
    omega: float = 0.75,
    tol: float = 1e-6,
) -> torch.Tensor:
    """:func:`mattekit.matting.solver.solve` on a device: A x = b on the ``mask`` pixels (float32 0/1, h x w) from
    ``x0``; x is 0 off the mask. The same stops: ``iterations``, or the residual below ``tol`` of its start."""
    b, x = b * mask, x0 * mask
    if not bool(mask.any()):
        return x
    precondition = Multigrid(stencil, mask, omega)
    r = (b - apply(stencil, x)) * mask
    return solver.conjugate_gradients(
        lambda v: apply(stencil, v),
        precondition,
        r,
        x,
        iterations,
        tol,
        dot=lambda u, v: float(torch.vdot(u.reshape(-1), v.reshape(-1))),
        norm=lambda v: float(torch.linalg.vector_norm(v)),
    )
