"""Foreground colours (decontamination): the old background removed on real photos, tiled levels against the whole
image's solve, and the flat sweeps bit for bit against the padded-copy formulation they replaced."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from alphamatting_data import alphamatting
from mattekit import io
from mattekit.ops.compositing import composite_over
from mattekit.ops.pixels import unit_float
from mattekit.ops.resizing import fit_cover
from mattekit.matting import estimate_foreground


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
