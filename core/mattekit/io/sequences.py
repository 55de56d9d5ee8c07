"""Plates: frame sequences opened from what names them, the frames a request picks of them, and where
their results go.

A plate is named in one of these ways:

- a pattern, the frame number's place marked in the file name (:mod:`mattekit.io.frame_patterns`);
- one numbered frame of it, ``name.1001.exr``: the sequence it belongs to;
- a folder: its numbered images (the largest group of files that differ only in their number);
- a movie file (``.mp4``, ``.mov``, ``.mkv`` ...), its frames numbered from 1 (:mod:`mattekit.io.movie`).

Frames that a range (:mod:`mattekit.io.frame_ranges`) names but the plate lacks are reported
(:class:`MissingFramesError`), never skipped silently.

Image frames are read by :func:`mattekit.io.read.read_plate`: the networks' sRGB (float32 in [0,1]) and
the values as stored in the plate's colour space (``--colorspace``, else the file's own).
"""

from __future__ import annotations

from pathlib import Path

from . import colour
from mattekit.errors import InputError, OutputError
from mattekit.io.frame_patterns import IMAGE_SUFFIXES, FramePattern, folder_pattern, has_frame_token, sibling_padding
from mattekit.io.frame_ranges import format_frames, parse_frames
from mattekit.io.movie import MOVIE_SUFFIXES, Movie
from mattekit.io.picture import Picture
from mattekit.io.read import read_layout, read_plate


class MissingFramesError(InputError):
    """Frames a range asks for that the plate does not have; ``.missing`` lists them."""

    def __init__(self, message: str, missing: list[int]):
        super().__init__(message)
        self.missing = missing


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
        if self.colorspace:  # the files its config names are read now, not at the first frame
            colour.check_conversion(self.colorspace, self.view)
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
            layout = read_layout(self.files[frame])
            if first is None:
                first = (frame, layout.width, layout.height)
            elif (layout.width, layout.height) != first[1:]:
                raise InputError(
                    f"Frame {frame} of {self.pattern} is {layout.width}x{layout.height} but frame {first[0]} "
                    f"is {first[1]}x{first[2]}: every frame of a shot must have one size."
                )

    def describe(self) -> str:
        return str(self.pattern)

    def close(self) -> None:
        pass


def open_plate(spec: str | Path, colorspace: str | None = None, view: str | None = None) -> ImageSequence | Movie:
    """A plate from a pattern, a numbered frame, a folder of frames or a movie file; ``colorspace``: the OCIO
    colour space of its frames (None: each image file's own; a movie's decoded RGB is sRGB); ``view``: the view
    of the sRGB display the networks see them through (None: the plain conversion, :mod:`mattekit.io.colour`)."""
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_file() and path.suffix.lower() in MOVIE_SUFFIXES:
        return Movie(path, colorspace, view)
    if path.is_dir():
        return ImageSequence(folder_pattern(path), colorspace, view)
    if has_frame_token(path.name):
        return ImageSequence(FramePattern.parse(text), colorspace, view)
    if path.is_file():
        found = FramePattern.from_frame_file(path)
        if found is None or path.suffix.lower() not in IMAGE_SUFFIXES:
            raise InputError(f"{text} is neither a frame sequence nor a movie; name the frames as name.####.exr.")
        return ImageSequence(sibling_padding(found[0]), colorspace, view)
    raise InputError(
        f"{text} does not exist (a plate is a frame pattern such as name.####.exr, a folder of frames or a movie)."
    )


def select_frames(
    plate, frames: str | list[int] | None = None, *, skip_missing: bool = False
) -> tuple[list[int], list[int]]:
    """(frames to process, frames missing) for a request; MissingFramesError unless ``skip_missing``.

    No request means every frame from the plate's first to its last: gaps inside are missing.
    """
    have = plate.frames
    wanted = (
        parse_frames(frames)
        if isinstance(frames, str)
        else sorted(set(frames))
        if frames
        else list(range(have[0], have[-1] + 1))
    )
    present = set(have)
    chosen = [f for f in wanted if f in present]
    if not chosen:  # (before the missing ones: there are no others to process)
        raise InputError(
            f"None of the frames {_short(wanted)} exist in {plate.describe()} "
            f"(it has frames {_short(have)}){'; fix --frames' if frames else ''}."
        )
    missing = [f for f in wanted if f not in present]
    if missing and not skip_missing:
        raise MissingFramesError(
            f"{len(missing)} frame(s) of {plate.describe()} are missing: {_short(missing)} "
            f"(use --skip-missing to process the others{', or fix --frames' if frames else ''}).",
            missing,
        )
    return chosen, missing


def _short(frames: list[int], limit: int = 120) -> str:
    text = format_frames(frames)
    return text if len(text) <= limit else text[:limit].rsplit(",", 1)[0] + ", ..."


def output_pattern(spec: str | Path, plate, default_suffix: str = ".png") -> FramePattern:
    """Where results go: a pattern, or a folder (``<folder>/<plate name>.####.png``)."""
    text = str(spec)
    path = Path(text).expanduser()
    if has_frame_token(path.name):
        try:
            pattern = FramePattern.parse(text)
        except InputError as exc:
            raise OutputError(str(exc)) from None
        if pattern.suffix.lower() not in (".png", ".tif", ".tiff", ".exr"):
            raise OutputError(
                f"The output pattern {text} must end in .png, .tif or .exr (formats that hold 16-bit or float mattes)."
            )
        return pattern
    if path.suffix.lower() in IMAGE_SUFFIXES + MOVIE_SUFFIXES and not path.is_dir():
        raise OutputError(
            f"The output {text} must be a frame pattern such as {path.stem}.####{path.suffix} or a folder."
        )
    if isinstance(plate, Movie):
        stem, padding = plate.path.stem, 4
    else:
        stem = plate.pattern.prefix.rstrip("._-") or plate.pattern.folder.name
        padding = max(plate.pattern.padding, 4) if plate.pattern.padding > 1 else 4
    return FramePattern(path, f"{stem}.", default_suffix, padding)
