"""mattekit.ops: the shared image operations."""

import numpy as np
import pytest

from mattekit.ops import regions, resizing
from mattekit.ops.filters import _dot3
from mattekit.ops.pixels import between, finite, unit_float
from mattekit.ops.regions import each_tile
from mattekit.ops.resizing import resize


@pytest.mark.parametrize(
    "dtype, shape, size",
    [
        (np.uint8, (96, 150, 3), (48, 75)),  # whole factor 2 in height: strip by strip
        (np.uint16, (90, 151, 3), (30, 76)),  # whole factor 3
        (np.uint8, (97, 150, 3), (49, 75)),  # not whole: the full-height narrow copy
        (np.uint8, (96, 150), (48, 50)),  # one channel
    ],
)
def test_integer_shrinks_in_strips_are_the_two_step_float_shrink(monkeypatch, dtype, shape, size):
    """An integer image too big to be made float whole is shrunk in strips of rows: the same float32 bits
    as shrinking its float copy in width, then in height (strips of 7 rows: several, and not a multiple of 2 or 3)."""
    x = np.random.default_rng(shape[0]).integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
    monkeypatch.setattr(resizing, "WHOLE_BYTES", 0)
    monkeypatch.setattr(resizing, "STRIP_BYTES", 7 * x[0].size * 4)
    got = resize(x, *size, "area")
    floats = unit_float(x)
    want = resize(resize(floats, shape[0], size[1], "area"), *size, "area")
    assert got.dtype == np.float32 and got.shape == size + shape[2:]
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (64, 100), (321, 481)])
def test_dot3_is_the_channel_sum_bit_for_bit(shape):
    """The guided filter's per-pixel dot products: the same float32 bits as ``(x * y).sum(-1)``."""
    rng = np.random.default_rng(shape[1])
    x = rng.random(shape + (3,), dtype=np.float32) * 2 - 0.5
    y = rng.random(shape + (3,), dtype=np.float32)
    assert _dot3(x, y).tobytes() == (x * y).sum(-1).tobytes()


@pytest.mark.parametrize("low, high", [(0.1, 0.9), (1e-3, 1.0 - 1e-3)])
def test_between_is_numpys_strict_comparison(low, high):
    """between: numpy's ``(x > low) & (x < high)`` at and beside the float32 bounds, NaN, a strided
    view, float64 and an empty map."""
    lo, hi = np.float32(low), np.float32(high)
    row = [
        lo,
        np.nextafter(lo, np.float32(1)),
        np.nextafter(lo, np.float32(0)),
        0.5,
        hi,
        np.nextafter(hi, np.float32(0)),
        np.nextafter(hi, np.float32(1)),
        np.nan,
        0.0,
        1.0,
    ]
    x = np.array([row, row[::-1]], np.float32)
    want = (x > low) & (x < high)
    assert 0 < want.sum() < want.size
    for got, expected in (
        (between(x, low, high), want),
        (between(x[:, ::3], low, high), want[:, ::3]),
        (between(x.astype(np.float64), low, high), (x.astype(np.float64) > low) & (x.astype(np.float64) < high)),
        (between(x[:0], low, high), want[:0]),
    ):
        assert got.dtype == bool and np.array_equal(got, expected)


def test_each_tile_spreads_the_calls_over_threads_and_keeps_their_order(monkeypatch):
    """each_tile: the results in the tiles' order, the calls on several threads where cores allow (forced here:
    a 1-core CI machine must take the path too), inline from inside such a thread, one thread with the cap at 1,
    and a tile's exception raised in the caller."""
    import threading
    import time

    monkeypatch.setattr(regions, "cpu_count", lambda: 4)
    seen = set()

    def work(tile):
        here = threading.current_thread().name
        seen.add(here)
        time.sleep(0.005)  # (lets go of the GIL, as the band's arithmetic does: the pool takes more threads)
        return tile * tile, here, each_tile(lambda t: threading.current_thread().name, [1, 2])

    results = each_tile(work, list(range(40)))
    assert [r[0] for r in results] == [t * t for t in range(40)]
    assert all(name.startswith("mattekit-tile") for name in seen) and len(seen) > 1
    assert all(nested == [here, here] for _, here, nested in results)  # inline: no pool waiting on itself
    monkeypatch.setenv("MATTEKIT_FINISH_THREADS", "1")
    seen.clear()
    each_tile(work, list(range(8)))
    assert seen == {threading.current_thread().name}
    monkeypatch.delenv("MATTEKIT_FINISH_THREADS")

    def fails(tile):
        if tile == 5:
            raise ValueError("tile 5")
        return tile

    with pytest.raises(ValueError, match="tile 5"):
        each_tile(fails, list(range(10)))


