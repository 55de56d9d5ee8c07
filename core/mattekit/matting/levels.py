"""The levels of the multi-level foreground solve (:mod:`mattekit.matting.foreground` on the CPU,
:mod:`mattekit.matting.foreground_device` on a GPU): their sizes, what counts as partial alpha, and the tile size
above which the CPU solves a level in tiles, and the array both write their colours into.
"""

from __future__ import annotations

import numpy as np

from ..ops.pixels import unit_float

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
