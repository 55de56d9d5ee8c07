"""Trimaps: made from a mask (the band's width, thin structures, OpenCV's dilation and erosion with the same disc,
thin strips), unknown pixels moved to a side that matches, and users' trimaps normalised."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from mattekit.matting import trimap as trimaps


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
