"""Enhance: white balance on real photos with known casts, highlight protection, colour-neutral
contrast, denoise, and the ``mattekit enhance`` command."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mattekit import io
from mattekit.ops import retouch
from mattekit.cli import main
from mattekit.ops.filters import guided_filter
from mattekit.ops.pixels import linear_to_srgb, srgb_to_linear

# Per-channel gains of typical casts, in linear sRGB: tungsten, warm white, shade, overcast blue, fluorescent.
CASTS = {
    "3200K": (1.0, 0.73, 0.45),
    "4500K": (1.0, 0.87, 0.72),
    "7500K": (0.86, 0.93, 1.0),
    "10000K": (0.75, 0.86, 1.0),
    "green": (0.88, 1.0, 0.85),
}
PHOTOS = [
    "person1.jpg",
    "person3.jpg",
    "21077.jpg",
    "65019.jpg",
    "124080.jpg",
    "153077.jpg",
    "189080.jpg",
    "227092.jpg",
    "271008.jpg",
    "bush.jpg",
    "flower.jpg",
    "sheep.jpg",
    "tennis.jpg",
    "teddy.jpg",
]


def angular_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean angle in degrees between the RGB vectors of two linear images (near-black pixels left out)."""
    a, b = a.reshape(-1, 3).astype(np.float64), b.reshape(-1, 3).astype(np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    ok = (na > 1e-3) & (nb > 1e-3)
    cos = (a[ok] * b[ok]).sum(1) / (na[ok] * nb[ok])
    return float(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean())


def _photo(shared, name: str, side: int = 320) -> np.ndarray:
    pixels = io.read_image(shared / "data" / "grabcut50" / "im" / name).pixels[..., :3]
    s = side / max(pixels.shape[:2])
    return np.clip(cv2.resize(pixels, None, fx=s, fy=s, interpolation=cv2.INTER_AREA), 0, 1)


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_white_balance_reduces_angular_error(shared):
    before, after = {c: [] for c in CASTS}, {c: [] for c in CASTS}
    options = retouch.RetouchOptions(contrast=False, denoise=False)
    for name in PHOTOS:
        truth = srgb_to_linear(_photo(shared, name))
        for cast, gains in CASTS.items():
            tinted = np.clip(truth * np.array(gains, np.float32), 0, 1)
            fixed = srgb_to_linear(retouch.enhance(linear_to_srgb(tinted), options))
            before[cast].append(angular_error(tinted, truth))
            after[cast].append(angular_error(fixed, truth))
    rows = {c: (np.mean(before[c]), np.mean(after[c])) for c in CASTS}
    mean_before = np.mean([b for b, _ in rows.values()])
    mean_after = np.mean([a for _, a in rows.values()])
    print("\nmean angular error (deg) before -> after white balance, " + f"{len(PHOTOS)} photos:")
    for cast, (b, a) in rows.items():
        print(f"  {cast:>7}: {b:5.2f} -> {a:5.2f}")
    print(f"  all    : {mean_before:5.2f} -> {mean_after:5.2f}")
    assert mean_after < 0.9 * mean_before
    assert rows["3200K"][1] < 0.6 * rows["3200K"][0]  # a strong tungsten cast is mostly removed


def test_highlights_never_clip(shared):
    image = _photo(shared, "person1.jpg")
    image[:40, :80] = 1.0  # a clipped patch
    image[40:80, :80] = np.linspace(0.85, 0.995, 80, dtype=np.float32)[None, :, None]  # bright, unclipped
    clipped = image >= retouch.CLIP_LEVEL
    for strength in (1.0, 2.0):
        out = retouch.enhance(image, retouch.RetouchOptions(strength=strength))
        assert np.all(out[clipped] == image[clipped])
        assert np.round(out[~clipped] * 255).max() <= 254  # nothing new reaches 8-bit white
        assert np.round(out[~clipped] * 65535).max() < 65535


def test_contrast_keeps_colours(shared):
    image = _photo(shared, "65019.jpg")
    out = retouch.enhance(image, retouch.RetouchOptions(white_balance=False, denoise=False))
    assert np.abs(out - image).mean() > 0.01  # it did change the tones
    lin_in, lin_out = srgb_to_linear(image), srgb_to_linear(out)
    unclipped = (image.max(-1) < 0.9) & (image.max(-1) > 0.05)
    error = angular_error(lin_out[unclipped], lin_in[unclipped])
    print(f"\ncontrast only: mean chromaticity change {error:.3f} deg")
    assert error < 0.5


def fine_texture(image: np.ndarray) -> float:
    """Median |grey - its 2 px Gaussian blur| in 8-bit levels: the photo's finest texture and noise."""
    grey = image[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    return float(np.median(np.abs(grey - cv2.GaussianBlur(grey, (0, 0), 2)))) * 255


def test_a_flat_saturated_backdrop_keeps_its_level_and_its_grain(shared):
    """Teddy's red studio cloth keeps its level (no channel's mean moves 6 levels of 255) and gains no grain (fine
    texture at most 5 % above the input's; 10 % without the denoise)."""
    image = io.read_image(shared / "data" / "grabcut50" / "im" / "teddy.jpg").pixels[..., :3]
    out = retouch.enhance(image)
    cloth = np.s_[:40, :]  # the top rows are all backdrop
    shift = float(np.abs(out[cloth].mean(axis=(0, 1)) - image[cloth].mean(axis=(0, 1))).max()) * 255
    print(
        f"\nteddy backdrop: largest channel shift {shift:.1f} levels; fine texture "
        f"{fine_texture(image):.2f} -> {fine_texture(out):.2f}"
    )
    assert shift < 6
    assert fine_texture(out) <= 1.05 * fine_texture(image)
    # without the denoise the tone steps alone add no grain either
    assert fine_texture(retouch.enhance(image, retouch.RetouchOptions(denoise=False))) <= 1.1 * fine_texture(image)


def test_denoise(shared):
    clean = _photo(shared, "sheep.jpg")
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0, 0.04, clean.shape).astype(np.float32), 0, 1)
    out = retouch.denoise(noisy)

    def psnr(a):
        return 10 * np.log10(1.0 / np.mean((a - clean) ** 2))

    print(f"\ndenoise: PSNR {psnr(noisy):.2f} -> {psnr(out):.2f} dB")
    assert psnr(out) > psnr(noisy) + 2.0
    flat = np.full((64, 64, 3), 0.5, np.float32)
    assert np.array_equal(retouch.denoise(flat), flat)  # nothing to remove: untouched


