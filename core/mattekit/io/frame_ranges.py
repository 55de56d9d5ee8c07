"""Frame ranges: ``1001-1100``, steps ``1001-1100x2`` (or ``1001-1100:2``), single frames and lists of
these (``1001,1010-1020,1050``), read into sorted frame numbers and written back compactly.
"""

from __future__ import annotations

import re

from mattekit.errors import InputError

MAX_FRAMES = 1_000_000  # frames one request may name (11.6 hours at 24 fps): counted before any list is made


class Frames(tuple):
    """Sorted unique frame numbers; prints as compact ranges that :func:`parse_frames` reads back (``1-3,7``)."""

    def __str__(self) -> str:
        return format_frames(self).replace(" ", "")


def parse_frames(given) -> Frames:
    """``"1001-1100"``, ``"1-99x2"``, ``"1-99:2"``, ``"5"``, ``"1,4,10-12"`` (or the frame numbers themselves) ->
    sorted unique :class:`Frames`; a request naming more than :data:`MAX_FRAMES` is refused before it is expanded."""
    if not isinstance(given, str):
        if len(given) > MAX_FRAMES:
            raise InputError(f"A frame list names from 1 to {MAX_FRAMES:,} frames, not {len(given):,}.")
        frames = sorted({int(f) for f in given})
        if not frames or len(frames) > MAX_FRAMES:
            raise InputError(f"A frame list names from 1 to {MAX_FRAMES:,} frames, not {len(frames):,}.")
        return Frames(frames)
    text = given
    ranges = []
    for part in str(text).replace(" ", "").split(","):
        m = re.fullmatch(r"(-?\d+)(?:-(-?\d+)(?:[x:](\d+))?)?", part)
        if not m:
            where = f"'{part}' in '{text}'" if part and part != text else f"'{text}'"
            raise InputError(f"{where} is not a frame range; write e.g. 1001-1100, 1001-1100x2 or 1001,1005,1010-1020.")
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) is not None else first
        step = int(m.group(3) or 1)
        if last < first or step < 1:
            raise InputError(f"The frame range '{part}' is empty: it must count upwards with a step of 1 or more.")
        ranges.append(range(first, last + 1, step))
    count = sum(len(r) for r in ranges)
    if count > MAX_FRAMES:
        raise InputError(
            f"The frame range '{text}' names {count:,} frames, more than the {MAX_FRAMES:,} one job "
            "takes; name the plate's frames (e.g. 1001-1100)."
        )
    return Frames(sorted({frame for r in ranges for frame in r}))


def format_frames(frames) -> str:
    """Sorted frames as compact ranges: [1, 2, 3, 7, 9, 10] -> ``"1-3, 7, 9-10"``."""
    frames = sorted(set(frames))
    parts, start = [], None
    for i, f in enumerate(frames):
        if start is None:
            start = f
        if i + 1 == len(frames) or frames[i + 1] != f + 1:
            parts.append(str(f) if f == start else f"{start}-{f}")
            start = None
    return ", ".join(parts)


def chunk_frames(frames: list[int], size: int) -> list[list[int]]:
    """Split a frame list into consecutive chunks of at most ``size`` frames."""
    size = max(1, int(size))
    return [frames[i : i + size] for i in range(0, len(frames), size)]
