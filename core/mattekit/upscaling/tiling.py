"""Run an image network tile by tile: overlapping windows, feathered blending, out-of-memory retry.

``run_tiled(fn, x, scale)`` applies ``fn`` (N x C x h x w -> N x C' x h*scale x w*scale) to an
N x C x H x W tensor that stays on the CPU. Each window goes to the device on its own and
comes back before the next one, so the whole image never has to fit there.

Seam-free by construction: neighbouring windows overlap by at least ``overlap`` input pixels.
Inside each overlap a narrow blending band sits in the middle; across it the left (top)
window's weight falls linearly from 1 to 0 while the right (bottom) one's rises from 0 to 1,
so the weights sum to one everywhere. Pixels near a window's edge, where zero padding makes
the network's output differ from an untiled run, always get weight 0: every pixel that
contributes lies at least ``(overlap - band) / 2`` input pixels inside its window.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..engines import available_memory
from ..errors import MattekitError

log = logging.getLogger(__name__)

MIN_TILE = 32  # smallest window the out-of-memory retry goes down to
CPU_MAX_TILE = 768  # larger windows do not run faster on a CPU; they only save overlap
GPU_MAX_TILE = 2048
TILE_LADDER = (32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)


@dataclass(frozen=True)
class Window:
    """One window along an axis: input pixels [start, end); its weight rises over the band
    [rise0, rise1] and falls over [fall0, fall1] (input coordinates; None at the image border)."""

    start: int
    end: int
    rise: tuple[float, float] | None
    fall: tuple[float, float] | None

    def weights(self, scale: int) -> np.ndarray:
        """Blending weight of each output pixel of this window (length (end-start)*scale)."""
        p = (np.arange(self.start * scale, self.end * scale, dtype=np.float64) + 0.5) / scale
        w = np.ones_like(p)
        if self.rise is not None:
            w *= _ramp(p, *self.rise)
        if self.fall is not None:
            w *= 1.0 - _ramp(p, *self.fall)
        return w


def _ramp(p: np.ndarray, a: float, b: float) -> np.ndarray:
    """0 before a, 1 after b, linear between (a step at a when a == b)."""
    if b <= a:
        return (p >= a).astype(np.float64)
    return np.clip((p - a) / (b - a), 0.0, 1.0)


def plan_axis(length: int, tile: int, overlap: int, align: int = 1) -> list[Window]:
    """Evenly spaced windows of about ``tile`` pixels covering ``length``, neighbours sharing >= ``overlap``.

    Window starts are multiples of ``align`` (so pixel-unshuffle nets see the same pixel
    grouping as in an untiled run); the last window may then be up to ``align - 1`` longer.
    Each shared zone holds a blending band ``max(2, overlap // 8)`` wide in its middle, so a
    contributing pixel lies at least ``(overlap - band) / 2`` inside its window.
    """
    if length <= tile:
        return [Window(0, length, None, None)]
    overlap = max(0, min(overlap, tile * 3 // 4))  # keeps neighbouring bands apart
    count = math.ceil((length - overlap) / (tile - overlap))
    starts = [round(i * (length - tile) / (count - 1)) // align * align for i in range(count)]
    ends = [s + tile for s in starts[:-1]] + [length]
    band = max(2, overlap // 8) if overlap else 0
    bands = []
    for i in range(count - 1):
        centre = (starts[i + 1] + ends[i]) / 2.0  # middle of the shared zone [start of next, end of this)
        bands.append((centre - band / 2.0, centre + band / 2.0))
    return [
        Window(starts[i], ends[i], bands[i - 1] if i > 0 else None, bands[i] if i < count - 1 else None)
        for i in range(count)
    ]


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the out-of-memory errors of CUDA, MPS and the CPU allocator."""
    if isinstance(exc, getattr(torch.cuda, "OutOfMemoryError", ())):
        return True
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        isinstance(exc, MemoryError) or "out of memory" in text or "can't allocate memory" in text
    )


def _pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad right/bottom (reflecting, or repeating when too small) to a multiple of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if not (ph or pw):
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class _TileOutOfMemory(Exception):
    """The tile function ran out of memory (the caller retries with smaller windows)."""


