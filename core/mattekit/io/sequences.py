"""Frame sequences: frame patterns, frame ranges, folders of numbered frames and movie files.

A plate is named in one of these ways:

- a pattern, the frame number's place marked in the file name (never in the folder):
  ``name.####.exr`` (one ``#`` per digit, as Nuke and Blender), ``name.%04d.png`` (printf;
  ``%d`` unpadded), ``name.$F4.png`` (Houdini; ``$F`` unpadded), ``name.@@@@.png`` (one ``@``
  per digit, as RV; a single ``@`` is unpadded);
- one numbered frame of it, ``name.1001.exr``: the sequence it belongs to (the last run of
  digits in the name is the frame number);
- a folder: its numbered images (the largest group of files that differ only in their number);
- a movie file (``.mp4``, ``.mov``, ``.mkv`` ...), its frames numbered from 1 as Blender does.
  Movies are decoded with PyAV (``pip install mattekit[video]``): its wheels carry FFmpeg's
  libraries, so nothing else needs installing, and it decodes in-process to arrays with exact
  frame addressing (an ``ffmpeg`` pipe would need a separate binary and text-parsed metadata).

Frame ranges: ``1001-1100``, steps ``1001-1100x2`` (or ``1001-1100:2``), single frames and
lists of these: ``1001,1010-1020,1050``. Frames that a range names but the plate lacks are
reported (:class:`MissingFramesError`), never skipped silently.

Image frames are read by :func:`mattekit.io.read.read_plate`: the networks' sRGB (float32 in [0,1]) and
the values as stored in the plate's colour space (``--colorspace``, else the file's own); movie frames
are decoded to sRGB, or taken to be in ``--colorspace`` when it is given.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mattekit import colour
from mattekit.errors import InputError, OutputError
from mattekit.io.picture import Picture
from mattekit.io.read import plate_layout, read_plate

IMAGE_SUFFIXES = (".exr", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".dpx")
MOVIE_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mxf", ".mpg", ".mpeg", ".mts", ".gif")
_TOKEN = re.compile(r"(#+)|%(0?)(\d*)d|\$F(\d?)|(@+)")
_LAST_NUMBER = re.compile(r"^(.*?)(-?\d+)(\D*)$")


class MissingFramesError(InputError):
    """Frames a range asks for that the plate does not have; ``.missing`` lists them."""

    def __init__(self, message: str, missing: list[int]):
        super().__init__(message)
        self.missing = missing


# ----------------------------------------------------------------------------------- frame ranges

MAX_FRAMES = 1_000_000  # frames one request may name (11.6 hours at 24 fps): counted before any list is made


def parse_frames(text: str) -> list[int]:
    """``"1001-1100"``, ``"1-99x2"``, ``"1-99:2"``, ``"5"``, ``"1,4,10-12"`` -> sorted unique frames; a
    request naming more than :data:`MAX_FRAMES` is refused before it is expanded."""
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
        raise InputError(f"The frame range '{text}' names {count:,} frames, more than the {MAX_FRAMES:,} one job "
                         "takes; name the plate's frames (e.g. 1001-1100).")
    return sorted({frame for r in ranges for frame in r})


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
    return [frames[i:i + size] for i in range(0, len(frames), size)]


# ----------------------------------------------------------------------------------- patterns

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
            raise InputError(f"The frame pattern {text} must mark the frame number once in the file name "
                             f"(as name.####.exr, name.%04d.png, name.$F4.png or name.@.png), not {where}.")
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
        return cls(path.parent, path.name[:m.start()], path.name[m.end():], max(1, padding))

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
        middle = name[len(self.prefix): len(name) - len(self.suffix) if self.suffix else None]
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


def _folder_pattern(folder: Path) -> FramePattern:
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


def _sibling_padding(pattern: FramePattern) -> FramePattern:
    """The padding of a sequence known from one frame's name: the shortest number among its files."""
    p, s = pattern.prefix, pattern.suffix
    middles = (e.name[len(p):len(e.name) - len(s)] for e in pattern.folder.iterdir()
               if len(e.name) > len(p) + len(s) and e.name.startswith(p) and e.name.endswith(s))
    lengths = [len(m.lstrip("-")) for m in middles if m.lstrip("-").isdigit()]
    return FramePattern(pattern.folder, p, s, min(lengths, default=pattern.padding))


# ----------------------------------------------------------------------------------- plates