def _resident_bytes() -> int:
    """This process's resident memory (Linux's /proc/self/statm), bytes."""
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not hasattr(regions.mmap, "MADV_NOHUGEPAGE"), reason="huge-page advice is Linux's")
def test_sparse_empty_makes_memory_only_where_boxes_are_written():
    """sparse_empty: the values written are read back, a small array is numpy's own, and one value written every
    2 MB over a 256 MB array makes small pages only, not the whole array (numpy's huge pages, where the system
    gives them, made 256 MB here)."""
    small = regions.sparse_empty((10, 20, 3), np.float32)
    assert small.shape == (10, 20, 3) and small.dtype == np.float32 and small.flags.writeable
    big = regions.sparse_empty((4096, 4096, 4), np.float32)  # 256 MB
    assert big.flags.writeable and big.flags.c_contiguous
    box = (slice(1000, 1010), slice(2000, 2030))
    big[box] = np.arange(10 * 30 * 4, dtype=np.float32).reshape(10, 30, 4)
    assert np.array_equal(big[box].ravel(), np.arange(1200, dtype=np.float32))
    before = _resident_bytes()
    flat = big.reshape(-1)
    flat[:: (2 << 20) // 4] = 1.0  # one float in every 2 MB
    grew = _resident_bytes() - before
    assert grew < 16 << 20, f"{grew / 2**20:.0f} MB made for 128 values"


@pytest.mark.parametrize(
    "dtype, shape, size",
    [
        (np.uint8, (40, 33), (211, 97)),  # enlarged
        (np.float32, (29, 31), (203, 180)),  # PIL's "F" mode, enlarged (a matte to its photo)
        (np.uint8, (35, 400, 3), (90, 57)),  # shrunk in width (antialiased), enlarged in height
        (np.uint8, (120, 77, 3), (120, 30)),  # the width pass only
        (np.float32, (64, 200), (90, 200)),  # the height pass only
        (np.uint8, (301, 457, 3), (37, 53)),  # shrunk on both sides, the width first
        (np.float32, (250, 90), (61, 333)),  # the height shed: Pillow 13 runs it first
        (np.uint8, (120, 25, 3), (41, 8)),  # both shrunk, the height first in Pillow 13
    ],
)
def test_lanczos_in_strips_is_pils_one_call_bit_for_bit(monkeypatch, dtype, shape, size):
    """The passes split in row and column strips over threads, in PIL's order, give what one PIL call gives, in both
    of its modes."""
    from PIL import Image

    rng = np.random.default_rng(sum(shape))
    x = rng.integers(0, 256, shape, dtype=np.uint8) if dtype == np.uint8 else rng.random(shape, dtype=np.float32)
    image = Image.fromarray(x, mode="F") if dtype == np.float32 else Image.fromarray(x)
    expected = np.asarray(image.resize(size[::-1], Image.Resampling.LANCZOS))
    monkeypatch.setattr(resizing, "SPLIT_PIXELS", 1)
    monkeypatch.setattr(resizing, "cpu_count", lambda: 5)  # five strips a pass, whatever this machine has
    monkeypatch.setattr(regions, "cpu_count", lambda: 3)  # and three threads
    seen = []
    real_each_tile = resizing.each_tile
    monkeypatch.setattr(
        resizing, "each_tile", lambda work, parts: seen.append(len(parts)) or real_each_tile(work, parts)
    )
    got = resizing.pil_lanczos(x, *size)
    assert got.dtype == expected.dtype and np.array_equal(got, expected) and got.flags.writeable
    assert seen == [5] * ((shape[1] != size[1]) + (shape[0] != size[0]))


def test_lanczos_in_strips_follows_this_pillows_pass_order_at_any_size(monkeypatch):
    """300 random sizes, shrunk and enlarged either way, both modes: bit for bit PIL's one call (a Pillow whose pass
    order :func:`resizing.pil_pass_order` gets wrong fails here)."""
    from PIL import Image

    monkeypatch.setattr(resizing, "SPLIT_PIXELS", 1)
    monkeypatch.setattr(resizing, "cpu_count", lambda: 3)
    rng = np.random.default_rng(21)
    for i in range(300):
        in_h, in_w, h, w = (int(v) for v in rng.integers(2, 90, 4))
        if i % 2:
            x, image = (y := rng.random((in_h, in_w), dtype=np.float32)), Image.fromarray(y, mode="F")
        else:
            x = rng.integers(0, 256, (in_h, in_w, 3), dtype=np.uint8)
            image = Image.fromarray(x)
        assert np.array_equal(
            resizing.pil_lanczos(x, h, w), np.asarray(image.resize((w, h), Image.Resampling.LANCZOS))
        ), (in_h, in_w, h, w)


def test_the_srgb_curves_on_a_big_image_in_strips_are_the_whole_images_bit_for_bit():
    """Above pixels.STRIP_VALUES values the transfer curves run in strips of rows over the cores: the same bits as the
    curve on the whole array at once (NaN, +-inf and -0.0 included), in the input's shape, the input untouched."""
    from mattekit.ops import pixels

    rng = np.random.default_rng(5)
    image = rng.random((pixels.STRIP_VALUES // 900 + 7, 300, 3), np.float32) * 3 - 1
    image[0, :4] = [[np.nan] * 3, [np.inf] * 3, [-np.inf] * 3, [-0.0] * 3]
    given = image.copy()
    for curve, whole in ((pixels.srgb_to_linear, pixels._decoded), (pixels.linear_to_srgb, pixels._encoded)):
        got = curve(image[:, ::-1])  # a view, not contiguous
        expected = whole(np.ascontiguousarray(image[:, ::-1]))
        assert got.shape == image.shape and np.array_equal(got.view(np.uint32), expected.view(np.uint32))
    assert np.array_equal(image.view(np.uint32), given.view(np.uint32))


@pytest.mark.parametrize("bounds", [(), (0, 1)])
def test_finite_is_numpys_nan_to_num_then_the_clip_bit_for_bit_in_place(bounds):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((37, 23, 3)) * 4).astype(np.float32)
    x.flat[rng.choice(x.size, 60, replace=False)] = [np.nan, np.inf, -np.inf, -0.0, 3e38, -3e38] * 10
    expected = np.nan_to_num(x.copy())
    if bounds:
        expected = np.clip(expected, *bounds)
    out = finite(x, *bounds)
    assert out is x and out.dtype == np.float32
    assert out.tobytes() == expected.tobytes()  # -0.0 kept, infinities at the bounds