def _output_buffer(n: int, height: int, width: int, channels: int, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised N x C x H x W tensor of ``dtype`` stored channels-last; a MattekitError when RAM
    is short (checked first against the free memory: pages are only claimed when written)."""
    need = n * height * width * channels * torch.empty(0, dtype=dtype).element_size()
    short = MattekitError(
        f"Not enough memory for the {width}x{height} result ({need / 2**30:.1f} GiB); choose a smaller scale."
    )
    if need > available_memory(torch.device("cpu")):
        raise short
    try:
        return torch.empty(n, height, width, channels, dtype=dtype).permute(0, 3, 1, 2)
    except RuntimeError as exc:
        if not is_out_of_memory(exc):
            raise
        raise short from None


def _store(block: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Finished float pixels as ``dtype``: floats as they are; integers from [0,1] (NaN -> 0, clipped,
    rounded half to even, as :func:`mattekit.ops.pixels.quantise`)."""
    if dtype.is_floating_point:
        return block
    top = float(torch.iinfo(dtype).max)
    return torch.nan_to_num(block, 0.0).clamp_(0.0, 1.0).mul_(top).round_().to(dtype)


def _empty_cache(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.empty_cache()
    elif device is not None and device.type == "mps":
        torch.mps.empty_cache()


def run_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    scale: int,
    *,
    tile: int = 512,
    overlap: int = 32,
    multiple: int = 1,
    device: torch.device | None = None,
    progress: Callable[[int, int], None] | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Apply ``fn`` window by window to ``x`` (N x C x H x W, CPU) and blend the results.

    fn: any function mapping N x C x h x w to N x C' x h*scale x w*scale (it may move its
    argument to a device; its result is brought back to the CPU as float32).
    tile: window side in input pixels (>= H and W: one window, the untiled result).
    overlap: input pixels shared by neighbouring windows (at most 3/4 of tile); it should
    exceed twice the distance over which zero padding disturbs the net's output.
    multiple: windows start at multiples of this and are padded right/bottom to a multiple
    of it (pixel-unshuffle nets need even sizes).
    device: where fn runs, only to free its cache before a retry.
    progress: called as progress(done, total) after each window.
    An out-of-memory error restarts the whole run with windows half as large (down to
    MIN_TILE); below that it becomes a MattekitError.
    dtype: of the result: float32, or uint8/uint16 (fn's [0,1] output rounded to 0..255 / 0..65535).
    Returns an N x C' x H*scale x W*scale tensor of ``dtype`` on the CPU, stored channels-last so that
    ``out[0].permute(1, 2, 0).numpy()`` is an H x W x C' array without a copy.
    Memory: besides the result, only one window's output and float copies of the blending bands that
    still wait for a neighbouring window (a few output rows across the image, a few columns of one
    window) are held: pixels are stored in ``dtype`` as soon as every window covering them is done.
    """
    if x.dim() != 4:
        raise ValueError(f"run_tiled wants an N x C x H x W tensor, got shape {tuple(x.shape)}")
    tile = max(16, int(tile))
    while True:
        try:
            return _run_once(fn, x, scale, tile, overlap, multiple, progress, dtype)
        except _TileOutOfMemory:
            pass  # handled below, once the error and the failed tile's tensors its traceback holds are gone
        _empty_cache(device)
        if tile <= MIN_TILE:
            raise MattekitError(
                f"Out of memory{f' on {device}' if device is not None else ''} even with {tile}-pixel tiles; "
                "close other programs or use --device cpu."
            )
        smaller = max(MIN_TILE, tile // 2)
        log.warning("out of memory with %d-pixel tiles; retrying with %d-pixel tiles", tile, smaller)
        tile = smaller


def _extent(windows: list[Window], scale: int) -> list[tuple[int, int, np.ndarray]]:
    """(first, end, weights) of each window's non-zero weights in output coordinates along one axis."""
    spans = []
    for w in windows:
        weights = w.weights(scale)
        nonzero = np.flatnonzero(weights)
        first, last = int(nonzero[0]), int(nonzero[-1]) + 1
        spans.append((w.start * scale + first, w.start * scale + last, weights[first:last]))
    return spans


@torch.inference_mode()
def _run_once(fn, x, scale, tile, overlap, multiple, progress, dtype) -> torch.Tensor:
    """Windows row by row. A window's weighted output is complete where no later window reaches: above
    the next row's first weighted row and left of the next column's; there it is stored in the result.
    The rest waits as a float carry: ``left`` (this window's right band, for the next column) and
    ``below`` (the bottom band of the whole row, for the next row)."""
    n, _, height, width = x.shape
    rows, cols = plan_axis(height, tile, overlap, multiple), plan_axis(width, tile, overlap, multiple)
    spans_y, spans_x = _extent(rows, scale), _extent(cols, scale)
    total, done = len(rows) * len(cols), 0
    out = above = None
    for i, r in enumerate(rows):
        y0, y1, wy = spans_y[i]
        y_done = spans_y[i + 1][0] if i + 1 < len(rows) else y1  # rows [y0, y_done) finish with this row
        left = below = None
        for j, c in enumerate(cols):
            x0, x1, wx = spans_x[j]
            x_done = spans_x[j + 1][0] if j + 1 < len(cols) else x1
            window = x[:, :, r.start : r.end, c.start : c.end].contiguous()
            h, w = window.shape[-2:]
            try:
                y = fn(_pad_to(window, multiple))
            except Exception as exc:  # noqa: BLE001 - only out-of-memory errors are turned into a retry
                if is_out_of_memory(exc):
                    raise _TileOutOfMemory from None
                raise
            if y.dim() != 4 or y.shape[0] != n or y.shape[-2] < h * scale or y.shape[-1] < w * scale:
                raise ValueError(
                    f"tile function returned shape {tuple(y.shape)} for a {n}x{h}x{w} window at scale {scale}"
                )
            oy, ox = r.start * scale, c.start * scale
            weight = torch.from_numpy(np.outer(wy, wx).astype(np.float32))
            block = y[:, :, y0 - oy : y1 - oy, x0 - ox : x1 - ox].to("cpu", torch.float32) * weight
            del y
            carried = 0 if left is None else left.shape[-1]  # columns that came with ``above`` in ``left`` already
            if carried:
                block[:, :, :, :carried] += left
            if above is not None:
                block[:, :, : above.shape[-2], carried:] += above[:, :, :, x0 + carried : x1]
            if out is None:  # allocated once the output channel count is known
                out = _output_buffer(n, height * scale, width * scale, block.shape[1], dtype)
            if below is None:
                below = torch.empty(n, block.shape[1], y1 - y_done, width * scale)
            k, m = x_done - x0, y_done - y0
            out[:, :, y0:y_done, x0:x_done] = _store(block[:, :, :m, :k], dtype)
            below[:, :, :, x0:x_done] = block[:, :, m:, :k]
            left = block[:, :, :, k:]
            done += 1
            if progress is not None:
                progress(done, total)
        above = below
    return out


def bytes_per_pixel(
    net: torch.nn.Module,
    in_channels: int = 3,
    probe: int = 16,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> float:
    """Estimate the device memory one input pixel costs when running ``net`` (bytes).

    Runs ``net`` once on a small probe with hooks that record the size of every layer's
    output, and counts four times the largest (a layer's input, its output, a skip
    connection and the rest live at the same time). Cheap and device-independent; the
    out-of-memory retry of run_tiled covers what the estimate misses.
    """
    largest = 0

    def hook(_module, _inputs, output):
        nonlocal largest
        if isinstance(output, torch.Tensor):
            largest = max(largest, output.numel())

    leaves = [m for m in net.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.inference_mode():
            net(torch.zeros(1, in_channels, probe, probe, device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
    size = torch.finfo(dtype).bits // 8
    return 4.0 * largest * size / (probe * probe)


def choose_tile(per_pixel: float, device: torch.device, batch: int = 1) -> int:
    """The largest window side on a fixed ladder whose activations fit in a share of free memory.

    GPUs get half of their free memory (up to GPU_MAX_TILE), CPUs a quarter of the available
    RAM (up to CPU_MAX_TILE: beyond it a CPU gains only a little overlap). The ladder keeps
    the choice, and so the output bytes, stable while free memory drifts a little.
    """
    gpu = device.type in ("cuda", "mps")
    budget = available_memory(device) * (0.5 if gpu else 0.25)
    side = math.sqrt(max(budget, 0) / max(per_pixel * batch, 1.0))
    limit = GPU_MAX_TILE if gpu else CPU_MAX_TILE
    return max([t for t in TILE_LADDER if t <= min(side, limit)], default=MIN_TILE)