class ImageSequence:
    """Frames stored as numbered image files."""

    kind = "images"

    def __init__(self, pattern: FramePattern, colorspace: str | None = None, view: str | None = None):
        """``colorspace``: the OCIO colour space of every frame (None: each file's own); ``view``: the view of the
        sRGB display the networks see the frames through (None: the plain conversion); they and the OCIO config
        ($OCIO) are checked here, before any frame is read."""
        self.pattern = pattern
        colour.config()
        self.colorspace = colour.check_colorspace(colorspace) if colorspace else None
        self.view = colour.check_view(view) if view else None
        self.files = pattern.scan()
        if not self.files:
            where = "" if pattern.folder.is_dir() else f" (the folder {pattern.folder} does not exist)"
            raise InputError(f"No frames match {pattern}{where}.")

    @property
    def frames(self) -> list[int]:
        return list(self.files)

    def read(self, frame: int) -> Picture:
        path = self.files.get(frame)
        if path is None:
            raise InputError(f"Frame {frame} of {self.pattern} does not exist.")
        return read_plate(path, self.colorspace, self.view)

    def check_frames(self, frames: list[int]) -> None:
        """Read the headers of ``frames`` (no pixels): InputError (one sentence) for the first that is no image mattekit
        reads, or whose size differs from the first frame's, so that a hostile plate stops before any model loads."""
        first = None
        for frame in frames:
            layout = plate_layout(self.files[frame])
            if first is None:
                first = (frame, layout.width, layout.height)
            elif (layout.width, layout.height) != first[1:]:
                raise InputError(f"Frame {frame} of {self.pattern} is {layout.width}x{layout.height} but frame {first[0]} "
                                 f"is {first[1]}x{first[2]}: every frame of a shot must have one size.")

    def describe(self) -> str:
        return str(self.pattern)

    def close(self) -> None:
        pass


class Movie:
    """Frames of a movie file, numbered from 1, decoded with PyAV; reads are fastest in order."""

    kind = "movie"

    def __init__(self, path: str | Path, colorspace: str | None = None, view: str | None = None):
        """``colorspace``: the OCIO colour space of the decoded RGB (None: sRGB); ``view``: as for
        :class:`ImageSequence`."""
        try:
            import av
        except ImportError:
            raise InputError(f"Reading the movie {path} needs PyAV: pip install 'mattekit[video]' (or pip install av).") from None
        self.path = Path(path)
        self.colorspace = colorspace
        self.view = colour.check_view(view) if view else None
        self._av = av
        self._lock = threading.Lock()
        try:
            self._container = av.open(str(self.path))
            self._stream = self._container.streams.video[0]
        except (av.FFmpegError, IndexError, OSError) as exc:
            raise InputError(f"Cannot read the movie {self.path}: {_first_line(exc) if not isinstance(exc, IndexError) else 'it has no video stream'}.") from None
        self._stream.thread_type = "AUTO"
        self.fps = float(self._stream.average_rate or self._stream.guessed_rate or 24)
        self._start = self._stream.start_time or 0
        self._count = self._stream.frames or self._count_frames()
        if self._count <= 0:
            raise InputError(f"The movie {self.path} holds no video frames.")
        self._iter = None
        self._next = None  # the frame number the decoder will produce next

    def _count_frames(self) -> int:
        with self._av.open(str(self.path)) as probe:
            return sum(1 for p in probe.demux(probe.streams.video[0]) if p.size)

    @property
    def frames(self) -> list[int]:
        return list(range(1, self._count + 1))

    def _index(self, frame) -> int:
        """The 1-based frame number of a decoded frame, from its timestamp."""
        if frame.pts is None:
            return self._next
        return int(round(float((frame.pts - self._start) * self._stream.time_base) * self.fps)) + 1

    def _seek(self, number: int) -> None:
        """Position the decoder on the keyframe at or before frame ``number``."""
        target = self._start + int((number - 1) / self.fps / float(self._stream.time_base))
        self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        self._iter = self._container.decode(self._stream)
        self._next = None

    def read(self, number: int) -> Picture:
        if not 1 <= number <= self._count:
            raise InputError(f"Frame {number} is outside the movie {self.path} (frames 1-{self._count}).")
        with self._lock:
            if self._iter is None or self._next is None or not self._next <= number <= self._next + 2 * self.fps:
                self._seek(number)
            for attempt in range(2):
                try:
                    for decoded in self._iter:
                        index = self._index(decoded) if self._next is None else self._next
                        if index > number:  # the seek landed after the frame: decode from the start
                            break
                        self._next = index + 1
                        if index == number:
                            return self._picture(decoded, number)
                    else:
                        self._iter = None
                        raise InputError(f"The movie {self.path} ends before frame {number}.")
                except self._av.FFmpegError as exc:
                    self._iter = None
                    raise InputError(f"Cannot decode frame {number} of {self.path}: {_first_line(exc)}.") from None
                self._seek(1)
            self._iter = None
            raise InputError(f"Cannot find frame {number} in the movie {self.path} (its timestamps are irregular).")

    def _picture(self, decoded, number: int) -> Picture:
        deep = any(c.bits > 8 for c in decoded.format.components)
        data = decoded.to_ndarray(format="rgb48le" if deep else "rgb24")
        pixels = data.astype(np.float32) / (65535.0 if deep else 255.0)
        network = colour.to_network(pixels, self.colorspace or colour.NETWORK_SPACE, self.view) \
            if self.colorspace or self.view else pixels
        return Picture(network, 16 if deep else 8, f"{self.path}#{number}", False, "movie", decoded.format.name,
                       pixels, self.colorspace or colour.NETWORK_SPACE)

    def check_frames(self, frames: list[int]) -> None:
        """Nothing to check before decoding: a movie's frames share its one size."""

    def describe(self) -> str:
        return f"{self.path} ({self._count} frames at {self.fps:g} fps)"

    def close(self) -> None:
        with self._lock:
            self._container.close()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__).rstrip(".")


