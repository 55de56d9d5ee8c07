"""What a roto run tells its caller: progress events, the summary at the end, cancellation."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..errors import MattekitError


class Cancelled(MattekitError):
    """The job was cancelled; finished frames stay and a re-run resumes."""

    exit_code = 130


@dataclass
class Progress:
    """One progress event: frames finished (computed or verified) of ``total``."""

    done: int
    total: int
    frame: int | None
    computed: int
    skipped: int
    elapsed: float
    fps: float  # computed frames per second
    eta: float | None  # seconds left

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    def message(self) -> str:
        eta = "" if self.eta is None else f", ETA {_clock(self.eta)}"
        at = "" if self.frame is None else f"frame {self.frame}, "
        return f"{at}{self.done}/{self.total} frames, {self.fps:.2f} frames/s{eta}"


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class Summary:
    """What a run did: frames computed, frames found finished, seconds."""

    frames: list[int]
    computed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def merge(self, other: "Summary") -> None:
        self.computed += other.computed
        self.skipped += other.skipped



class Reporter:
    """Turns frame completions into Progress events (frames/s over computed frames only)."""

    def __init__(self, callback, total: int, skipped: int, started: float):
        self.callback, self.total, self.skipped, self.started = callback, total, skipped, started
        self.computed = 0
        self.first: float | None = None

    def __call__(self, frame: int | None) -> None:
        """One more frame computed (None: just report)."""
        if frame is not None:
            self.computed += 1
        self.emit(frame)

    def emit(self, frame: int | None) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = now  # frames/s from the first report on: model loading is not a frame's cost
        if self.callback is None:
            return
        span = now - self.first
        fps = self.computed / span if span > 0 and self.computed else 0.0
        left = self.total - self.skipped - self.computed
        eta = left / fps if fps > 0 else None
        self.callback(Progress(self.skipped + self.computed, self.total, frame, self.computed, self.skipped,
                               now - self.started, fps, eta))
