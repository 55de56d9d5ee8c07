"""The levels of the multi-level foreground solve (:mod:`mattekit.matting.foreground` on the CPU,
:mod:`mattekit.matting.foreground_device` on a GPU): their sizes, what counts as partial alpha, and the tile size
above which the CPU solves a level in tiles, the array both write their colours into, and the CPU's levels below the
full size (:func:`coarser_levels`: 2 x 2 block means, no float copy of the full size).
"""

from __future__ import annotations

import numpy as np

from ..ops.pixels import unit_float
from ..ops.regions import each_row_strip
from ..ops.resizing import block_means, shrunk

PARTIAL = 1e-3  # alpha within this of 0 or 1 counts as clear or opaque
TILE = 128  # px: levels over TILE^2 x 4 pixels are solved (on the CPU) in tiles this size holding partial alpha


def level_sizes(h: int, w: int, start_size: int) -> list[tuple[int, int]]:
    """The levels' sizes (rows, columns), coarse to fine: halvings (rounded up) of h x w px down to ``start_size`` px
    on the long side; the last is (h, w)."""
    sizes = [(h, w)]
    while max(sizes[-1]) > start_size:
        sh, sw = sizes[-1]
        sizes.append((max(1, (sh + 1) // 2), max(1, (sw + 1) // 2)))
    return sizes[::-1]


def result_array(image: np.ndarray, out) -> np.ndarray:
    """The array the colours of ``image`` (H x W x 3|4) are written into: ``out`` (an array, or a function making it),
    else a float32 copy of the photo's colours in [0,1], H x W x 3."""
    if out is None:
        return np.array(unit_float(image[..., :3]), dtype=np.float32)
    return out() if callable(out) else out


def coarser_levels(image: np.ndarray, alpha: np.ndarray, sizes: list[tuple[int, int]]) -> list[tuple]:
    """The levels below the full size, finest first: (colours, alpha) each, the block means of the level above as
    float (h x w x 3, h x w). The half size's colours are made only for the windows read (:class:`HalfSize`; the
    caller makes them whole where the half size is solved whole): no level holds a float copy of the full size."""
    pyramid, a = [], alpha
    for level in range(len(sizes) - 2, -1, -1):
        a = shrunk(np.ascontiguousarray(a), 2)
        if level == len(sizes) - 2:
            colours = HalfSize(image)
        elif level == len(sizes) - 3:
            colours = halvings(image, 2)
        else:
            colours = shrunk(colours, 2)
        pyramid.append((colours, a))
    return pyramid


class HalfSize:
    """The half-size level's colours (:func:`halvings` of ``image`` once), made only for the windows asked for:
    ``level[rows, cols]`` is h x w x 3 float32, the same values as the whole level's there."""

    def __init__(self, image: np.ndarray):
        self.image = image

    def __getitem__(self, window: tuple[slice, slice]) -> np.ndarray:
        (ys, xs), (h, w) = window, self.image.shape[:2]
        return halvings(self.image[2 * ys.start : min(h, 2 * ys.stop), 2 * xs.start : min(w, 2 * xs.stop)], 1)


def halvings(image: np.ndarray, times: int) -> np.ndarray:
    """``image`` (H x W x 3|4, float [0,1] or integers) made float and shrunk ``times`` times by 2 x 2 block means
    (:func:`mattekit.ops.resizing.block_means`), its colours only, strip by strip over the cores (no float copy of it
    whole): the same values as the whole image's, so integers give what their floats give. h x w x 3 float32."""
    h, w = image.shape[:2]
    k = 1 << times
    rows = k * max(1, (4 << 20) // (w * 12 * k))  # full-size rows per strip: about 4 MB of floats
    out = np.empty((-(-h // k), -(-w // k), 3), np.float32)

    def strip(part: slice) -> None:
        shrunk = np.ascontiguousarray(unit_float(image[part, :, :3]))
        for _ in range(times):
            shrunk = block_means(shrunk, 2)
        out[part.start // k : part.start // k + shrunk.shape[0]] = shrunk

    each_row_strip(strip, h, 1, rows)
    return out
