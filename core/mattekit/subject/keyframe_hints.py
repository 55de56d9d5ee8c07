"""Hints on the keyframes of a shot as values (:class:`KeyframeHint`): roto's ``box``, ``point`` and ``exclude``
read once, where the user's text enters (the options' check), into a plate frame number, a
:class:`~mattekit.subject.hints.Box` or :class:`~mattekit.subject.hints.Point` in image pixels, and the object hinted.

The text: ``FRAME:VALUE`` or ``FRAME:VALUE@NAME`` (``1001:10,10,80,90@dog``), several joined by ``;`` as the CLI's
repeated flags give them. A hint without a name belongs to object :data:`DEFAULT`; names are letters, digits, ``_``
and ``-``. A value prints as its text (``str``), which reads back as the same value.

Roto's ``hint_mask`` is read here too, once, into :class:`HintMask` values: ``PATTERN`` or ``PATTERN@NAME``, one
pattern per object joined by ``;`` (``masks/dog.####.png@dog;masks/swan.####.png@swan``, as the Blender add-on
sends a Mask's layers). A pattern's ``@`` names an object only before a name that ends the part (a pattern ends in
a file suffix such as ``.png``, and ``name.@.png`` marks its frame number with ``@``).
"""

from __future__ import annotations

import re
from typing import Callable, NamedTuple

from ..errors import InputError
from . import hint_text, hints

DEFAULT = "1"  # the object of hints without a name
NAME = re.compile(r"[A-Za-z0-9_-]+")  # an object's name


class KeyframeHint(NamedTuple):
    """A hint on plate frame ``frame``: ``value`` (a Box or a Point, image pixels) of object ``name``; prints as
    ``FRAME:VALUE``, or ``FRAME:VALUE@NAME`` for an object other than :data:`DEFAULT`."""

    frame: int
    value: hints.Box | hints.Point
    name: str = DEFAULT

    def __str__(self) -> str:
        return f"{self.frame}:{self.value}" + ("" if self.name == DEFAULT else f"@{self.name}")


class HintMask(NamedTuple):
    """Object ``name``'s keyframe masks: ``pattern``, a frame pattern (``masks/####.png``) whose existing files are
    masks of the plate's frames with the same numbers (white = subject); prints as ``PATTERN``, or ``PATTERN@NAME``
    for an object other than :data:`DEFAULT`, and as a path (``os.fspath``) as its pattern."""

    pattern: str
    name: str = DEFAULT

    def __str__(self) -> str:
        return self.pattern + ("" if self.name == DEFAULT else f"@{self.name}")

    def __fspath__(self) -> str:
        return self.pattern


def parse_hint_masks(given) -> tuple[HintMask, ...] | None:
    """Roto's ``hint_mask``: ``"PATTERN[@NAME];..."``, or :class:`HintMask` values, or a list of either -> the masks
    in the order given, one per object; None for none. InputError when a mask is malformed or an object has two."""
    if given is None:
        return None
    items = [given] if isinstance(given, (str, HintMask)) else given
    found: dict[str, HintMask] = {}
    try:
        masks = [m for item in items for m in (_masks_of(item) if isinstance(item, str) else [_checked_mask(item)])]
    except TypeError:
        raise InputError(
            f"The hint mask {given!r} is not PATTERN or PATTERN@NAME (e.g. masks/dog.####.png@dog), "
            "several joined by ';'."
        ) from None
    for mask in masks:
        if mask.name in found:
            raise InputError(
                f"The hint mask gives object {mask.name!r} two patterns ({found[mask.name].pattern} and "
                f"{mask.pattern}): give each object one pattern, PATTERN@NAME, joined by ';'."
            )
        found[mask.name] = mask
    return tuple(found.values()) or None


def _masks_of(text: str) -> list[HintMask]:
    """'a.####.png@dog;b.####.png' -> [HintMask('a.####.png', 'dog'), HintMask('b.####.png')]."""
    found = []
    for part in (p.strip() for p in text.split(";")):
        if part:
            pattern, at, name = part.rpartition("@")
            found.append(
                HintMask(pattern.strip(), name.strip()) if at and NAME.fullmatch(name.strip()) else HintMask(part)
            )
    return found


