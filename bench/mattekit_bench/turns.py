"""What the benches comparing two ways of ``remove`` on generated shots share (``bench two-shots``, ``see-through``,
``shadow``): the CPU time of a call, two calls taken in turns, and a contact sheet of the cut-outs."""

from __future__ import annotations

import time

import numpy as np

from mattekit import io

BLUE = np.float32([0.15, 0.35, 0.75])  # the coloured background a sheet shows a cut-out over


def cpu_time(call):
    """(the CPU seconds of all threads ``call()`` took, its value)."""
    start = time.process_time()
    value = call()
    return time.process_time() - start, value


def in_turns(index: int, calls, seconds: list[float]) -> list:
    """The values of the two ``calls`` (no arguments), the first called first at an even ``index`` and second at an
    odd one (so that drifting load falls on both alike); each one's CPU seconds added to its entry of ``seconds``."""
    made = [None, None]
    for which in (0, 1) if index % 2 == 0 else (1, 0):
        spent, made[which] = cpu_time(calls[which])
        seconds[which] += spent
    return made


def over(rgba: np.ndarray, behind) -> np.ndarray:
    """A cut-out (H x W x 4 straight alpha) over ``behind`` (H x W x 3, a colour or a grey level): H x W x 3."""
    return rgba[..., :3] * rgba[..., 3:] + behind * (1.0 - rgba[..., 3:])


def checks(height: int, width: int) -> np.ndarray:
    """A grey checkerboard of 16 px squares (0.6 and 0.9): float32 H x W x 3."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.repeat((0.6 + 0.3 * (((ys // 16) + (xs // 16)) % 2))[..., None], 3, 2).astype(np.float32)


def write_sheet(path: str, rows: list[tuple[np.ndarray, ...]]) -> None:
    """Write a contact sheet to ``path`` and say so: each row's cells (H x W x 3, or H x W grey) side by side, the rows
    stacked (float32)."""
    cells = [[cell if cell.ndim == 3 else np.repeat(cell[..., None], 3, 2) for cell in row] for row in rows]
    io.write_image(path, np.concatenate([np.concatenate(row, axis=1) for row in cells], axis=0).astype(np.float32))
    print(f"wrote {path}")
