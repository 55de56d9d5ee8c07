"""What a roto run tells its caller at the end (:class:`Summary`); progress events are :mod:`mattekit.progress`'s."""
from __future__ import annotations

from dataclasses import dataclass, field


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

