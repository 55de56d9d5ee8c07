"""Movie files as plates (:class:`Movie`): frames numbered from 1 as Blender does, decoded with PyAV
(``pip install mattekit[video]``), whose wheels carry FFmpeg's libraries: it decodes in-process to arrays
with exact frame addressing. Frames are decoded to sRGB, or taken to be in ``--colorspace`` when it is given.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from . import colour
from mattekit.errors import InputError
from mattekit.io.picture import Picture

MOVIE_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mxf", ".mpg", ".mpeg", ".mts", ".gif")


class Movie:
    """Frames of a movie file, numbered from 1, decoded with PyAV; reads are fastest in order."""

    kind = "movie"

    def __init__(self, path: str | Path, colorspace: str | None = None, view: str | None = None):
        """``colorspace``: the OCIO colour space of the decoded RGB (None: sRGB); ``view``: as for
        :class:`ImageSequence`."""
        try:
            import av
        except ImportError:
            raise InputError(
                f"Reading the movie {path} needs PyAV: pip install 'mattekit[video]' (or pip install av)."
            ) from None
        self.path = Path(path)
        self.colorspace = colorspace
        self.view = colour.check_view(view) if view else None
        if colorspace:  # the files its config names are read now, not at the first frame
            colour.check_conversion(colorspace, self.view)
        self._av = av
        self._lock = threading.Lock()
        try:
            self._container = av.open(str(self.path))
            self._stream = self._container.streams.video[0]
        except (av.FFmpegError, IndexError, OSError) as exc:
            raise InputError(
                f"Cannot read the movie {self.path}: {_first_line(exc) if not isinstance(exc, IndexError) else 'it has no video stream'}."
            ) from None
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
        network = (
            colour.to_network(pixels, self.colorspace or colour.NETWORK_SPACE, self.view)
            if self.colorspace or self.view
            else pixels
        )
        return Picture(
            network,
            16 if deep else 8,
            f"{self.path}#{number}",
            False,
            "movie",
            decoded.format.name,
            pixels,
            self.colorspace or colour.NETWORK_SPACE,
        )

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
