"""The matting Laplacian and its multigrid solver against their definitions (dense algebra), degenerate trimaps, and
strips and single pixels matted without a dense solve."""

from __future__ import annotations

import numpy as np
import pytest

from mattekit.matting import estimate_alpha, solver
from mattekit.matting.laplacian import laplacian_stencil


def dense(stencil, mask):
    flat, matrix = solver._dense(stencil, mask)
    return matrix


def reference_laplacian(image, eps):
    """Levin et al.'s matting Laplacian, window by window (3x3 windows inside the image)."""
    h, w, _ = image.shape
    L = np.zeros((h * w, h * w))
    for y in range(1, h - 1):
        for x in range(1, w - 1):
            idx = [(y + dy) * w + (x + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
            win = image.reshape(-1, 3)[idx].astype(np.float64)
            mu = win.mean(0)
            cov = (win - mu).T @ (win - mu) / 9 + eps / 9 * np.eye(3)
            g = (1 + (win - mu) @ np.linalg.inv(cov) @ (win - mu).T) / 9
            L[np.ix_(idx, idx)] += np.eye(9) - g
    return L


def test_laplacian_stencil_is_the_matting_laplacian():
    rng = np.random.default_rng(0)
    image = rng.random((9, 11, 3)).astype(np.float32)
    image[2:6, 2:7] = 0.4  # flat patch: nearly singular window covariances
    image[5:9, 7:11] = (0.2, 0.5, 0.8)
    stencil = laplacian_stencil(image, 1e-7)
    L = dense(stencil, np.ones((9, 11), bool))
    ref = reference_laplacian(image, 1e-7)
    assert np.abs(L - ref).max() < 2e-5 * max(1.0, np.abs(ref).max())
    x = rng.random((9, 11)).astype(np.float32)
    assert np.allclose(solver.apply(stencil, x).ravel(), ref @ x.ravel(), atol=1e-4)


def test_galerkin_coarsening_and_solve_match_dense_algebra():
    rng = np.random.default_rng(1)
    image = rng.random((14, 18, 3)).astype(np.float32)
    stencil = laplacian_stencil(image, 1e-5)
    mask = np.zeros((14, 18), bool)
    mask[3:12, 2:15] = True
    stencil[0] += 0.01 * mask  # a data term makes it definite
    keep = mask.astype(np.float32)
    pad = np.pad(keep, 2)
    for k, (dy, dx) in enumerate(solver.half_offsets(13)):
        stencil[k] *= keep * pad[2 + dy : 16 + dy, 2 + dx : 20 + dx]
    A = dense(stencil, mask)
    coarse, cmask = solver.coarsen(stencil, mask)
    flat = np.flatnonzero(mask)
    cflat = np.flatnonzero(cmask)
    P = np.zeros((flat.size, cflat.size))
    ys, xs = np.divmod(flat, 18)
    P[np.arange(flat.size), np.searchsorted(cflat, (ys // 2) * 9 + xs // 2)] = 1
    assert np.abs(dense(coarse, cmask) - P.T @ A @ P).max() < 1e-4
    b = rng.random((14, 18)).astype(np.float32) * mask
    x = solver.solve(stencil, b, mask, iterations=200, tol=1e-7)
    exact = np.linalg.solve(A, b.ravel()[flat])
    assert np.abs(x.ravel()[flat] - exact).max() < 1e-3 * np.abs(exact).max()
    assert not x[~mask].any()


def test_degenerate_trimaps():
    image = np.random.default_rng(2).random((40, 50, 3)).astype(np.float32)
    assert (estimate_alpha(image, np.ones((40, 50), np.float32)) == 1).all()
    only_bg = np.full((40, 50), 0.5, np.float32)
    only_bg[:5] = 0
    assert (estimate_alpha(image, only_bg) == 0).all()
    guess = np.full((40, 50), 0.3, np.float32)
    assert np.allclose(estimate_alpha(image, only_bg, guess=guess)[5:], 0.3)
    thin = np.zeros((600, 500), np.float32)  # foreground only a 1-px line: vanishes at half size
    thin[:, 250] = 1
    thin[:, 240:250] = thin[:, 251:261] = 0.5
    big = np.random.default_rng(3).random((600, 500, 3)).astype(np.float32)
    alpha = estimate_alpha(big, thin)
    assert alpha.shape == (600, 500) and (alpha[:, 250] == 1).all()


SLOW_STRIP = pytest.mark.slow  # a 40000+ px strip: ~10-18 s of wide blurs the coarse path cannot shrink


@pytest.mark.parametrize(
    "shape",
    [
        (1, 65535),
        pytest.param((65535, 1), marks=SLOW_STRIP),
        pytest.param((2, 40000), marks=SLOW_STRIP),
        pytest.param((40000, 2), marks=SLOW_STRIP),
        (1, 1),
        (3, 3000),
    ],
)
@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_strips_and_single_pixels_are_matted_without_a_dense_solve(shape):
    """1-2 px sides coarsen along their length: a 65535 x 1 strip once asked for a 39871^2 dense matrix."""
    h, w = shape
    rng = np.random.default_rng(5)
    image = rng.random((h, w, 3)).astype(np.float32)
    trimap = np.full((h, w), 0.5, np.float32)
    quarter = max(1, h * w // 4)
    trimap.ravel()[:quarter], trimap.ravel()[-quarter:] = 1.0, 0.0
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        alpha = estimate_alpha(image, trimap)
    assert alpha.shape == shape and np.isfinite(alpha).all() and alpha.min() >= 0 and alpha.max() <= 1
    stencil = np.zeros((13, h, w), np.float32)
    stencil[0] = 1.0
    coarsest = solver.Multigrid(stencil, np.ones((h, w), bool)).levels[-1]
    assert coarsest.direct[1].shape[0] <= solver.COARSEST
