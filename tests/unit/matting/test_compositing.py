"""Compositing helpers of the matte: the blurred background, the drop shadow, composites and
cover fits, and the coarse wide blur."""

from __future__ import annotations

import numpy as np

from mattekit.ops.compositing import blurred_background, composite, drop_shadow
from mattekit.ops.filters import gaussian_blur
from mattekit.ops.resizing import fit_cover


def test_coarse_gaussian_blur_is_the_blur():
    """A wide blur computed on a shrunken copy stays within 1 % of the exact one (binary noise: the worst case)."""
    x = (np.random.default_rng(3).random((150, 260)) > 0.5).astype(np.float32)
    for sigma in (8.0, 16.0, 40.0):
        exact, coarse = gaussian_blur(x, sigma), gaussian_blur(x, sigma, coarse=True)
        assert coarse.shape == x.shape and np.abs(coarse - exact).max() < 0.01
    assert np.array_equal(gaussian_blur(x, 8.0, coarse=True), gaussian_blur(x, 8.0))  # narrow: exact


def test_compositing_helpers():
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
