"""Regions of an image where work is done: a matte's bounding box, the tiles near flagged pixels, boxes grown
by a margin, and per-tile work spread over threads. Boxes are (rows, columns) slices; sizes in pixels.
"""

from __future__ import annotations

import mmap
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

import numpy as np

from ..machine import cpu_count

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")
SPARSE_FROM = 4 << 20  # bytes: numpy's threshold for asking huge pages


def bounding_box(alpha: np.ndarray, threshold: float = 0.05, margin: float = 0.0) -> tuple[int, int, int, int] | None:
    """(top, left, bottom, right) of pixels with alpha > threshold, grown by ``margin`` x size; None if empty."""
    rows = np.flatnonzero((alpha > threshold).any(axis=1))
    cols = np.flatnonzero((alpha > threshold).any(axis=0))
    if rows.size == 0:
        return None
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    pad_y, pad_x = round((bottom - top) * margin), round((right - left) * margin)
    h, w = alpha.shape
    return max(0, top - pad_y), max(0, left - pad_x), min(h, bottom + pad_y), min(w, right + pad_x)


def tiles_holding(flags: np.ndarray, reach: int, tile: int) -> list[tuple[slice, slice]]:
    """(rows, columns) of the tile x tile blocks of an H x W grid holding a True pixel of ``flags``
    (H x W bool) within ``reach`` px: where band-limited work (edge filter, matting, colours) is done."""
    height, width = flags.shape
    found = []
    for y in range(0, height, tile):
        for x in range(0, width, tile):
            if flags[max(0, y - reach) : y + tile + reach, max(0, x - reach) : x + tile + reach].any():
                found.append((slice(y, min(height, y + tile)), slice(x, min(width, x + tile))))
    return found


def grown(
    box: tuple[slice, slice], margin: int, shape: tuple[int, ...]
) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """``box`` (row and column slices) grown by ``margin`` px within ``shape`` (H, W, ...), and the
    box's place inside the grown one."""
    ys, xs = box
    y0, x0 = max(0, ys.start - margin), max(0, xs.start - margin)
    outer = (slice(y0, min(shape[0], ys.stop + margin)), slice(x0, min(shape[1], xs.stop + margin)))
    return outer, (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))


_POOL: dict[str, ThreadPoolExecutor] = {}
_POOL_LOCK = threading.Lock()
_IN_POOL = threading.local()


def each_tile(work: Callable[[_Item], _Result], tiles: Sequence[_Item]) -> list[_Result]:
    """``[work(tile) for tile in tiles]``, the calls spread over one thread per core (the band's numpy and
    OpenCV arithmetic lets go of the GIL), the results in the tiles' order. ``work`` must only read shared
    arrays: the caller writes the results once all are made. One tile, one core, or a call from inside such a
    thread: in this thread. ``$MATTEKIT_FINISH_THREADS`` caps the threads (1: none)."""
    threads = min(len(tiles), cpu_count(), _thread_cap())
    if threads <= 1 or getattr(_IN_POOL, "inside", False):
        return [work(tile) for tile in tiles]
    with _POOL_LOCK:
        pool = _POOL.get("tiles")
        if pool is None or pool._max_workers < threads:  # noqa: SLF001 - grown when the affinity grew
            pool = _POOL["tiles"] = ThreadPoolExecutor(cpu_count(), "mattekit-tile", initializer=_mark_pool_thread)
    return list(pool.map(work, tiles))


def row_strips(work: Callable[[np.ndarray], np.ndarray], x: np.ndarray, values: int) -> np.ndarray:
    """``work`` (of some of ``x``'s rows, giving an array of as many rows) over all of ``x`` (H x ...), in strips of
    rows of at most ``values`` values (one row at least) spread over the cores by :func:`each_tile`; the strips'
    results stacked in order (one strip: ``work(x)``, here). For work that treats each value alone."""
    rows = max(1, values // max(1, x.size // max(1, x.shape[0])))
    strips = each_tile(lambda top: work(x[top : top + rows]), range(0, x.shape[0], rows))
    return strips[0] if len(strips) == 1 else np.concatenate(strips)


def each_row_strip(work: Callable[[slice], None], height: int, row_values: int, values: int) -> None:
    """``work(rows)`` for slices of ``height`` rows (``row_values`` values a row), at most ``values`` values each (one
    row at least), spread over the cores by :func:`each_tile`: for work that writes its own rows of an output."""
    rows = max(1, values // max(1, row_values))
    each_tile(lambda top: work(slice(top, min(height, top + rows))), range(0, height, rows))


def sparse_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An array of ``shape`` and ``dtype`` whose values are not set, to be written in scattered boxes: over 4 MB it
    is an anonymous mapping in the system's small pages, so a box written makes only the pages it touches. (numpy
    asks for 2 MB huge pages on big arrays, each zeroed whole on its first write: boxes spread over a big array
    then cost about what filling it does.) Elsewhere, or without the advice (not Linux), ``np.empty``."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if size < SPARSE_FROM or not hasattr(mmap, "MADV_NOHUGEPAGE"):
        return np.empty(shape, dtype)
    block = mmap.mmap(-1, size)
    block.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(block, dtype).reshape(shape)


def _mark_pool_thread() -> None:
    """This thread is one of the tile pool's: :func:`each_tile` runs its calls inline here."""
    _IN_POOL.inside = True


def _thread_cap() -> int:
    text = os.environ.get("MATTEKIT_FINISH_THREADS", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else 1 << 16
