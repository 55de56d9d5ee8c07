"""Alpha matting: Laplacian and solver against their definitions, trimaps, alpha quality on real
data (alphamatting.com), foreground decontamination, compositing, MODNet via the catalog, CLI."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
import torch

from conformance_checks import assert_close
from mattekit import catalog, io, runtime
from mattekit.ops.compositing import (
    blurred_background,
    composite,
    composite_over,
    drop_shadow,
    premultiply,
    unpremultiply,
)
from mattekit.ops.filters import gaussian_blur
from mattekit.ops.pixels import unit_float
from mattekit.ops.resizing import fit_cover
from mattekit.finish import edge
from mattekit.subject import answer
from mattekit.cli import main
from mattekit.matting import estimate_alpha, estimate_foreground, solver
from mattekit.matting import trimap as trimaps
from mattekit.matting.laplacian import laplacian_stencil
from mattekit.tasks import matte, remove


@pytest.fixture
def mirror(shared, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.delenv("MATTEKIT_OFFLINE", raising=False)


def alphamatting(shared, name: str, trimap_set: str = "Trimap1"):
    root = shared / "data/alphamatting"
    image = io.read_image(root / "im" / name).pixels[..., :3]
    gt = io.read_image(root / "gt" / name).pixels[..., 0]
    trimap = trimaps.normalise(io.read_image(root / "trimap" / trimap_set / name).pixels)
    return image, trimap, gt


def sad_mse(alpha, gt, trimap):
    unknown = trimaps.split(trimap)[2]
    d = alpha[unknown].astype(np.float64) - gt[unknown]
    return np.abs(d).sum() / 1000, (d**2).mean() * 1e3


def dense(stencil, mask):
    flat, matrix = solver._dense(stencil, mask)
    return matrix


# ---------------------------------------------------------------- Laplacian and solver


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


# ---------------------------------------------------------------- trimaps


def test_trimap_from_mask_band_scales_and_thin_structures_survive():
    h, w = 400, 600
    mask = np.zeros((h, w), np.float32)
    mask[100:300, 150:450] = 1.0
    mask[50:350, 500:503] = 1.0  # a 3-px strand, thinner than the band
    mask[200:205, 20:120] = 0.5  # an unsure region far from any edge
    tri = trimaps.from_mask(mask)
    fg, bg, unknown = trimaps.split(tri)
    band = trimaps.band_width(h, w)
    assert band >= 2 and trimaps.band_width(2 * h, 2 * w) > band
    assert unknown[200, 150 - band // 2] and unknown[200, 150 + band // 2] and unknown[202, 60]
    assert fg[200, 300] and bg[10, 10]
    assert fg[60:340, 500:503].any(axis=1).mean() > 0.9, "the strand keeps a known core"
    assert set(np.unique(tri)) <= {0.0, 0.5, 1.0}
    big = trimaps.split(trimaps.from_mask(np.kron(mask, np.ones((2, 2), np.float32))))[2].sum()
    assert big > 3 * unknown.sum()  # twice the size: about four times the unknown area


@pytest.mark.parametrize("height, width, radius", [(90, 120, 7), (6, 200, 9), (200, 6, 9), (1, 40, 3), (300, 260, 36)])
def test_kernel_reach_at_points_is_opencvs_dilation(height, width, radius):
    """trimap._reaches (the seeding test of from_mask) reads what cv2.dilate with the same disc gives,
    at every pixel, on random blobs and lines, including discs cropped to a thin image."""
    rng = np.random.default_rng(radius)
    region = cv2.GaussianBlur(rng.random((height, width)).astype(np.float32), (0, 0), 2) > 0.56
    region[height // 2, :] |= rng.random(width) > 0.9
    kernel = trimaps._disc(radius, height, width)
    ys, xs = np.nonzero(np.ones((height, width), bool))
    want = cv2.dilate(region.astype(np.uint8), kernel).astype(bool)
    assert np.array_equal(trimaps._reaches(region, kernel, ys, xs).reshape(height, width), want)


@pytest.mark.parametrize(
    "height, width, radius", [(90, 120, 7), (6, 200, 9), (200, 6, 9), (1, 40, 3), (300, 260, 36), (1, 1, 4)]
)
def test_trimap_erosion_is_opencvs(height, width, radius):
    """trimap._erode (the band's widening in from_mask) gives cv2.erode's pixels with the same disc and
    replicated edges, on random blobs and lines, including discs cropped to a thin image."""
    rng = np.random.default_rng(radius + height)
    region = cv2.GaussianBlur(rng.random((height, width)).astype(np.float32), (0, 0), 2) > 0.44
    region[height // 2, :] &= rng.random(width) > 0.1
    region[:, width // 3] = True
    region[height // 4 : 3 * height // 4 + 1, width // 4 : 3 * width // 4 + 1] = True  # a core that survives
    kernel = trimaps._disc(radius, height, width)
    want = cv2.erode(region.astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE).astype(bool)
    assert np.array_equal(trimaps._erode(region, kernel), want)
    assert want.any() and not want.all() or min(height, width) < 8


def test_expand_known_moves_only_unknown_pixels_that_match_one_side_nearby():
    """Unknown pixels join the side whose nearest pixel (within the radius) has their colour within the
    tolerance in every channel, unless the other side matches too."""
    image = np.zeros((20, 40, 3), np.float32)
    image[:, :20] = (0.8, 0.2, 0.2)  # the subject's colour on the left, black on the right
    trimap = np.full((20, 40), 0.5, np.float32)
    trimap[:, :10], trimap[:, 30:] = 1.0, 0.0
    image[5, 12] = (0.8, 0.25, 0.2)  # off in one channel by more than the tolerance: stays unknown
    image[6, 12] = (0.81, 0.21, 0.19)  # within it in every channel: joins the subject
    out = trimaps.expand_known(image, trimap, radius=5)
    assert out[6, 12] == 1.0 and out[5, 12] == 0.5
    assert (out[:, 10:14][np.arange(20) != 5] == 1.0).all() and (out[:, 15:20] == 0.5).all()  # beyond 5 px
    assert (out[:, 25:30] == 0.0).all() and (out[:, 20:25] == 0.5).all()
    both = trimap.copy()
    both[:, 14] = 0.0  # a background pixel of the subject's colour: close matches on both sides stay unknown
    image[:, 14] = image[:, 13]
    assert (trimaps.expand_known(image, both, radius=5)[:, 12:14] == 0.5).all()


def test_user_trimaps_are_normalised():
    t = np.array([[0, 3, 128, 126, 250, 255]], np.uint8)
    assert trimaps.normalise(t).tolist() == [[0.0, 0.0, 0.5, 0.5, 1.0, 1.0]]
    assert trimaps.normalise(np.dstack([t] * 3)).tolist() == [[0.0, 0.0, 0.5, 0.5, 1.0, 1.0]]
    assert trimaps.normalise((t.astype(np.uint16) * 257)).tolist() == [[0.0, 0.0, 0.5, 0.5, 1.0, 1.0]]


# ---------------------------------------------------------------- alpha on real data


@pytest.mark.slow
def test_alpha_beats_closed_form_matting_on_alphamatting(shared):
    """SAD and MSE below pymatting's closed-form matting on the same trimaps; both times printed, not compared
    (a wall-clock race on shared build machines; `mattekit bench matte` is where speed is measured)."""
    pymatting = pytest.importorskip("pymatting")
    names = ("GT01.png", "GT05.png", "GT19.png")
    small = alphamatting(shared, "GT19.png")
    pymatting.estimate_alpha_cf(small[0][::8, ::8].astype(np.float64), small[1][::8, ::8].astype(np.float64))  # JIT
    estimate_alpha(*alphamatting(shared, "GT05.png")[:2])  # warm-up
    ours, theirs, t_ours, t_theirs = [], [], 0.0, 0.0
    for name in names:
        image, trimap, gt = alphamatting(shared, name)
        t0 = time.perf_counter()
        alpha = estimate_alpha(image, trimap)
        t1 = time.perf_counter()
        cf = np.clip(pymatting.estimate_alpha_cf(image.astype(np.float64), trimap.astype(np.float64)), 0, 1)
        t2 = time.perf_counter()
        t_ours, t_theirs = t_ours + t1 - t0, t_theirs + t2 - t1
        assert alpha.shape == gt.shape and alpha.dtype == np.float32 and 0 <= alpha.min() and alpha.max() <= 1
        fg, bg, _ = trimaps.split(trimap)
        assert (alpha[fg] == 1).all() and (alpha[bg] == 0).all()
        ours.append(sad_mse(alpha, gt, trimap))
        theirs.append(sad_mse(cf, gt, trimap))
    ours, theirs = np.mean(ours, 0), np.mean(theirs, 0)
    print(f"SAD/MSE mattekit {ours.round(3)} closed-form {theirs.round(3)}; s {t_ours:.2f} vs {t_theirs:.2f}")
    assert ours[0] < theirs[0] and ours[1] < theirs[1]


def test_alpha_quality_pins_on_wide_trimaps(shared):
    """Trimap2 (wide unknown regions) on two hard images: pinned near the measured figures."""
    sad, mse = zip(
        *(
            sad_mse(estimate_alpha(im, t), gt, t)
            for im, t, gt in (alphamatting(shared, n, "Trimap2") for n in ("GT13.png", "GT09.png"))
        )
    )
    print(f"Trimap2 GT13/GT09 SAD {np.round(sad, 2)} MSE {np.round(mse, 2)}")
    # closed-form matting: SAD 18.69 / 6.55, MSE 48.1 / 17.0 on these two
    assert sad[0] < 14 and sad[1] < 5.5 and mse[0] < 25 and mse[1] < 10


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


# ---------------------------------------------------------------- foreground colours


def test_decontaminated_colours_remove_the_old_background(shared):
    """Photos re-composited over another photo: the estimated colours are closer to the true
    foreground than the photo's, and a composite over white has less fringe."""
    other = alphamatting(shared, "GT13.png")[0]
    errors, fringes = [], []
    for name in ("GT11.png", "GT19.png", "GT21.png"):
        image, _, alpha = alphamatting(shared, name)
        a = alpha[..., None]
        photo = a * image + (1 - a) * fit_cover(other, *alpha.shape)  # the true foreground is `image`
        fg = estimate_foreground(photo, alpha)
        partial = (alpha > 0.05) & (alpha < 0.95)
        weight = alpha[partial][:, None]
        errors.append([float((np.abs(c[partial] - image[partial]) * weight).sum() / weight.sum()) for c in (fg, photo)])
        sure = alpha >= 0.999
        assert np.abs(fg[sure] - photo[sure]).max() < 1e-6  # opaque pixels keep their colour
        white = np.ones(3, np.float32)
        truth = composite_over(image, alpha, white)
        fringes.append([np.abs(composite_over(c, alpha, white) - truth).mean() for c in (fg, photo)])
    errors, fringes = np.mean(errors, 0), np.mean(fringes, 0)
    print(f"foreground error {errors.round(4)}, fringe over white {fringes.round(5)} (estimated, photo)")
    assert errors[0] < 0.7 * errors[1] and fringes[0] < 0.7 * fringes[1]


def test_tiled_decontamination_is_the_whole_image_estimate(shared, monkeypatch):
    """Large levels and the full size run in tiles holding partial alpha: at partial pixels the colours
    are the whole-image solve's within 0.01 (mean within 1e-4; measured max 0.007 on these three), and
    where alpha is 0 or 1 they are exactly the photo's."""
    from mattekit.matting import foreground

    for name in ("GT01.png", "GT11.png", "GT19.png"):
        image, _, alpha = alphamatting(shared, name)
        tiled = estimate_foreground(image, alpha)
        monkeypatch.setattr(foreground, "TILE", 10**6)  # one tile: the whole image at every level
        whole = estimate_foreground(image, alpha)
        monkeypatch.undo()
        partial = (alpha > foreground.PARTIAL) & (alpha < 1 - foreground.PARTIAL)
        difference = np.abs(tiled - whole)[partial]
        assert difference.max() < 0.01 and difference.mean() < 1e-4
        assert np.array_equal(tiled[~partial], image[~partial])
        rgba = np.concatenate([image, alpha[..., None]], axis=-1)
        estimate_foreground(image, alpha, out=rgba)  # in place: the same colours, the alpha untouched
        assert np.array_equal(rgba[..., :3], tiled) and np.array_equal(rgba[..., 3], alpha)


def test_tiled_levels_read_only_the_values_they_set(shared, monkeypatch):
    """The tiled levels' starting colours are enlarged from the level below only in the boxes read: with every
    other value NaN, no NaN reaches the result (alphamatting GT13 enlarged 3 x: its four finest levels tiled), and
    the colours are those of the run with the values set; also where a pixel is partial only at full size."""
    from mattekit.matting import foreground

    root = shared / "data/alphamatting"
    photo = io.read_image(root / "im/GT13.png", integers=True).pixels[..., :3]
    alpha = io.read_image(root / "gt/GT13.png").pixels[..., 0]
    photo = cv2.resize(photo, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    alpha = np.clip(cv2.resize(alpha, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR), 0, 1)
    # and a pixel partial at full size but not once shrunk, far from the edge: the half size is read there
    # though no tile of it is solved
    noise = np.random.default_rng(0).integers(0, 256, (600, 800, 3)).astype(np.uint8)
    lone = np.zeros((600, 800), np.float32)
    lone[:10], lone[10:20], lone[590, 790] = 1, np.linspace(1, 0, 10)[:, None], 0.002
    for photo, alpha in ((photo, alpha), (noise, lone)):
        monkeypatch.setattr(foreground, "_unset", lambda shape: np.full(shape, np.nan, np.float32))
        got = estimate_foreground(photo, alpha)
        monkeypatch.setattr(foreground, "_unset", lambda shape: np.zeros(shape, np.float32))
        assert not np.isnan(got).any() and np.array_equal(got, estimate_foreground(photo, alpha))


def padded_sweeps(image, alpha, fg, bg, count, eps, gamma, wanted=None, fg_only=False):
    """Jacobi sweeps of the foreground solve written out with edge-padded copies over the whole window, as
    foreground._sweeps was first written: its (F, B) inside ``wanted`` (B None under ``fg_only``)."""
    from mattekit.matting import foreground

    h, w = alpha.shape
    pa = np.pad(alpha, 1, mode="edge")
    near = [(1 + dy, 1 + dx) for dy, dx in foreground.NEIGHBOURS]
    wts = [eps + gamma * np.abs(alpha - pa[y : y + h, x : x + w]) for y, x in near]
    a, total = alpha[..., None], (wts[0] + wts[1] + wts[2] + wts[3])[..., None]
    m00, m01, m11 = a * a + total, a * (1 - a), (1 - a) * (1 - a) + total
    det = 1 / (m00 * m11 - m01 * m01)
    f, b = fg, bg
    for _ in range(count):
        pf, pb = (np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge") for x in (f, b))
        sf = sum(wt[..., None] * pf[y : y + h, x : x + w] for wt, (y, x) in zip(wts, near))
        sb = sum(wt[..., None] * pb[y : y + h, x : x + w] for wt, (y, x) in zip(wts, near))
        rf, rb = a * image + sf, (1 - a) * image + sb
        f = np.clip(m11 * det * rf + -m01 * det * rb, 0, 1)
        b = np.clip(-m01 * det * rf + m00 * det * rb, 0, 1)
    ys, xs = wanted or (slice(0, h), slice(0, w))
    return f[ys, xs], None if fg_only else b[ys, xs]


def test_sweeps_are_the_padded_copy_formulation_bit_for_bit():
    """foreground._sweeps (six flat planes swept in place, each sweep only where a later one reads, the last one F
    alone when asked) gives the same float32 bits as the sweeps written out with edge-padded copies, for an alpha
    with clear, opaque and partial pixels, whole or inside a box (also one on the window's edge)."""
    from mattekit.matting import foreground

    rng = np.random.default_rng(4)
    h, w, eps, gamma = 37, 52, 5e-3, 0.1
    image = rng.random((h, w, 3), dtype=np.float32)
    alpha = np.clip(rng.random((h, w), dtype=np.float32) * 1.6 - 0.3, 0, 1)
    fg, bg = rng.random((h, w, 3), dtype=np.float32), rng.random((h, w, 3), dtype=np.float32)
    for wanted in (None, (slice(3, 34), slice(3, 49)), (slice(0, 20), slice(5, 52))):
        for fg_only in (False, True):
            got = foreground._sweeps(image, alpha, fg, bg, 3, eps, gamma, wanted, fg_only=fg_only)
            want = padded_sweeps(image, alpha, fg, bg, 3, eps, gamma, wanted, fg_only=fg_only)
            assert np.ascontiguousarray(got[0]).tobytes() == np.ascontiguousarray(want[0]).tobytes()
            assert (got[1] is None) if fg_only else got[1].tobytes() == np.ascontiguousarray(want[1]).tobytes()


@pytest.mark.parametrize("tile", [128, 32])
def test_decontamination_is_the_whole_tile_padded_solve_on_a_real_photo(shared, monkeypatch, tile):
    """On a real photo and its soft alpha (alphamatting GT01, 497 x 800: its two finest levels tiled; with 32-px
    tiles its four finest, two of them with 10 sweeps), the colours solved around each tile's partial pixels, and
    at each level below only where the level above reads, with the flat sweeps are, bit for bit, those of whole
    tiles swept with padded copies (the implementation before, c191996): uint8 RGBA made in place as ``remove``
    makes it, and float."""
    from mattekit.finish import cutout
    from mattekit.matting import foreground

    monkeypatch.setattr(foreground, "TILE", tile)
    root = shared / "data/alphamatting"
    photo = io.read_image(root / "im/GT01.png", integers=True).pixels[..., :3]
    alpha = io.read_image(root / "gt/GT01.png").pixels[..., 0]
    assert photo.dtype == np.uint8 and photo.shape[0] * photo.shape[1] > 4 * 4 * tile**2

    def both():
        rgba = estimate_foreground(photo, alpha, out=lambda: cutout.rgba(photo, alpha))
        return rgba, estimate_foreground(unit_float(photo), alpha)

    got = both()
    monkeypatch.setattr(foreground, "_sweeps", padded_sweeps)
    monkeypatch.setattr(foreground, "_partial_boxes", lambda flags, box, halo: [box])
    want = both()
    assert np.array_equal(got[0], want[0]) and got[1].tobytes() == want[1].tobytes()
    partial = (alpha > foreground.PARTIAL) & (alpha < 1 - foreground.PARTIAL)
    assert np.abs(got[1] - unit_float(photo))[partial].max() > 0.1  # the colours did change there


def test_coarse_gaussian_blur_is_the_blur():
    """A wide blur computed on a shrunken copy stays within 1 % of the exact one (binary noise: the worst case)."""
    x = (np.random.default_rng(3).random((150, 260)) > 0.5).astype(np.float32)
    for sigma in (8.0, 16.0, 40.0):
        exact, coarse = gaussian_blur(x, sigma), gaussian_blur(x, sigma, coarse=True)
        assert coarse.shape == x.shape and np.abs(coarse - exact).max() < 0.01
    assert np.array_equal(gaussian_blur(x, 8.0, coarse=True), gaussian_blur(x, 8.0))  # narrow: exact


def test_compositing_helpers():
    rng = np.random.default_rng(4)
    rgba = rng.random((6, 7, 4)).astype(np.float32)
    assert np.abs(unpremultiply(premultiply(rgba)) - rgba).max() < 1e-5
    assert (unpremultiply(np.zeros((2, 2, 4), np.float32)) == 0).all()
    image = np.zeros((60, 80, 3), np.float32)
    image[..., 2] = 1.0  # blue background
    alpha = np.zeros((60, 80), np.float32)
    alpha[20:40, 30:50] = 1.0
    image[20:40, 30:50] = (1.0, 0.0, 0.0)  # red subject
    behind = blurred_background(image, alpha, 6.0)
    assert behind[30, 28, 0] < 0.01 and behind[30, 28, 2] > 0.99, "the subject does not bleed into its background"
    shadow = drop_shadow(alpha, (5, 7), 2.0, 0.5)
    assert shadow[45, 55] > shadow[15, 25] and shadow.max() <= 0.5 + 1e-6
    out = composite(image, alpha, (1.0, 1.0, 1.0), shadow=shadow)
    assert np.allclose(out[30, 40], (1, 0, 0)) and out[43, 52].max() < 1.0 and np.allclose(out[2, 2], 1)
    assert fit_cover(np.zeros((10, 40, 3), np.float32), 30, 30).shape == (30, 30, 3)


# ---------------------------------------------------------------- trimap-free and MODNet


def test_remove_mattes_by_default_and_beats_the_mask(shared, mirror):
    predictor = runtime.ModelCache().get("csnet-sod", "segment", "cpu")
    mask_mae, matte_mae = [], []
    for name in ("GT05.png", "GT17.png", "GT19.png"):
        image, _, gt = alphamatting(shared, name)
        mask = answer.predict_mask(predictor, image)
        alpha = edge.alpha_from_mask(image, mask)  # what remove does by default
        mask_mae.append(np.abs(mask - gt).mean())
        matte_mae.append(np.abs(alpha - gt).mean())
    print(f"alpha MAE mask {np.mean(mask_mae):.4f} matted {np.mean(matte_mae):.4f}")
    assert np.mean(matte_mae) < 0.8 * np.mean(mask_mae)
    task = remove.TASK
    plain = remove.TASK.make_options({"matting": False, "result": "alpha"})
    assert np.array_equal(task.run({"model": predictor}, {"image": image}, plain)["result"], mask)
    rgba = task.run({"model": predictor}, {"image": image}, remove.RemoveOptions())["result"]
    assert rgba.shape[-1] == 4 and np.allclose(rgba[..., 3], alpha)
    assert not np.allclose(rgba[..., :3], image), "cut-outs carry decontaminated colours"


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_modnet_portrait_through_the_catalog_with_stand_in_weights(golden, tmp_path, shared):
    entry = catalog.load().get("modnet-portrait", "matte")
    assert entry.task == "matte" and entry.licence == "Apache-2.0" and entry.notice is None  # relicensed by its authors
    assert "modnet-portrait" not in catalog.load().defaults.values()
    g = golden("modnet")
    net = __import__("mattekit.nets", fromlist=["build"]).build(entry.net, **entry.kwargs)
    path = tmp_path / "modnet_stand_in.ckpt"
    torch.save({"state_dict": {"module." + k: v for k, v in g.pseudo_state_dict(net).items()}}, path)
    predictor = runtime.ModelCache().get(entry, device="cpu", weights_path=path)
    assert_close(predictor(g.tensor("input")), g.arrays["pred_matte"], 1e-4, "pred_matte via catalog")
    image = io.read_image(shared / "data/grabcut50/im/person4.jpg").pixels
    options = matte.MatteOptions(model="modnet-portrait", result="alpha")
    alpha = matte.TASK.run({"model": predictor}, {"image": image}, options)["result"]
    assert alpha.shape == image.shape[:2] and alpha.dtype == np.float32 and 0 <= alpha.min() <= alpha.max() <= 1


# ---------------------------------------------------------------- command line


def test_matte_command_outputs(shared, tmp_path):
    root = shared / "data/alphamatting"
    src, tri = root / "im/GT19.png", root / "trimap/Trimap1/GT19.png"
    image = io.read_image(src).pixels
    out = tmp_path / "cut.png"
    assert main(["matte", str(src), "--trimap", str(tri), "-o", str(out)]) == 0
    cut = io.read_image(out)
    assert cut.has_alpha and cut.pixels.shape[:2] == image.shape[:2]
    trimap = trimaps.normalise(io.read_image(tri).pixels)
    assert (cut.pixels[..., 3][trimap == 1] > 0.99).all() and (cut.pixels[..., 3][trimap == 0] < 0.01).all()
    assert main(["matte", str(src), "--trimap", str(tri), "-o", str(tmp_path / "a.png"), "--result", "alpha"]) == 0
    alpha = io.read_image(tmp_path / "a.png")
    assert not alpha.has_alpha and np.abs(alpha.pixels[..., 0] - cut.pixels[..., 3]).max() < 1 / 255 + 1e-6
    assert main(["matte", str(src), "--trimap", str(tri), "-o", str(tmp_path / "f.png"), "--result", "foreground"]) == 0
    assert not io.read_image(tmp_path / "f.png").has_alpha
    assert (
        main(
            [
                "matte",
                str(src),
                "--mask",
                str(root / "gt/GT19.png"),
                "-o",
                str(tmp_path / "m.png"),
                "--background",
                "blur",
                "--shadow",
            ]
        )
        == 0
    )
    assert io.read_image(tmp_path / "m.png").pixels.shape == image.shape[:2] + (3,)
    assert main(["matte", str(src), "--trimap", str(tri), "-o", str(tmp_path / "cut.exr")]) == 0
    exr = io.read_image(tmp_path / "cut.exr")  # premultiplied on disk, straight once read
    assert exr.has_alpha and np.abs(exr.pixels[..., 3] - cut.pixels[..., 3]).max() < 1 / 255 + 1e-3  # 8-bit PNG vs half
    solid = cut.pixels[..., 3] > 0.5
    assert np.abs(exr.pixels[..., :3][solid] - cut.pixels[..., :3][solid]).max() < 0.01
    deep = tmp_path / "deep.png"
    io.write_image(deep, image, bit_depth=16)
    assert main(["matte", str(deep), "--trimap", str(tri)]) == 0
    assert io.read_image(tmp_path / "deep_matte.png").bit_depth == 16


def test_matte_command_errors_are_sentences(shared, tmp_path, capsys):
    root = shared / "data/alphamatting"
    assert main(["matte", str(root / "im/GT19.png"), "--trimap", str(root / "trimap/Trimap1/GT01.png")]) == 2
    err = capsys.readouterr().err
    assert "same size" in err and err.count("mattekit: error:") == 1
    assert main(["matte", str(root / "im/GT19.png"), "--trimap", str(tmp_path / "none.png")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_bench_matte_prints_the_table(shared, capsys):
    assert (
        main(
            [
                "bench",
                "matte",
                "--data",
                str(shared / "data/alphamatting"),
                "--trimaps",
                "Trimap1",
                "--limit",
                "2",
                "--no-reference",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    for row in ("SAD (/1000)", "MSE (x1e3)", "gradient (/1000)", "s/image", "Trimap1: 2 images"):
        assert row in out
    lines = out.splitlines()  # one line per image, with its half (even index in sorted order = tune)
    assert any(line.split()[:3] == ["GT01", "Trimap1", "tune"] for line in lines)
    assert any(line.split()[:3] == ["GT03", "Trimap1", "report"] for line in lines)


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


def test_trimaps_of_thin_strips_are_quick_and_the_same_as_with_the_full_disc():
    import cv2

    rng = np.random.default_rng(6)
    for shape in [(3, 200), (200, 3), (1, 300), (7, 9)]:
        mask = (cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), 3) > 0.5).astype(np.uint8)
        for r in (1, 5, 12):
            disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
            full = cv2.erode(mask, disc, borderType=cv2.BORDER_REPLICATE)
            assert (cv2.erode(mask, trimaps._disc(r, *shape), borderType=cv2.BORDER_REPLICATE) == full).all()
    strip = np.zeros((65535, 1), np.float32)
    strip[:30000] = 1
    start = time.perf_counter()
    trimap = trimaps.from_mask(strip)  # a 262-px band: once a 525 x 525 disc per pixel (minutes)
    assert time.perf_counter() - start < 10 and trimap[0, 0] == 1 and trimap[-1, 0] == 0