def test_strength_zero_is_identity(shared):
    image = _photo(shared, "flower.jpg")
    rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 0.5, np.float32)], -1)
    out = retouch.enhance(rgba, retouch.RetouchOptions(strength=0.0))
    assert out.shape == rgba.shape and np.array_equal(out[..., 3], rgba[..., 3])
    assert np.abs(out[..., :3] - image).max() < 1e-3
    with pytest.raises(ValueError):
        retouch.enhance(image, retouch.RetouchOptions(strength=3.0))


def test_enhance_command(shared, tmp_path, capsys):
    src = shared / "data" / "grabcut50" / "im"
    out = tmp_path / "wb.jpg"
    assert main(["enhance", str(src / "person3.jpg"), "-o", str(out), "--no-contrast", "--no-denoise"]) == 0
    assert io.read_image(out).pixels.shape == io.read_image(src / "person3.jpg").pixels.shape
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("banana1.png", "sheep.jpg"):
        (folder / name).write_bytes((src / name).read_bytes())
    assert main(["enhance", str(folder), "-o", str(tmp_path / "out"), "--strength", "0.5"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["banana1.png", "sheep.jpg"]
    capsys.readouterr()
    assert main(["enhance", str(folder), "-o", str(tmp_path / "x"), "--strength", "5"]) == 2
    assert "--strength" in capsys.readouterr().err


def test_grey_guided_filter_keeps_edges_and_filters_channels_alike():
    """guided_filter with a grey guide (as denoise uses it): noise on flat parts goes, the guide's
    edge stays sharp, and a several-channel source is each channel filtered alone."""

    rng = np.random.default_rng(1)
    guide = np.zeros((64, 64), np.float32)
    guide[:, 32:] = 1.0
    src = guide + rng.normal(0, 0.05, guide.shape).astype(np.float32)
    out = guided_filter(guide, src, 4, 1e-3)
    assert out.shape == src.shape and out.dtype == np.float32
    assert np.std(out[:, 4:28]) < 0.5 * np.std(src[:, 4:28])  # flat part smoothed
    assert out[:, 33:].mean() - out[:, :31].mean() > 0.95  # the edge is not blurred away
    both = guided_filter(guide, np.stack([src, 1 - src], -1), 4, 1e-3)
    assert np.array_equal(both[..., 0], out)
    assert np.array_equal(both[..., 1], guided_filter(guide, 1 - src, 4, 1e-3))


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param((1, 65535), marks=pytest.mark.slow),
        pytest.param((65535, 1), marks=pytest.mark.slow),
        (2, 3000),
        (1, 1),
        (2, 2),
    ],
)
def test_strips_and_single_pixels(shape):
    image = np.random.default_rng(4).random(shape + (3,)).astype(np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = retouch.enhance(image)
    assert out.shape == shape + (3,) and np.isfinite(out).all()
