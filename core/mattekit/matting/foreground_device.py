"""Foreground colours (:func:`mattekit.matting.foreground.estimate_foreground`) as torch operations on a model's
device (a GPU): the same multi-level solve, each level swept whole in strips of rows rather than in the tiles of its
partial alpha (a GPU has the lanes; the strips bound its memory), with the same starting colours (bilinear, at 1/32
px where the CPU samples) and sweeps, so the colours equal the CPU's to float rounding. Only the full size's partial
pixels come back to the host. Images H x W x 3|4 (uint8, uint16 or float [0,1]); alphas H x W float32 in [0,1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..ops.on_device import enlarged, halved, to_device, unit_tensor, unless_out_of_memory
from ..ops.pixels import quantise
from .levels import PARTIAL, TILE, level_sizes, result_array

STRIP = 1 << 22  # pixels of a level swept at a time (with a halo of its sweeps' count of rows each side)


def estimate_foreground_on(
    device: torch.device,
    image: np.ndarray,
    alpha: np.ndarray,
    *,
    eps: float = 5e-3,
    gamma: float = 0.1,
    coarse_sweeps: int = 10,
    fine_sweeps: int = 2,
    start_size: int = 32,
    out=None,
) -> np.ndarray:
    """:func:`mattekit.matting.foreground.estimate_foreground` (the same arguments, ``out`` too) run on ``device``;
    returns the same H x W x 3 colours (to float rounding; integer ``out`` rounded as there), or None where the
    device's memory runs out (``out`` untouched: the caller solves it on the CPU)."""
    done = unless_out_of_memory(_solved, device, image, alpha, eps, gamma, coarse_sweeps, fine_sweeps, start_size)
    return None if done is None else _filled(image, out, *done)[..., :3]


def _solved(device, image, alpha, eps, gamma, coarse_sweeps, fine_sweeps, start_size) -> tuple:
    """(flat indices of the partial pixels, n, their colours, n x 3 float32) on the host; (None, None) without any."""
    alpha = np.asarray(alpha, np.float32)
    h, w = alpha.shape
    a = to_device(np.ascontiguousarray(alpha), device)[None, None]
    partial = (a > PARTIAL) & (a < 1.0 - PARTIAL)
    where = partial.view(-1).nonzero().squeeze(1)
    if where.numel() == 0:
        return None, None
    sizes = level_sizes(h, w, start_size)
    counts = [coarse_sweeps] * max(0, len(sizes) - 2) + [fine_sweeps] * min(2, len(sizes))
    photo = unit_tensor(image[..., :3], device)
    levels = [(photo, a)]
    for _ in sizes[1:]:
        levels.append(tuple(halved(t) for t in levels[-1]))
    planes = None
    for (img, lev), size, count in zip(levels[:0:-1], sizes, counts):  # coarse to fine, the full size left out
        start = _starting(_start(img, lev) if planes is None else planes, size, _sampled(size))
        planes = torch.empty((1, 6) + size, dtype=torch.float32, device=device)
        for y, done in _strips(img, lev, start, count, eps, gamma):
            planes[:, :, y : y + done.shape[2]] = done
    img = levels = None
    start = _starting(_start(photo, a) if planes is None else planes, (h, w), rounded=True)
    values = torch.cat(
        [
            done[0, :3][:, partial[0, 0, y : y + done.shape[2]]].t()  # (row-major, as `where`)
            for y, done in _strips(photo, a, start, counts[-1], eps, gamma)
        ]
    )
    return where.cpu().numpy(), values.cpu().numpy()


def _sampled(size: tuple[int, int]) -> bool:
    """Whether the CPU solve samples a level of ``size`` (h, w) from the one below at 1/32 px (its tiled levels)."""
    return size[0] * size[1] > TILE * TILE * 4


def _filled(image: np.ndarray, out, where: np.ndarray | None, values: np.ndarray | None) -> np.ndarray:
    """The result: ``out`` (an array or a function making it; else a float copy of the photo's colours) with ``values``
    (n x 3 float32) written at the flat pixel indices ``where`` (rounded as quantise rounds, for integers)."""
    filled = result_array(image, out)
    if where is not None:
        if filled.dtype.kind in "ui":
            values = quantise(values[None], 16 if filled.dtype == np.uint16 else 8)[0]
        ys, xs = np.divmod(where, filled.shape[1])
        filled[ys, xs, :3] = values
    return filled


