"""Upscaling in tiles: blending weights, tiled equals untiled, out-of-memory retries, padding and tiny
inputs, integer results, tile sizes and the result's memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mattekit import runtime
from mattekit.upscaling import tiling
from mattekit.errors import MattekitError
from mattekit.upscaling.superres import upscale
from mattekit.options import model_choice
from upscale_inputs import _photo


# ------------------------------------------------------------------------- tiling


@pytest.mark.parametrize(
    "length,tile,overlap,scale,align",
    [(256, 64, 32, 4, 1), (100, 40, 16, 2, 1), (97, 33, 30, 3, 1), (50, 64, 32, 4, 1), (101, 40, 16, 2, 2)],
)
def test_tile_weights_partition_unity(length, tile, overlap, scale, align):
    """Blending weights sum to one everywhere; contributing pixels keep clear of window edges."""
    windows = tiling.plan_axis(length, tile, overlap, align)
    total = np.zeros(length * scale)
    for w in windows:
        weights = w.weights(scale)
        total[w.start * scale : w.end * scale] += weights
        inside = np.flatnonzero(weights) / scale  # input coordinates of contributing pixels
        margin = (min(overlap, tile * 3 // 4) - max(2, min(overlap, tile * 3 // 4) // 8)) / 2 - align
        if w.start > 0:
            assert inside.min() >= margin
        if w.end < length:
            assert (w.end - w.start) - inside.max() >= margin
    np.testing.assert_allclose(total, 1.0, atol=1e-12)
    assert windows[0].start == 0 and windows[-1].end == length and all(w.start % align == 0 for w in windows)


@pytest.mark.slow
def test_tiled_equals_untiled(shared, anime):
    """Tiles 4x smaller than the image, default overlap: the 8-bit results differ by at most 1."""
    image = _photo(shared, 120, 200, 256)
    whole = upscale(anime, image, tile=0)
    tiled = upscale(anime, image, tile=64)
    assert whole.shape == tiled.shape == (1024, 1024, 3)
    assert np.abs(np.round(whole * 255) - np.round(tiled * 255)).max() <= 1


def test_out_of_memory_retries_with_smaller_tiles(shared, anime):
    predictor = anime
    x = torch.from_numpy(_photo(shared, 300, 300, 80).transpose(2, 0, 1).copy())[None]
    sizes = []

    def fn(t):
        sizes.append(max(t.shape[-2:]))
        if max(t.shape[-2:]) > 64:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return predictor(t)

    out = tiling.run_tiled(fn, x, 4, tile=128, overlap=32)
    assert sizes[0] == 80 and max(sizes[1:]) == 64  # one failed whole-image try, then 64-px tiles
    direct = tiling.run_tiled(predictor, x, 4, tile=64, overlap=32)
    assert torch.equal(out, direct)

    def never(t):
        raise RuntimeError("CUDA out of memory.")

    with pytest.raises(MattekitError, match="Out of memory"):
        tiling.run_tiled(never, x, 4, tile=64)


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_pad_multiple_and_tiny_inputs(shared, anime, mirror):
    predictor = anime
    x = torch.from_numpy(_photo(shared, 0, 0, 64)[:37, :41].transpose(2, 0, 1).copy())[None]
    seen = []

    def even_only(t):  # what a pixel-unshuffle (x2plus) net requires
        seen.append(tuple(t.shape[-2:]))
        assert t.shape[-2] % 2 == 0 and t.shape[-1] % 2 == 0
        return predictor(t)

    out = tiling.run_tiled(even_only, x, 4, tile=24, overlap=8, multiple=2)
    assert out.shape == (1, 3, 148, 164) and len(seen) > 1
    # Inputs smaller than the network can take (RFDN needs 15 px) and than one tile.
    for shape in [(1, 1, 3), (5, 7, 3), (9, 20)]:
        result = upscale(
            runtime.ModelCache().get(model_choice("rfdn-x4", "upscale"), "cpu"), np.full(shape, 0.5, np.float32)
        )
        assert result.shape == (shape[0] * 4, shape[1] * 4) + shape[2:]
        assert np.abs(result - 0.5).max() < 0.05


def test_a_result_larger_than_free_memory_is_refused_before_allocating():
    with pytest.raises(
        MattekitError,
        match=r"^Not enough memory for the 200000x200000 result \(447\.0 GiB\); choose a smaller scale\.$",
    ):
        tiling._output_buffer(1, 200_000, 200_000, 3, torch.float32)


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16])
def test_integer_tiling_equals_the_rounded_float_result(dtype):
    """Pixels stored as integers as soon as their windows are done: the same values as rounding the
    float result, over uneven windows, alignment and zero overlap."""
    torch.manual_seed(0)
    for shape, tile, overlap, scale, multiple in [
        ((1, 3, 97, 211), 40, 24, 3, 1),
        ((2, 4, 61, 50), 32, 16, 2, 2),
        ((1, 1, 40, 90), 32, 0, 1, 1),
    ]:
        x = torch.rand(*shape)
        fn = lambda t: F.interpolate(t, scale_factor=scale, mode="bilinear") * 1.2 - 0.1  # overshoots [0,1]
        floats = tiling.run_tiled(fn, x, scale, tile=tile, overlap=overlap, multiple=multiple)
        ints = tiling.run_tiled(fn, x, scale, tile=tile, overlap=overlap, multiple=multiple, dtype=dtype)
        top = float(torch.iinfo(dtype).max)
        assert ints.dtype == dtype and ints.shape == floats.shape
        assert torch.equal(ints.float(), floats.clamp(0, 1).mul(top).round())
        whole = tiling.run_tiled(fn, x, scale, tile=1024, overlap=overlap, multiple=multiple)
        assert (whole - floats).abs().max() < 1e-4  # the windows' weights still sum to one


def test_large_results_get_tiles_whose_work_fits_a_quarter_of_the_result(anime):
    """On the CPU a 12 MP x4 result (576 MB at 8 bits) caps the tile so that one tile's work stays within
    a quarter of it (never below 256 px); small results keep the free-memory choice."""
    from mattekit.upscaling import superres

    free_memory_choice = tiling.choose_tile(tiling.bytes_per_pixel(anime.net, 3), anime.device)
    assert superres._tile_size(anime, 1, 5 << 20, 3) == free_memory_choice
    big = superres._tile_size(anime, 1, 16000 * 12000 * 3, 3)
    assert big == min(free_memory_choice, 256)
    assert superres._tile_size(anime, 1, 40000 * 30000 * 3, 3) >= big  # larger results afford larger tiles
