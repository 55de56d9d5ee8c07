"""Foreground colour estimation ("colour decontamination") under a soft alpha.

Where alpha is partial, a photo pixel mixes the subject's colour F with the old
background's colour B: ``I = alpha F + (1 - alpha) B``. Cutting out with the photo's own
colours keeps that old background in every hair and soft edge - the halo users see when
they composite over something else. Here F and B are estimated for every pixel by
minimising, over the whole image::

    sum_i |alpha_i F_i + (1 - alpha_i) B_i - I_i|^2
      + sum_{i~j} (eps + gamma |alpha_i - alpha_j|) (|F_i - F_j|^2 + |B_i - B_j|^2)

(the compositing equation plus smoothness that relaxes across alpha edges), solved
coarse-to-fine: from a tiny copy of the image up to full size, each level starts from the
previous level's F and B and runs a few Jacobi sweeps of the per-pixel 2x2 solves. The cost
is a small constant number of passes (the idea of Germer et al.'s multi-level foreground
estimation; this is an independent vectorised implementation). Small levels are solved over
the whole photo; larger ones only in tiles holding partial alpha, and inside a tile only in boxes
around the pixels that are used (at full size the partial ones; below it, those the level above
reads), each with a halo as wide as its sweeps reach, so every used pixel gets the whole-photo
solve's value: the cost follows the soft edge, not the photo. The levels are 2 x 2 block means of the one above;
the full size is never held whole as float, nor the half size where few tiles solve it, and there a tiled level's
starting colours are enlarged from the one below only where they are read (where tiles cover most of it: whole).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..ops.pixels import between, quantise, unit_float
from ..ops.regions import each_tile, grown, sparse_empty, tiles_holding
from .levels import PARTIAL, TILE, coarser_levels, halvings, level_sizes, result_array


NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def _system(alpha: np.ndarray, eps: float, gamma: float) -> tuple:
    """The per-pixel 2 x 2 systems of :func:`_sweeps` over the (H + 2) x (W + 2) run of ``alpha`` (H x W) with its
    repeated border, from the first row inside it: (the four neighbours' weights, as NEIGHBOURS, (alpha, 1 - alpha),
    the inverse's entries (i00, i01, i11)); each a flat float32 run of H x (W + 2) values."""
    h, w = alpha.shape
    row = w + 2
    lo, hi = row, (h + 1) * row  # the flat run of the rows inside the border
    edge = cv2.copyMakeBorder(np.ascontiguousarray(alpha), 1, 1, 1, 1, cv2.BORDER_REPLICATE).ravel()
    # |alpha_i - alpha_j| is symmetric: one difference per pair of vertical and of horizontal neighbours
    vertical = eps + gamma * np.abs(edge[lo : hi + row] - edge[lo - row : hi])
    horizontal = eps + gamma * np.abs(edge[lo : hi + 1] - edge[lo - 1 : hi])
    n = hi - lo
    weights = (vertical[:n], vertical[row:], horizontal[:n], horizontal[1:])  # as NEIGHBOURS: up, down, left, right
    total = weights[0] + weights[1] + weights[2] + weights[3]
    # Per-pixel 2x2 system [[a^2 + W, a(1-a)], [a(1-a), (1-a)^2 + W]] [F, B] = [a I + sum w F_j, (1-a) I + sum w B_j],
    # solved for F and B together (6 planes) by its inverse.
    a = edge[lo:hi]
    na = 1.0 - a
    m00, m01, m11 = a * a + total, a * na, na * na + total
    inv_det = 1.0 / (m00 * m11 - m01 * m01)
    return weights, (a, na), (m11 * inv_det, -m01 * inv_det, m00 * inv_det)


def _sweeps(
    image: np.ndarray,
    alpha: np.ndarray,
    fg: np.ndarray,
    bg: np.ndarray,
    count: int,
    eps: float,
    gamma: float,
    wanted: tuple[slice, slice] | None = None,
    fg_only: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``count`` Jacobi sweeps of the per-pixel solves at one level (image, fg, bg: H x W x 3 float32; alpha H x W);
    returns the new (F, B) inside ``wanted`` (a box of the H x W window; all of it by default), n x m x 3 each,
    B None when ``fg_only``.

    F and B are swept as six planes in one buffer with a one-pixel border that repeats the edge, each plane one
    flat run of (H + 2) x (W + 2) values, so that every operation is one contiguous pass (the border columns are
    computed too and reset before they are read). Sweep k (of ``count``) only solves the rows within
    ``count - 1 - k`` of ``wanted``'s, the ones a later sweep reads, and the last one F alone under ``fg_only``:
    every solved pixel gets the same float32 operations, in the same order, as sweeps of the whole window written
    with padded copies."""
    h, w = alpha.shape
    row = w + 2
    lo, hi = row, (h + 1) * row  # the flat run of the rows inside the border
    n = hi - lo
    shifts = [dy * row + dx for dy, dx in NEIGHBOURS]
    weights, (a, na), (i00, i01, i11) = _system(alpha, eps, gamma)
    planes = np.zeros((3, h, row), np.float32)
    planes[:, :, 1 : w + 1] = image.transpose(2, 0, 1)
    ai, bi = a * planes.reshape(3, n), na * planes.reshape(3, n)
    both = np.empty((6, h + 2, row), np.float32)  # F's planes, then B's, with a border
    both[:3, 1 : h + 1, 1 : w + 1], both[3:, 1 : h + 1, 1 : w + 1] = fg.transpose(2, 0, 1), bg.transpose(2, 0, 1)
    flat = both.reshape(6, -1)
    sums, term = np.empty((6, n), np.float32), np.empty((6, n), np.float32)
    ys, xs = wanted or (slice(0, h), slice(0, w))
    for k in range(count):
        reach = count - 1 - k  # solve the rows within this many of `wanted`'s (inside the window)
        start, stop = max(0, ys.start - reach) * row, min(h, ys.stop + reach) * row  # in the run from `lo`
        part = slice(start, stop)
        both[:, 0], both[:, h + 1] = both[:, 1], both[:, h]
        both[:, :, 0], both[:, :, w + 1] = both[:, :, 1], both[:, :, w]
        s, t = sums[:, part], term[:, part]
        for j, (wt, shift) in enumerate(zip(weights, shifts)):  # the neighbours' pull, in NEIGHBOURS' order
            near = flat[:, lo + start + shift : lo + stop + shift]
            if j == 0:
                np.multiply(wt[part], near, out=s)
            else:
                s += np.multiply(wt[part], near, out=t)
        rf, rb = s[:3], s[3:]
        np.add(ai[:, part], rf, out=rf)
        np.add(bi[:, part], rb, out=rb)
        last_fg = fg_only and k == count - 1
        for first, (c0, c1) in zip((0, 3), ((i00, i01),) if last_fg else ((i00, i01), (i01, i11))):
            into = flat[first : first + 3, lo + start : lo + stop]
            np.add(np.multiply(c0[part], rf, out=t[:3]), np.multiply(c1[part], rb, out=t[3:]), out=into)
            np.clip(into, 0.0, 1.0, out=into)
    inside = both[:, 1 + ys.start : 1 + ys.stop, 1 + xs.start : 1 + xs.stop].transpose(1, 2, 0)
    return inside[..., :3], None if fg_only else inside[..., 3:]


def estimate_foreground(
    image: np.ndarray,
    alpha: np.ndarray,
    *,
    eps: float = 5e-3,
    gamma: float = 0.1,
    coarse_sweeps: int = 10,
    fine_sweeps: int = 2,
    start_size: int = 32,
    out=None,
    device=None,
) -> np.ndarray:
    """Foreground colours F (H x W x 3 float32 in [0,1]) of an sRGB image (H x W x 3|4: float32 in [0,1], or
    uint8/uint16, made float a tile or a strip at a time) under ``alpha`` (H x W in [0,1]).

    Where alpha is 0 or 1 (within ``PARTIAL``) F is the photo's colour; elsewhere the multi-level estimate. Levels
    grow by 2 from ``start_size`` pixels on the long side (each coarser level the 2 x 2 block means of the one above
    it: :func:`mattekit.ops.resizing.shrunk`); all but the two finest get ``coarse_sweeps`` sweeps, the two finest
    ``fine_sweeps``. ``out`` (H x W x C >= 3 float32 holding the photo's colours in its first three channels; or
    uint8/uint16 holding them as integers, which get F rounded as :func:`mattekit.ops.pixels.quantise` rounds)
    receives F in place, so an RGBA result needs no second copy of the colours; ``out`` may also be a function
    making that array, called once the coarser levels are solved (they and a full-size result are then never held
    at once). Returns ``out[..., :3]`` (a new array without ``out``). ``device``: the finish's device (None: here);
    it is solved there (its ``foreground``, with :func:`mattekit.matting.foreground_device.estimate_foreground_on`'s
    arguments but the device; on a GPU that function: the same colours to float rounding), unless its memory runs out.
    """
    if device is not None:
        sweeps = dict(eps=eps, gamma=gamma, coarse_sweeps=coarse_sweeps, fine_sweeps=fine_sweeps, start_size=start_size)
        done = device.foreground(image, alpha, out=out, **sweeps)
        if done is not None:
            return done
    alpha = np.asarray(alpha, np.float32)  # no copy for a float32 alpha: the photo's size is the big one

    partial = between(alpha, PARTIAL, 1.0 - PARTIAL)
    if not partial.any():
        return result_array(image, out)[..., :3]
    h, w = alpha.shape
    sizes = level_sizes(h, w, start_size)
    counts = [coarse_sweeps] * max(0, len(sizes) - 2) + [fine_sweeps] * min(2, len(sizes))
    pyramid = coarser_levels(image, alpha, sizes)
    tiles = [(box, _partial_boxes(partial[box], box, counts[-1])) for box in tiles_holding(partial, 0, TILE)]
    plans = _plan(tiles, [a for _, a in pyramid], sizes, counts)
    half = len(sizes) - 2
    if half >= 0 and (half not in plans or _dense(plans[half][0], sizes[half])):  # solved whole, or over most of it
        pyramid[0] = (halvings(image, 1), pyramid[0][1])
    fg, bg = _coarser_solved(pyramid, plans, sizes, counts, eps, gamma)
    filled = result_array(image, out)
    kind = filled.dtype

    def solved(tile):  # the full size: a tile with a halo of its sweeps, solved around its partial pixels only
        return _tile_solved(tile, image, alpha, partial, None if fg is None else (fg, bg), counts[-1], eps, gamma, kind)

    for pieces in each_tile(solved, tiles):
        for part, here, colours in pieces:
            filled[part][here, :3] = colours
    return filled[..., :3]


def _tile_solved(tile, image, alpha, partial, coarse, count: int, eps: float, gamma: float, kind) -> list:
    """One full-size ``tile`` ((box, its boxes of partial pixels)) solved with a halo of its ``count`` sweeps, from
    the level below's (F, B) (``coarse``; None: the tile's mean colours under and outside alpha): [(box, its partial
    pixels, their F)], F float32, or rounded as :func:`~mattekit.ops.pixels.quantise` does for an integer ``kind``."""
    box, parts = tile
    h, w = alpha.shape
    window, _ = grown(box, count, (h, w))
    img = np.ascontiguousarray(unit_float(image[window][..., :3]))
    if coarse is None:
        seeds = [np.broadcast_to(m, img.shape) for m in _means(img, alpha[window])]
    else:
        seeds = _sample(coarse, window, (h, w))
    pieces = []
    for part in parts:
        near, inner = grown(part, count, (h, w))  # (inside the window: the tile's halo is as wide)
        local = tuple(slice(n.start - o.start, n.stop - o.start) for n, o in zip(near, window))
        f, _ = _sweeps(img[local], alpha[near], *(c[local] for c in seeds), count, eps, gamma, inner, fg_only=True)
        here = partial[part]
        colours = f[here]
        if kind.kind in "ui":
            colours = quantise(colours[None], 16 if kind == np.uint16 else 8)[0]
        pieces.append((part, here, colours))
    return pieces


def _coarser_solved(pyramid: list, plans: dict, sizes: list, counts: list, eps: float, gamma: float) -> tuple:
    """(F, B) of the level below the full size, h x w x 3 float32 each (None, None without one): the levels of
    ``pyramid`` (finest first, popped: each let go once solved) solved coarsest first, each from the one below
    enlarged, whole or in the tiles of ``plans``."""
    fg = bg = None
    for level, ((sh, sw), count) in enumerate(zip(sizes[:-1], counts)):
        img, a = pyramid.pop()  # coarsest first; each level is let go once solved
        if fg is None:
            fg, bg = _means(unit_float(img), a)
        if level in plans:
            fg, bg = _enlarged((fg, bg), plans[level], (sh, sw))
            _tiled_sweeps(img, a, fg, bg, count, eps, gamma, plans[level][0])
        else:
            fg = cv2.resize(fg, (sw, sh), interpolation=cv2.INTER_LINEAR)
            bg = cv2.resize(bg, (sw, sh), interpolation=cv2.INTER_LINEAR)
            fg, bg = _sweeps(unit_float(img), a, fg, bg, count, eps, gamma)
    return fg, bg


def _enlarged(planes: tuple[np.ndarray, np.ndarray], plan: tuple[list, list], size: tuple[int, int]) -> tuple:
    """A tiled level's starting (F, B), h x w x 3 each: the level below's ``planes`` enlarged bilinearly, only in the
    boxes of ``plan`` (its tiles, the boxes read: :func:`_plan`), or whole where its tiles are :func:`_dense`."""
    (tiles, boxes), (sh, sw) = plan, size
    if _dense(tiles, size):
        return tuple(cv2.resize(p, (sw, sh), interpolation=cv2.INTER_LINEAR) for p in planes)
    start = _unset((2, sh, sw, 3))  # (pixels outside the boxes are never read)
    for box in boxes:
        start[0][box], start[1][box] = _sample(planes, box, size)
    return start[0], start[1]


def _dense(tiles: list, size: tuple[int, int]) -> bool:
    """Whether a level's ``tiles`` cover over half of its ``size`` (h, w): then its planes are made whole, in one pass,
    rather than window by window (windows overlapping by their halos would cost more)."""
    return len(tiles) * TILE * TILE > size[0] * size[1] / 2


def _unset(shape: tuple[int, ...]) -> np.ndarray:
    """A float32 array of ``shape`` whose values are not set, written in scattered boxes: its memory is mapped in
    small pages, each made on first write (:func:`mattekit.ops.regions.sparse_empty`)."""
    return sparse_empty(shape, np.float32)


def _partial_boxes(flags: np.ndarray, box: tuple[slice, slice], halo: int) -> list[tuple[slice, slice]]:
    """Boxes (row and column slices of the level) around the True pixels of ``flags`` (a tile's pixels to solve, at
    ``box``): the bounding box of each quarter of the tile holding some, or of the whole tile where those would
    cover most of its (with their sweeps' halos of ``halo`` px); none without a True pixel."""

    def bound(rows, cols, y0, x0):  # the box of the rows and columns holding a True pixel (bool 1-D each)
        r, c = rows.tobytes(), cols.tobytes()
        first = r.find(1)
        return None if first < 0 else (y0 + first, y0 + r.rfind(1) + 1, x0 + c.find(1), x0 + c.rfind(1) + 1)

    def area(b):
        return (b[1] - b[0] + 2 * halo) * (b[3] - b[2] + 2 * halo)

    my, mx = flags.shape[0] // 2, flags.shape[1] // 2
    left, right = flags[:, :mx].any(1), flags[:, mx:].any(1)  # the rows holding one, in each half
    top, bottom = flags[:my].any(0), flags[my:].any(0)  # the columns holding one, in each half
    whole = bound(left | right, top | bottom, 0, 0)
    if whole is None:
        return []
    quarters = [
        b
        for b in (
            bound(left[:my], top[:mx], 0, 0),
            bound(right[:my], top[mx:], 0, mx),
            bound(left[my:], bottom[:mx], my, 0),
            bound(right[my:], bottom[mx:], my, mx),
        )
        if b is not None
    ]
    chosen = quarters if sum(area(b) for b in quarters) < 0.7 * area(whole) else [whole]
    ys, xs = box
    return [(slice(ys.start + y0, ys.start + y1), slice(xs.start + x0, xs.start + x1)) for y0, y1, x0, x1 in chosen]


def _level_tiles(flags: np.ndarray, reach: int, read: np.ndarray) -> list[tuple[tuple[slice, slice], list]]:
    """The TILE-px tiles of a level holding a True pixel of ``flags`` (H x W bool, its partial alpha) within ``reach``
    px (its sweeps' count), each with the boxes of it to solve: around its pixels that are ``read`` (H x W bool;
    :func:`_partial_boxes`)."""
    return [(box, _partial_boxes(read[box], box, reach)) for box in tiles_holding(flags, reach, TILE)]


def _plan(tiles: list, alphas: list[np.ndarray], sizes: list[tuple[int, int]], counts: list[int]) -> dict:
    """{level index: (its tiles and boxes (:func:`_level_tiles`), the boxes that need its values)} for the levels
    solved in tiles (over TILE^2 x 4 pixels), from the full size's ``tiles`` down: a level is solved in the tiles
    where its alpha (``alphas``, finest first, the full size left out) is partial within its sweeps' reach, and
    there only where the level above reads it (through :func:`_sample`). Every pixel read is solved as in whole
    tiles; the others cannot matter. A level's values are needed in its boxes' windows (their sweeps' halo) and
    where the level above needs its own (:func:`_read_box`): only there is it enlarged from the level below."""
    plans, finer = {}, sizes[-1]
    needed = [grown(p, counts[-1], finer)[0] for _, boxes in tiles for p in boxes]  # the full size's windows
    for level in range(len(sizes) - 2, -1, -1):
        size = sizes[level]
        if size[0] * size[1] <= TILE * TILE * 4:
            break
        parts, halo = [p for _, boxes in tiles for p in boxes], counts[level + 1]
        read = np.zeros(size, bool)
        for part in parts:
            read[_read_box(grown(part, halo, finer)[0], finer, size)] = True
        alpha = alphas[len(sizes) - 2 - level]
        tiles = _level_tiles(between(alpha, PARTIAL, 1.0 - PARTIAL), counts[level], read)
        needed = [grown(p, counts[level], size)[0] for _, boxes in tiles for p in boxes] + [
            _read_box(box, finer, size) for box in needed
        ]
        plans[level], finer = (tiles, needed), size
    return plans


def _tiled_sweeps(image, alpha, fg, bg, count, eps, gamma, tiles) -> None:
    """The sweeps of :func:`_sweeps` in the boxes of ``tiles`` (:func:`_level_tiles`; on every core:
    :func:`mattekit.ops.regions.each_tile`), written into ``fg`` and ``bg`` once every box is solved. A box is computed from
    the level's starting values with a halo of ``count`` pixels, so its interior is what the whole-level sweeps
    give; elsewhere (where the level above reads them) the colours stay as enlarged from the level below."""

    def swept(tile):
        pieces = []
        for part in tile[1]:
            window, inner = grown(part, count, alpha.shape)
            f, b = _sweeps(unit_float(image[window]), alpha[window], fg[window], bg[window], count, eps, gamma, inner)
            pieces.append((part, f, b))
        return pieces

    for pieces in each_tile(swept, tiles):
        for part, f, b in pieces:
            fg[part], bg[part] = f, b


def _read_box(box: tuple[slice, slice], finer: tuple[int, int], level: tuple[int, int]) -> tuple[slice, slice]:
    """The box (row and column slices) of a ``level``-size plane that bilinear sampling at the ``finer`` size reads
    for ``box`` of the finer size (:func:`_reads`), one pixel more each side (for rounding)."""
    (_, top, bottom), (_, left, right) = (_reads(s, f, n) for s, f, n in zip(box, finer, level))
    return slice(max(0, top - 1), min(level[0], bottom + 1)), slice(max(0, left - 1), min(level[1], right + 1))


def _means(image: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starting F and B (1 x 1 x 3): the mean colours of the (mostly) foreground and background pixels."""
    weight = alpha[..., None]
    mean_f = (image * weight).sum((0, 1)) / max(float(weight.sum()), 1e-6)
    mean_b = (image * (1 - weight)).sum((0, 1)) / max(float((1 - weight).sum()), 1e-6)
    return tuple(np.asarray(m, np.float32).reshape(1, 1, 3) for m in (mean_f, mean_b))


def _reads(span: slice, full: int, size: int) -> tuple[np.ndarray, int, int]:
    """Where the pixels ``span`` of a ``full``-px side fall on a ``size``-px side, bilinearly (float64 positions),
    and the first and past-the-last pixel of that side they read."""
    at = (np.arange(span.start, span.stop, dtype=np.float64) + 0.5) * (size / full) - 0.5
    stop = min(size, int(np.floor(at[-1])) + 2)
    return at, min(max(0, int(np.floor(at[0]))), stop - 1), stop


def _sample(planes: tuple[np.ndarray, ...], window: tuple[slice, slice], full: tuple[int, int]) -> list[np.ndarray]:
    """Each of ``planes`` (h x w x 3 each, a level of a ``full``-size photo) resized bilinearly to full size, only
    inside ``window`` (row and column slices): the same values as resizing it all, then cropping."""
    # only the part of the plane the window reads: OpenCV's remap takes planes under 32767 px a side (a strip
    # photo's level is longer), and positions outside it are clamped to the plane's edge either way
    (rows, top, bottom), (cols, left, right) = (_reads(s, f, n) for s, f, n in zip(window, full, planes[0].shape))
    # positions rounded to OpenCV's 1/32 px first, so that they are exact in float32 whatever the crop: a pixel's value
    # does not depend on the window it is sampled in
    map_x, map_y = np.meshgrid(
        (np.rint(cols * 32) / 32 - left).astype(np.float32), (np.rint(rows * 32) / 32 - top).astype(np.float32)
    )
    return [
        cv2.remap(
            np.ascontiguousarray(p[top:bottom, left:right]),
            map_x,
            map_y,
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        for p in planes
    ]
