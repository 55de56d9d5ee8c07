"""Pixel operations as torch operations on a model's device (a GPU), for the finish run there: photos made
float, 2 x 2 block means, bilinear enlarging and box means with OpenCV's borders, so that a result equals the
CPU's OpenCV one to float rounding. Tensors are 1 x C x H x W float32; photos in [0,1].
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """``array`` (numpy, C-contiguous) as a tensor on ``device``, read-only arrays (a memory-mapped photo) too: the
    tensor is only read (on the CPU device it shares the array's memory)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        return torch.from_numpy(array).to(device)


def unless_out_of_memory(step, *args):
    """``step(*args)``, or None where the GPU's memory runs out (its cached blocks then handed back), so that the
    caller can do the work on the CPU instead."""
    try:
        return step(*args)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return None


def unit_tensor(image: np.ndarray, device: torch.device, rows: slice = slice(None)) -> torch.Tensor:
    """``image[rows]`` (H x W x C numpy: uint8 0..255, uint16 0..65535 or float) as a 1 x C x h x W float32 tensor on
    ``device`` in [0,1] (floats as they are). Integers travel as integers (half or a quarter of the floats' bytes)."""
    part = np.ascontiguousarray(image[rows])
    if part.dtype == np.uint16:  # (torch has few uint16 operations: sent as int16, its bits read back)
        t = to_device(part.view(np.int16), device).to(torch.int32).bitwise_and_(0xFFFF)
        t = t.to(torch.float32).div_(65535.0)
    elif part.dtype == np.uint8:
        t = to_device(part, device).to(torch.float32).div_(255.0)
    else:
        t = to_device(part.astype(np.float32, copy=False), device)
    return t.permute(2, 0, 1)[None].contiguous()


def halved(x: torch.Tensor) -> torch.Tensor:
    """``x`` (N x C x H x W) shrunk by 2 x 2 block means, ceil(H / 2) x ceil(W / 2); a last row or column of
    blocks averages what is left over (:func:`mattekit.ops.resizing.block_means`)."""
    return F.avg_pool2d(x, 2, 2, ceil_mode=True)


def _positions(size: int, source: int, rounded: bool, device: torch.device) -> tuple:
    """For an output side of ``size`` px read bilinearly from ``source`` px (half-pixel centres, as OpenCV and
    torch's ``align_corners=False``): (first index, second index, the second's weight), positions below 0 read
    pixel 0 and past the end the last; ``rounded``: positions rounded to 1/32 px first (OpenCV's remap)."""
    at = (torch.arange(size, dtype=torch.float64) + 0.5) * (source / size) - 0.5  # (on the CPU: float64 everywhere)
    if rounded:
        at = torch.round(at * 32) / 32
    at = at.clamp_(min=0.0)
    first = at.floor().long().clamp_(max=source - 1)
    second = (first + 1).clamp_(max=source - 1)
    return first.to(device), second.to(device), (at - first).clamp_(max=1.0).float().to(device)


def enlarged(x: torch.Tensor, size: tuple[int, int], rounded: bool = False, rows: slice = slice(None)) -> torch.Tensor:
    """``x`` (N x C x h x w) resized bilinearly to ``size`` (H, W): OpenCV's ``resize`` (INTER_LINEAR, float), or with
    ``rounded`` its ``remap`` at positions rounded to 1/32 px (:func:`mattekit.matting.foreground._sample`); only the
    output's ``rows`` (the same values as enlarging it all). N x C x (the rows) x W."""
    (rows0, rows1, wy), (cols0, cols1, wx) = (_positions(n, s, rounded, x.device) for n, s in zip(size, x.shape[2:]))
    rows0, rows1, wy = rows0[rows], rows1[rows], wy[rows]
    top, bottom = x.index_select(2, rows0), x.index_select(2, rows1)
    x = torch.lerp(top, bottom, wy[:, None])
    left, right = x.index_select(3, cols0), x.index_select(3, cols1)
    return torch.lerp(left, right, wx)


def _reflected(n: int, r: int, device: torch.device) -> torch.Tensor:
    """Indices -r .. n + r - 1 of a side of ``n`` px mirrored into it as OpenCV's BORDER_REFLECT does (fedcba|abcdef),
    for any ``r`` (repeated reflections where r > n)."""
    i = torch.arange(-r, n + r, device=device) % (2 * n)
    return torch.where(i >= n, 2 * n - 1 - i, i)


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a (2r + 1)^2 window of ``x`` (N x C x H x W), edges reflected as
    :func:`mattekit.ops.filters.box_mean` reflects them (separable sums: no running-sum cancellation)."""
    r = int(radius)
    if r <= 0:
        return x
    k = 2 * r + 1
    x = x.index_select(2, _reflected(x.shape[2], r, x.device))
    x = F.avg_pool2d(x, (k, 1), 1)
    x = x.index_select(3, _reflected(x.shape[3], r, x.device))
    return F.avg_pool2d(x, (1, k), 1)