def open_plate(spec: str | Path, colorspace: str | None = None, view: str | None = None) -> ImageSequence | Movie:
    """A plate from a pattern, a numbered frame, a folder of frames or a movie file; ``colorspace``: the OCIO
    colour space of its frames (None: each image file's own; a movie's decoded RGB is sRGB); ``view``: the view
    of the sRGB display the networks see them through (None: the plain conversion, :mod:`mattekit.colour`)."""
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_file() and path.suffix.lower() in MOVIE_SUFFIXES:
        return Movie(path, colorspace, view)
    if path.is_dir():
        return ImageSequence(_folder_pattern(path), colorspace, view)
    if _TOKEN.search(path.name):
        return ImageSequence(FramePattern.parse(text), colorspace, view)
    if path.is_file():
        found = FramePattern.from_frame_file(path)
        if found is None or path.suffix.lower() not in IMAGE_SUFFIXES:
            raise InputError(f"{text} is neither a frame sequence nor a movie; name the frames as name.####.exr.")
        return ImageSequence(_sibling_padding(found[0]), colorspace, view)
    raise InputError(f"{text} does not exist (a plate is a frame pattern such as name.####.exr, a folder of frames or a movie).")


def select_frames(plate, frames: str | list[int] | None = None, *, skip_missing: bool = False) -> tuple[list[int], list[int]]:
    """(frames to process, frames missing) for a request; MissingFramesError unless ``skip_missing``.

    No request means every frame from the plate's first to its last: gaps inside are missing.
    """
    have = plate.frames
    wanted = parse_frames(frames) if isinstance(frames, str) else sorted(set(frames)) if frames else list(range(have[0], have[-1] + 1))
    present = set(have)
    chosen = [f for f in wanted if f in present]
    if not chosen:  # (before the missing ones: there are no others to process)
        raise InputError(f"None of the frames {_short(wanted)} exist in {plate.describe()} "
                         f"(it has frames {_short(have)}){'; fix --frames' if frames else ''}.")
    missing = [f for f in wanted if f not in present]
    if missing and not skip_missing:
        raise MissingFramesError(f"{len(missing)} frame(s) of {plate.describe()} are missing: {_short(missing)} "
                                 f"(use --skip-missing to process the others{', or fix --frames' if frames else ''}).",
                                 missing)
    return chosen, missing


def _short(frames: list[int], limit: int = 120) -> str:
    text = format_frames(frames)
    return text if len(text) <= limit else text[:limit].rsplit(",", 1)[0] + ", ..."


def output_pattern(spec: str | Path, plate, default_suffix: str = ".png") -> FramePattern:
    """Where results go: a pattern, or a folder (``<folder>/<plate name>.####.png``)."""
    text = str(spec)
    path = Path(text).expanduser()
    if _TOKEN.search(path.name):
        try:
            pattern = FramePattern.parse(text)
        except InputError as exc:
            raise OutputError(str(exc)) from None
        if pattern.suffix.lower() not in (".png", ".tif", ".tiff", ".exr"):
            raise OutputError(f"The output pattern {text} must end in .png, .tif or .exr (formats that hold 16-bit or float mattes).")
        return pattern
    if path.suffix.lower() in IMAGE_SUFFIXES + MOVIE_SUFFIXES and not path.is_dir():
        raise OutputError(f"The output {text} must be a frame pattern such as {path.stem}.####{path.suffix} or a folder.")
    if isinstance(plate, Movie):
        stem, padding = plate.path.stem, 4
    else:
        stem = plate.pattern.prefix.rstrip("._-") or plate.pattern.folder.name
        padding = max(plate.pattern.padding, 4) if plate.pattern.padding > 1 else 4
    return FramePattern(path, f"{stem}.", default_suffix, padding)
