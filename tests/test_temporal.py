"""The temporal filter's building blocks against their definitions (mattekit.temporal)."""
from __future__ import annotations

import numpy as np

from mattekit import temporal


def test_median_is_numpys_for_every_count_with_ties():
    rng = np.random.default_rng(3)
    for count in range(1, 10):
        values = [rng.integers(0, 4, (31, 47)).astype(np.float32) / 3 for _ in range(count)]  # many ties
        values[-1][:5] = rng.random((5, 47), dtype=np.float32)
        expected = np.median(np.stack(values), axis=0)
        got = temporal.median(values)
        assert got.dtype == np.float32 and np.array_equal(got, expected), count


def test_warp_samples_at_the_pixel_plus_the_field_rescaled_to_the_image():
    rng = np.random.default_rng(4)
    image = rng.random((40, 60)).astype(np.float32)
    shift = np.zeros((40, 60, 2), np.float32)
    shift[..., 0], shift[..., 1] = 3.0, -2.0  # x + 3, y - 2
    given = shift.copy()
    warped = temporal.warp(image, shift)
    assert np.array_equal(shift, given)  # the field is not changed
    assert np.array_equal(warped[2:, :-3], image[:-2, 3:])
    half = np.zeros((20, 30, 2), np.float32)
    half[..., 0] = 1.5  # on a field of half the image's size: 3 px in the image
    assert np.array_equal(temporal.warp(image, half)[:, :-3], image[:, 3:])
    colours = rng.random((40, 60, 3)).astype(np.float32)
    assert np.array_equal(temporal.warp(colours, shift)[2:, :-3], colours[:-2, 3:])


def test_total_adds_in_list_order_like_numpy():
    rng = np.random.default_rng(5)
    for count in range(1, 10):
        values = [rng.random((23, 37), dtype=np.float32) * 10.0 ** rng.integers(-3, 3) for _ in range(count)]
        assert np.array_equal(temporal._total(values), np.sum(values, axis=0)), count
