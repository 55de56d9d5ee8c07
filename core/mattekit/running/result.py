"""What a pipeline run did: :class:`Result`, with its per-stage :class:`Timings`."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


class Timings:
    """Wall-clock seconds per named stage, summed over threads (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def add(self, name: str, seconds: float, calls: int = 1) -> None:
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            self.calls[name] = self.calls.get(name, 0) + calls

    @contextmanager
    def measure(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)


@dataclass
class Result:
    """What a run did: items done, items failed with their exception (a one-sentence MattekitError, or what a
    runner kept of the item's own failure), items skipped before it ran (their output existed), whether it was
    cancelled, wall seconds and per-stage timings."""

    done: int = 0
    failed: list[tuple[Any, BaseException]] = field(default_factory=list)
    skipped: int = 0
    cancelled: bool = False
    seconds: float = 0.0
    timings: Timings = field(default_factory=Timings)
