"""What a roto run tells its caller at the end (:class:`Summary`); progress events are :mod:`mattekit.progress`'s."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Summary:
    """What a run did: frames computed, frames found finished, seconds, and where it ran when that is not
    this process (``placement``, e.g. "on Ray: 2 worker(s), each 1 GPU and 8 CPU"; empty here)."""

    frames: list[int]
    computed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    seconds: float = 0.0
    placement: str = ""

    def merge(self, other: "Summary") -> None:
        self.computed += other.computed
        self.skipped += other.skipped