def _checked_mask(mask) -> HintMask:
    """A mask given as a value: a HintMask whose pattern is a text that is not empty and whose name is a name."""
    if not (
        isinstance(mask, HintMask)
        and isinstance(mask.pattern, str)
        and mask.pattern.strip()
        and isinstance(mask.name, str)
        and NAME.fullmatch(mask.name)
    ):
        raise InputError(
            f"The hint mask {mask!r} is not (PATTERN, NAME) with a frame pattern such as "
            "masks/####.png and a name of letters, digits, _ and -."
        )
    return mask


def parse_boxes(given) -> tuple[KeyframeHint, ...] | None:
    """Roto's ``box``: ``"FRAME:x0,y0,x1,y1[@NAME];..."``, or :class:`KeyframeHint` values, or a list of either ->
    the hints in the order given, each box parsed once (:func:`~mattekit.subject.hint_text.parse_box`); None for none.
    InputError when one is malformed."""
    return _parse(given, "box", "x0,y0,x1,y1", _box)


def parse_points(given) -> tuple[KeyframeHint, ...] | None:
    """Roto's ``point`` (``"FRAME:x,y[@NAME];..."``, values or a list), as :func:`parse_boxes`; one point a hint."""
    return _parse(given, "point", "x,y", _point)


def parse_excludes(given) -> tuple[KeyframeHint, ...] | None:
    """Roto's ``exclude`` (``"FRAME:x,y[@NAME];..."``, values or a list), as :func:`parse_points`."""
    return _parse(given, "exclude point", "x,y", _point)


def _box(value) -> hints.Box:
    return value if isinstance(value, hints.Box) else hint_text.parse_box(value)


def _point(value) -> hints.Point:
    if isinstance(value, hints.Point):
        return value
    points = hint_text.parse_points(value)
    if len(points) != 1:
        raise InputError(f"The point {value!r} is not one point x,y in pixels.")
    return points[0]


def _parse(given, what: str, example: str, read: Callable) -> tuple[KeyframeHint, ...] | None:
    """The hints ``given`` holds (see :func:`parse_boxes`), each value read by ``read``; None when there are none."""
    if given is None:
        return None
    if isinstance(given, (str, KeyframeHint)):
        given = [given]
    try:
        items = list(given)
    except TypeError:
        raise InputError(
            f"The {what} {given!r} is not FRAME:{example} (the frame number, a colon, then the {what})."
        ) from None
    found = []
    for item in items:
        if isinstance(item, KeyframeHint):
            found.append(_checked(item, what, example, read))
        elif isinstance(item, str):
            found += [_read(part.strip(), what, example, read) for part in item.split(";") if part.strip()]
        else:
            raise InputError(
                f"The {what} {item!r} is not FRAME:{example} (the frame number, a colon, then the {what})."
            )
    return tuple(found) or None


def _read(part: str, what: str, example: str, read: Callable) -> KeyframeHint:
    """One hint's text ``FRAME:VALUE[@NAME]`` -> its value."""
    value, at, name = part.rpartition("@") if "@" in part else (part, "", DEFAULT)
    name = name.strip()
    if at and not NAME.fullmatch(name):
        raise InputError(
            f"The {what} {part!r} names the object {name!r}: an object name is letters, digits, _ and "
            "- (e.g. FRAME:VALUE@dog)."
        )
    frame, sep, text = value.partition(":")
    try:
        number = int(frame.strip())
    except ValueError:
        number = None
    if not sep or number is None or not text.strip():
        raise InputError(
            f"The {what} {value.strip()!r} is not FRAME:{example} (the frame number, a colon, then the {what})."
        )
    return KeyframeHint(number, read(text.strip()), name)


def _checked(hint: KeyframeHint, what: str, example: str, read: Callable) -> KeyframeHint:
    """A hint given as a value: its frame a whole number, its name a name, its value read (kept when it is one)."""
    if (
        not isinstance(hint.frame, int)
        or isinstance(hint.frame, bool)
        or not isinstance(hint.name, str)
        or not NAME.fullmatch(hint.name)
    ):
        raise InputError(
            f"The {what} {tuple(hint)!r} is not (FRAME, {example}, NAME) with a whole frame number and "
            "a name of letters, digits, _ and -."
        )
    value = read(hint.value)
    return hint if value is hint.value else hint._replace(value=value)
