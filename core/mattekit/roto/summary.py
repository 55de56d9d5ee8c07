"""What a roto run tells its caller at the end (:class:`Summary`), and its cancellation (progress events are
:mod:`mattekit.progress`'s)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import MattekitError


class Cancelled(MattekitError):
    """The job was cancelled; finished frames stay and a re-run resumes."""

    exit_code = 130


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

