"""A hint's values read from the text a user types (the options' check): a box ``x0,y0,x1,y1`` (:func:`parse_box`)
and points ``x,y;x,y`` (:func:`parse_points`), in pixels of the full image; one sentence when malformed."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .hints import Box, Point


def _numbers(given, count: int, what: str, example: str) -> list[int]:
    """``count`` numbers of ``given`` (a text of comma-separated numbers, or the numbers themselves), rounded to
    pixels; InputError when malformed, or when a value lies strictly between -1 and 1 and is not 0: a fraction of
    the image's size, which rounding would turn into pixel 0 or 1 (``0.2,0,0.4,50`` became the empty box 0,0,0,50)."""
    if isinstance(given, str):
        parts = [p.strip() for p in given.split(",")]
    else:
        try:
            parts = [str(v.item() if isinstance(v, np.generic) else v) for v in given]
        except TypeError:
            parts = [str(given)]
        given = ",".join(parts)
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != count or not all(np.isfinite(values)):
        raise InputError(f"The {what} {given!r} is not {example}.")
    fractions = [p for p, v in zip(parts, values) if 0 < abs(v) < 1]
    if fractions:
        raise InputError(
            f"The {what} {given!r} has {' and '.join(fractions)}, which would round to pixel 0 or 1: it "
            f"takes pixels of the image, not fractions of its size ({example})."
        )
    return [int(round(v)) for v in values]


def parse_box(given) -> Box:
    """'x0,y0,x1,y1' (or the four numbers) -> the :class:`Box` in pixels; InputError when malformed or empty."""
    box = Box(*_numbers(given, 4, "box", "x0,y0,x1,y1 in pixels, e.g. 40,30,400,380"))
    if box.x1 <= box.x0 or box.y1 <= box.y0:
        raise InputError(f"The box '{box}' is empty: x1 must be greater than x0 and y1 greater than y0.")
    if box.x1 <= 0 or box.y1 <= 0:  # partly outside is clipped to the image (:func:`make`), wholly outside is no box
        raise InputError(f"The box '{box}' lies outside every image: pixels count from 0,0 at the top left.")
    return box


def parse_points(given) -> tuple[Point, ...]:
    """'x,y;x,y;...' (the CLI's repeated --point), or the points themselves (one (x, y) or several) -> the
    :class:`Point` s; InputError when malformed."""
    if given is None or len(given) == 0:
        return ()
    if isinstance(given, str):
        items = [p for p in given.split(";") if p.strip()]
    else:
        items = list(given) if all(isinstance(p, str) or np.ndim(p) == 1 for p in given) else [given]
    points = tuple(Point(*_numbers(p, 2, "point", "x,y in pixels, e.g. 120,200")) for p in items)
    negative = next((p for p in points if min(p) < 0), None)
    if negative is not None:
        raise InputError(f"The point {negative} lies outside every image: pixels count from 0,0 at the top left.")
    return points
