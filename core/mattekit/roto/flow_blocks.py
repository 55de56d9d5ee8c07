"""Where a matte warped along a flow field can differ from a frame's own matte, block by block: the temporal
filter (:mod:`mattekit.roto.temporal`) works only on those blocks (:func:`active_blocks`), laid side by side
(:func:`block_pixels`).

Mattes are H x W float32 in [0,1]; flow fields h x w x 2 (x, y) in their own pixels, h <= H and w <= W, rescaled to
the frame as :func:`mattekit.roto.motion.warp` does; blocks are ``BLOCK`` px squares, the last ones clipped by the edge.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

BLOCK = 16  # px: the filter works on the blocks where some matte of the window varies


def block_sums(
    table: np.ndarray, top: np.ndarray, bottom: np.ndarray, left: np.ndarray, right: np.ndarray
) -> np.ndarray:
    """Sums over the rectangles rows ``top``..``bottom`` and columns ``left``..``right`` (inclusive; equally shaped
    int grids) of the image whose summed-area table (H+1 x W+1 [x C], :func:`counts_off`) is ``table``: the grids'
    shape [x C]."""
    return table[bottom + 1, right + 1] - table[top, right + 1] - table[bottom + 1, left] + table[top, left]


def block_bounds(height: int, width: int) -> tuple[np.ndarray, ...]:
    """(top, bottom, left, right), inclusive, of every ``BLOCK`` block of an H x W image (the last ones clipped by
    the edge): rows x cols int grids."""
    rows, cols = -(-height // BLOCK), -(-width // BLOCK)
    starts_y, starts_x = np.arange(rows)[:, None] * BLOCK, np.arange(cols)[None, :] * BLOCK
    zeros = np.zeros((rows, cols), np.int64)
    return (
        zeros + starts_y,
        zeros + np.minimum(starts_y + BLOCK, height) - 1,
        zeros + starts_x,
        zeros + np.minimum(starts_x + BLOCK, width) - 1,
    )


def sampled_rectangles(field: np.ndarray, height: int, width: int) -> tuple[np.ndarray, ...]:
    """Where :func:`mattekit.roto.motion.warp` of an H x W image along ``field`` (h x w x 2, h <= H, w <= W) reads, block by block:
    (top, bottom, left, right) pixel rows and columns, inclusive, each a ``BLOCK`` grid (rows x cols int), clamped
    to the image as its border is. Bounds, not the exact reach: the field's extremes over the block's footprint on
    the field's grid widened by 3 field px (the bilinear enlargement reads the footprint and 2 px around it; every
    block takes the longest footprint's length, so a shorter one is widened a little more), then one pixel either
    side for the bilinear sample and one for the map's fixed-point rounding."""
    fh, fw = field.shape[:2]
    rows, cols = -(-height // BLOCK), -(-width // BLOCK)
    if fh * BLOCK < height or fw * BLOCK < width:  # a block under one field px: the whole image, to stay sure
        whole = np.zeros((rows, cols), np.int64)
        return whole, whole + height - 1, whole, whole + width - 1
    first_y, last_y, first_x, last_x = block_bounds(height, width)
    starts_y, starts_x = first_y[:, 0], first_x[0]
    cuts_y = np.minimum(fh - 1, starts_y * fh // height)  # each block's first row on the field's grid
    cuts_x = np.minimum(fw - 1, starts_x * fw // width)
    # One rectangle for every block (the longest footprint plus 3 px either side, from 3 px before each block's first
    # field px): the extremes down each column over reach_y rows, kept at the blocks' first rows only, then along those
    # rows over reach_x columns, kept at the blocks' first columns.
    reach_y, reach_x = int(np.diff(cuts_y, append=fh).max()) + 6, int(np.diff(cuts_x, append=fw).max()) + 6
    low, high = (
        extreme(field, np.ones((reach_y, 1), np.uint8), anchor=(0, 3), borderType=cv2.BORDER_REPLICATE)[cuts_y]
        for extreme in (cv2.erode, cv2.dilate)
    )
    low = cv2.erode(low, np.ones((1, reach_x), np.uint8), anchor=(3, 0), borderType=cv2.BORDER_REPLICATE)[:, cuts_x]
    high = cv2.dilate(high, np.ones((1, reach_x), np.uint8), anchor=(3, 0), borderType=cv2.BORDER_REPLICATE)[:, cuts_x]
    low_x, high_x = low[..., 0] * (width / fw), high[..., 0] * (width / fw)
    low_y, high_y = low[..., 1] * (height / fh), high[..., 1] * (height / fh)
    top = np.clip(np.floor(first_y + low_y) - 1, 0, height - 1).astype(np.int64)
    bottom = np.clip(np.floor(last_y + high_y) + 2, 0, height - 1).astype(np.int64)
    left = np.clip(np.floor(first_x + low_x) - 1, 0, width - 1).astype(np.int64)
    right = np.clip(np.floor(last_x + high_x) + 2, 0, width - 1).astype(np.int64)
    return top, bottom, left, right


def counts_off(matte: np.ndarray) -> np.ndarray:
    """Summed-area tables (H+1 x W+1 x 2 int32) of where ``matte`` (H x W) is not 0 (channel 0) and where it is not 1
    (channel 1)."""
    return cv2.integral(np.dstack((matte != 0, matte != 1)).view(np.uint8))


def active_blocks(own: np.ndarray, others: list[tuple[np.ndarray, tuple[np.ndarray, ...]]]) -> np.ndarray:
    """Which ``BLOCK`` blocks of a frame's matte (H x W) the filter can change: a rows x cols bool grid, True where
    the matte is not all 0 or all 1, or where a neighbour's matte is not that value somewhere its warp reads for the
    block. ``own``: :func:`counts_off` of the frame's matte; ``others``: per neighbour, :func:`counts_off` of its
    matte and the :func:`sampled_rectangles` of its warp. Elsewhere every warped neighbour equals the frame's matte,
    so the median and the weighted mean give it back."""
    sums = block_sums(own, *block_bounds(own.shape[0] - 1, own.shape[1] - 1))
    zero, one = sums[..., 0] == 0, sums[..., 1] == 0  # all 0, all 1
    active = ~(zero | one)
    for table, rectangle in others:
        sums = block_sums(table, *rectangle)
        active |= (zero & (sums[..., 0] > 0)) | (one & (sums[..., 1] > 0))
    return active


def block_pixels(blocks: np.ndarray, height: int, width: int) -> np.ndarray:
    """The (x, y) of every pixel of the True ``blocks`` (a rows x cols grid over an H x W image), the blocks laid
    side by side in a near-square grid of blocks (OpenCV's remap takes under 32767 px a side): float32
    (R * BLOCK) x (G * BLOCK) x 2. The grid's last places repeat the last block, and a block clipped by the image's
    edge repeats its last row or column, so every place holds a pixel of the blocks and each pixel's own values."""
    rows, cols = np.nonzero(blocks)
    count = len(rows)
    across = max(1, math.isqrt(count - 1) + 1) if count else 1
    order = np.minimum(np.arange(-(-count // across) * across), count - 1).reshape(-1, across)
    steps = np.arange(BLOCK)
    ys = np.minimum(rows[order][:, None, :, None] * BLOCK + steps[None, :, None, None], height - 1)
    xs = np.minimum(cols[order][:, None, :, None] * BLOCK + steps[None, None, None, :], width - 1)
    where = np.empty((order.shape[0], BLOCK, across, BLOCK, 2), np.float32)
    where[..., 0], where[..., 1] = xs, ys
    return where.reshape(order.shape[0] * BLOCK, across * BLOCK, 2)
