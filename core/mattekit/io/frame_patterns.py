"""Frame patterns: where frame N of an image sequence lives (:class:`FramePattern`), read from a pattern,
from one numbered frame's name or from a folder of numbered frames.

The frame number's place is marked in the file name (never in the folder): ``name.####.exr`` (one ``#``
per digit, as Nuke and Blender), ``name.%04d.png`` (printf; ``%d`` unpadded), ``name.$F4.png`` (Houdini;
``$F`` unpadded), ``name.@@@@.png`` (one ``@`` per digit, as RV; a single ``@`` is unpadded). In a numbered
frame's name (``name.1001.exr``) the last run of digits is the frame number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mattekit.errors import InputError

IMAGE_SUFFIXES = (".exr", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".dpx")
_TOKEN = re.compile(r"(#+)|%(0?)(\d*)d|\$F(\d?)|(@+)")
_LAST_NUMBER = re.compile(r"^(.*?)(-?\d+)(\D*)$")


def has_frame_token(name: str) -> bool:
    """Whether the file name ``name`` marks a frame number's place (``#``, ``%04d``, ``$F4`` or ``@``)."""
    return _TOKEN.search(name) is not None


@dataclass(frozen=True)
class FramePattern:
    """Where frame N of a sequence lives: ``folder / (prefix + N padded to `padding` digits + suffix)``.

    ``padding`` 1 means unpadded (1, 2, ... 10). A file holds frame N when its number has exactly
    ``padding`` digits, or more without a leading zero (frame 10000 of a ``####`` sequence).
    """

    folder: Path
    prefix: str
    suffix: str
    padding: int = 4

    @classmethod
    def parse(cls, text: str) -> "FramePattern":
        """Read a pattern with ``#``, ``%0Nd``, ``$FN`` or ``@``; InputError when there is not exactly one token."""
        path = Path(text).expanduser()
        tokens = list(_TOKEN.finditer(path.name))
        if len(tokens) != 1 or _TOKEN.search(str(path.parent)):
            where = "in the folder part" if _TOKEN.search(str(path.parent)) else f"{len(tokens)} times"
            raise InputError(
                f"The frame pattern {text} must mark the frame number once in the file name "
                f"(as name.####.exr, name.%04d.png, name.$F4.png or name.@.png), not {where}."
            )
        m = tokens[0]
        if m.group(1):
            padding = len(m.group(1))
        elif m.group(5):
            padding = len(m.group(5))
        elif m.group(0).startswith("%"):
            if m.group(3) and not m.group(2) and int(m.group(3)) > 1:
                raise InputError(f"The frame pattern {text} pads with spaces (%{m.group(3)}d); use %0{m.group(3)}d.")
            padding = int(m.group(3) or 1)
        else:
            padding = int(m.group(4) or 1)
        return cls(path.parent, path.name[: m.start()], path.name[m.end() :], max(1, padding))

    @classmethod
    def from_frame_file(cls, path: str | Path) -> tuple["FramePattern", int] | None:
        """``name.1001.exr`` -> (the pattern ``name.####.exr``, 1001); None when the name holds no number."""
        path = Path(path)
        stem, suffix = (path.name[: -len(path.suffix)], path.suffix) if path.suffix else (path.name, "")
        m = _LAST_NUMBER.match(stem)
        if not m:
            return None
        prefix, digits, rest = m.group(1), m.group(2), m.group(3)
        if digits.startswith("-") and prefix and prefix[-1].isalnum():  # "shot-12": a separator, not a sign
            prefix, digits = prefix + "-", digits[1:]
        bare = digits.lstrip("-")
        padding = len(bare) if bare.startswith("0") or len(bare) >= 2 else 1
        return cls(path.parent, prefix, rest + suffix, padding), int(digits)

    def name(self, frame: int) -> str:
        return f"{self.prefix}{frame:0{self.padding}d}{self.suffix}"  # printf rule: a sign counts in the width

    def path(self, frame: int) -> Path:
        return self.folder / self.name(frame)

    def matches(self, name: str) -> int | None:
        """The frame number held by file ``name``, or None."""
        if not (name.startswith(self.prefix) and name.endswith(self.suffix)):
            return None
        middle = name[len(self.prefix) : len(name) - len(self.suffix) if self.suffix else None]
        m = re.fullmatch(r"-?(\d+)", middle)
        if m and (len(middle) == self.padding or (len(middle) > self.padding and not m.group(1).startswith("0"))):
            return int(middle)
        return None

    def scan(self) -> dict[int, Path]:
        """The frames on disk: {frame: path}."""
        if not self.folder.is_dir():
            return {}
        found = {}
        for entry in self.folder.iterdir():
            frame = self.matches(entry.name)
            if frame is not None and entry.is_file():
                found[frame] = entry
        return dict(sorted(found.items()))

    def __str__(self) -> str:
        return str(self.folder / f"{self.prefix}{'#' * self.padding}{self.suffix}")


def folder_pattern(folder: Path) -> FramePattern:
    """The numbered image sequence inside a folder (the largest group of same-named files)."""
    groups: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for entry in folder.iterdir():
        if entry.suffix.lower() not in IMAGE_SUFFIXES or entry.name.startswith(".") or not entry.is_file():
            continue
        found = FramePattern.from_frame_file(entry)
        if found is not None:
            pattern, _ = found
            digits = len(entry.name) - len(pattern.prefix) - len(pattern.suffix)
            groups.setdefault((pattern.prefix, pattern.suffix), []).append((entry.name, digits))
    if not groups:
        raise InputError(f"The folder {folder} holds no numbered image frames (such as name.1001.exr or 00000.jpg).")
    ranked = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    if len(ranked) > 1 and len(ranked[1][1]) == len(ranked[0][1]):
        names = " and ".join(f"{p}{'#' * min(d for _, d in v)}{s}" for (p, s), v in ranked[:2])
        raise InputError(f"The folder {folder} holds more than one frame sequence ({names}); name one with a pattern.")
    (prefix, suffix), members = ranked[0]
    return FramePattern(folder, prefix, suffix, min(d for _, d in members))


def sibling_padding(pattern: FramePattern) -> FramePattern:
    """The padding of a sequence known from one frame's name: the shortest number among its files."""
    p, s = pattern.prefix, pattern.suffix
    middles = (
        e.name[len(p) : len(e.name) - len(s)]
        for e in pattern.folder.iterdir()
        if len(e.name) > len(p) + len(s) and e.name.startswith(p) and e.name.endswith(s)
    )
    lengths = [len(m.lstrip("-")) for m in middles if m.lstrip("-").isdigit()]
    return FramePattern(pattern.folder, p, s, min(lengths, default=pattern.padding))
