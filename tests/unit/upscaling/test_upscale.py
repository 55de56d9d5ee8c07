"""Upscaling with real weights: reference accuracy, alpha, grey, 16-bit, 8-bit in and out, size and strength."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mattekit import runtime
from mattekit_bench.upscale import bicubic_baseline, psnr, sr_scores, to_255
from mattekit.errors import MattekitError
from mattekit.upscaling.superres import fill_transparent, upscale
from mattekit.options import model_choice
from upscale_inputs import _disc_rgba, _photo


def _read_png(path) -> np.ndarray:
    import cv2

    return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1], dtype=np.float32) / 255.0


# ------------------------------------------------------------------------- reference accuracy


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_rfdn_reproduces_reference(shared, golden, mirror):
    """rfdn-x4 through the library equals the upstream output; its PSNR is the golden's and beats bicubic."""
    g = golden("rfdn_real")
    rfdn = runtime.ModelCache().get(model_choice("rfdn-x4", "upscale"), "cpu")
    for i, (name, rgb_psnr) in enumerate([("img_002", 32.41), ("img_005", 29.12)]):
        lr = _read_png(shared / f"data/sr/Set5/x4/LR/{name}_SRF_4_LR.png")
        hr = _read_png(shared / f"data/sr/Set5/x4/HR/{name}_SRF_4_HR.png")
        sr = upscale(rfdn, lr)
        expected = np.clip(g.arrays[f"output_{i}"][0].transpose(1, 2, 0) / 255.0, 0, 1)
        assert np.abs(sr - expected).max() < 1e-4
        assert abs(psnr(to_255(sr), to_255(hr)) - rgb_psnr) <= 0.01  # the golden's figure (RGB, no crop)
        p, s = sr_scores(sr, hr, 4)
        bp, bs = sr_scores(bicubic_baseline(lr, 4), hr, 4)
        assert p > bp + 2.0 and s > bs


# ------------------------------------------------------------------------- alpha, grey, depth


def test_rgba_keeps_a_clean_alpha(anime):
    image = _disc_rgba()
    out = upscale(anime, image)
    assert out.shape == (192, 192, 4) and out.dtype == np.float32
    alpha, truth = out[..., 3], np.kron(image[..., 3], np.ones((4, 4), np.float32))
    a = torch.from_numpy(image[..., 3])[None, None]
    inner = np.kron(-F.max_pool2d(-a, 3, 1, 1)[0, 0].numpy(), np.ones((4, 4)))
    outer = np.kron(F.max_pool2d(a, 3, 1, 1)[0, 0].numpy(), np.ones((4, 4)))
    assert np.all(alpha[inner >= 1] == 1.0) and np.all(alpha[outer <= 0] == 0.0)  # flat regions stay exact
    iou = np.logical_and(alpha > 0.5, truth > 0.5).sum() / np.logical_or(alpha > 0.5, truth > 0.5).sum()
    assert iou > 0.95
    edge = (alpha > 0.3) & (truth < 1)  # visible edge pixels: no dark fringe from the hidden black
    assert out[..., 0][edge].mean() > 0.8
    soft = upscale(anime, image, alpha="bicubic")[..., 3]
    assert (
        np.abs(soft - alpha).mean() < 0.02
        and np.abs(np.diff(soft, axis=1)).max() < np.abs(np.diff(alpha, axis=1)).max()
    )


def test_fill_transparent_leaves_visible_pixels():
    image = _disc_rgba(32)
    filled = fill_transparent(image[..., :3], image[..., 3])
    visible = image[..., 3] > 0
    assert np.array_equal(filled[visible], image[..., :3][visible])
    assert filled[~visible][:, 0].min() > 0.8  # the hidden colour became the disc's orange


def test_grey_sixteen_bit_and_opaque_alpha(anime):
    ramp = np.tile(np.linspace(0, 65535, 40).astype(np.uint16), (24, 1))  # a 16-bit grey gradient
    out = upscale(anime, ramp)  # 16-bit in, 16-bit out
    assert out.shape == (96, 160) and out.dtype == np.uint16
    assert np.unique(out).size > 1024  # far more levels than 8 bits hold
    grey_alpha = np.stack([ramp / 65535.0, np.ones_like(ramp, np.float64)], -1).astype(np.float32)
    ga = upscale(anime, grey_alpha)
    assert ga.shape == (96, 160, 2) and ga.dtype == np.float32 and np.all(ga[..., 1] == 1.0)
    assert np.array_equal(np.rint(ga[..., 0] * np.float32(65535)).astype(np.uint16), out)


# ------------------------------------------------------------------------- size and strength


def test_scale_width_and_strength(shared, anime):
    image = _photo(shared, 200, 100, 40)[:30]
    assert upscale(anime, image, scale=3).shape == (90, 120, 3)
    assert upscale(anime, image, scale=5.5).shape == (165, 220, 3)
    assert upscale(anime, image, width=100).shape == (75, 100, 3)
    net = upscale(anime, image)
    classic = upscale(anime, image, strength=0.0)
    bicubic = F.interpolate(torch.from_numpy(image.transpose(2, 0, 1).copy())[None], scale_factor=4, mode="bicubic")
    np.testing.assert_allclose(classic, bicubic[0].permute(1, 2, 0).clamp(0, 1).numpy(), atol=1e-5)
    half = upscale(anime, image, strength=0.5)
    np.testing.assert_allclose(half, np.clip((net + classic) / 2, 0, 1), atol=0.02)
    for bad in (dict(strength=1.5), dict(scale=0), dict(scale=40), dict(width=0), dict(alpha="sharp")):
        with pytest.raises(MattekitError):
            upscale(anime, image, **bad)


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_uint8_upscale_is_the_rounded_float_upscale(shared, anime):
    """8-bit in, 8-bit out (as the CLI reads an 8-bit file): exactly the float result rounded."""
    image = np.round(_photo(shared, 40, 60, 72) * 255).astype(np.uint8)
    ints = upscale(anime, image, tile=32)
    floats = upscale(anime, image.astype(np.float32) / 255, tile=32)
    assert ints.dtype == np.uint8 and ints.shape == (288, 288, 3)
    assert np.array_equal(ints, np.rint(floats * np.float32(255)).astype(np.uint8))
