"""The matting Laplacian for an edge band's rows only (:func:`mattekit.matting.laplacian.laplacian_stencil` with
``rows_of``): only the windows holding a wanted pixel are computed, and the wanted rows are the same floats as the
whole Laplacian's, so the edge matte's alpha does not change (issue 80)."""

from __future__ import annotations

import cv2
import numpy as np

from mattekit.matting import laplacian
from mattekit.matting.solver import half_offsets


def photo_and_ring(size: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """A textured photo (size x size x 3 float32, with a flat patch: nearly singular windows) and a ring-shaped edge
    band around a disc (size x size bool), as a subject's unknown band is."""
    rng = np.random.default_rng(3)
    image = cv2.GaussianBlur(rng.random((size, size, 3)).astype(np.float32), (0, 0), 1.2)
    image[20:60, 30:90] = (0.3, 0.5, 0.7)
    disc = np.zeros((size, size), np.uint8)
    cv2.circle(disc, (size // 2, size // 2 + 5), size // 3, 1, -1)
    kernel = np.ones((9, 9), np.uint8)
    return image, (cv2.dilate(disc, kernel) - cv2.erode(disc, kernel)).astype(bool)


def wanted_rows(stencil: np.ndarray, wanted: np.ndarray) -> bytes:
    """The stencil's entries between two wanted pixels (the others zeroed, negative zeros made positive), as bytes."""
    keep = wanted.astype(np.float32)
    padded = np.pad(keep, 2)
    h, w = wanted.shape
    out = stencil.copy()
    for k, (dy, dx) in enumerate(half_offsets(13)):
        out[k] *= keep * padded[2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w]
    return (out + np.float32(0.0)).tobytes()


def test_a_band_s_rows_are_the_whole_laplacian_s_floats():
    image, band = photo_and_ring()
    whole = laplacian.laplacian_stencil(image, 1e-7)
    banded = laplacian.laplacian_stencil(image, 1e-7, rows_of=band)
    assert wanted_rows(banded, band) == wanted_rows(whole, band)
    assert np.count_nonzero(banded[:, band]) > 10 * int(band.sum())  # (the band's rows hold their entries)


def test_only_the_windows_holding_a_band_pixel_are_computed(monkeypatch):
    image, band = photo_and_ring()
    computed = []
    white = laplacian._white

    def counted(wide, eps):
        computed.append(wide.shape[-1])
        return white(wide, eps)

    monkeypatch.setattr(laplacian, "_white", counted)
    laplacian.laplacian_stencil(image, 1e-7, rows_of=band)
    holding = cv2.dilate(band.astype(np.uint8), np.ones((3, 3), np.uint8))[1:-1, 1:-1]
    assert sum(computed) == int(holding.sum())
    assert sum(computed) < 0.5 * (image.shape[0] - 2) * (image.shape[1] - 2)  # a ring: far fewer than the box's