def _start(img: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Starting F and B (1 x 6 x 1 x 1): the alpha-weighted mean colours of the foreground and the background."""
    weight = a.sum().clamp_min(1e-6), (1.0 - a).sum().clamp_min(1e-6)
    fg = (img * a).sum((2, 3), keepdim=True) / weight[0]
    bg = (img * (1.0 - a)).sum((2, 3), keepdim=True) / weight[1]
    return torch.cat([fg, bg], 1)


def _starting(planes: torch.Tensor, size: tuple[int, int], rounded: bool):
    """A level's starting F and B, made a strip at a time: a function of (top, bottom) giving rows top..bottom - 1 of
    ``planes`` (1 x 6 x h x w, the level below's; or 1 x 6 x 1 x 1, constant) enlarged to ``size`` (h, w)."""
    if planes.shape[2:] == (1, 1):
        return lambda top, bottom: planes.expand(-1, -1, bottom - top, size[1])
    return lambda top, bottom: enlarged(planes, size, rounded, rows=slice(top, bottom))


def _strips(img: torch.Tensor, a: torch.Tensor, start, count: int, eps: float, gamma: float):
    """``count`` Jacobi sweeps of F and B at one level (img 1 x 3 x h x w, a 1 x 1 x h x w; ``start(top, bottom)``
    the starting planes of rows top..bottom - 1, 1 x 6 x rows x w) in strips of rows, each with ``count`` rows of halo
    (a sweep reads one row further: the strip's own rows get what sweeping the whole level gives). Yields (the
    strip's first row, its swept planes, 1 x 6 x rows x w), top to bottom."""
    h, w = a.shape[2:]
    rows = max(1, STRIP // max(1, w))
    for y in range(0, h, rows):
        top, bottom = max(0, y - count), min(h, y + rows + count)
        done = _sweeps(img[:, :, top:bottom], a[:, :, top:bottom], start(top, bottom), count, eps, gamma)
        yield y, done[:, :, y - top : y - top + rows]


def _sweeps(
    img: torch.Tensor, a: torch.Tensor, planes: torch.Tensor, count: int, eps: float, gamma: float
) -> torch.Tensor:
    """The sweeps of :func:`mattekit.matting.foreground._sweeps` on a whole window (borders repeat the edge): per
    pixel the 2 x 2 solve of F and B from the compositing equation and the neighbours' pull (up, down, left, right,
    weighted by eps + gamma |alpha_i - alpha_j|), clipped to [0,1]. 1 x 6 x h x w."""
    edge = F.pad(a, (1, 1, 1, 1), mode="replicate")
    weights = [
        eps + gamma * (a - edge[:, :, dy : dy + a.shape[2], dx : dx + a.shape[3]]).abs()
        for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2))
    ]  # up, down, left, right
    total = weights[0] + weights[1] + weights[2] + weights[3]
    na = 1.0 - a
    m00, m01, m11 = a * a + total, a * na, na * na + total
    inv_det = 1.0 / (m00 * m11 - m01 * m01)
    i00, i01, i11 = m11 * inv_det, -m01 * inv_det, m00 * inv_det
    ai, bi = a * img, na * img
    for _ in range(count):
        near = F.pad(planes, (1, 1, 1, 1), mode="replicate")
        h, w = planes.shape[2:]
        pull = None
        for wt, (dy, dx) in zip(weights, ((0, 1), (2, 1), (1, 0), (1, 2))):
            term = wt * near[:, :, dy : dy + h, dx : dx + w]
            pull = term if pull is None else pull.add_(term)
        rf, rb = pull[:, :3].add_(ai), pull[:, 3:].add_(bi)
        planes = torch.cat([i00 * rf + i01 * rb, i01 * rf + i11 * rb], 1).clamp_(0.0, 1.0)
    return planes
