"""What held at each fork of this process: a test's check, run in the forking thread just before every fork
(os.register_at_fork) while the test watches."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Callable, Iterator

_watching: list[tuple[Callable, list]] = []


def _before_fork() -> None:
    for check, seen in list(_watching):
        seen.append(check())


os.register_at_fork(before=_before_fork)  # once: this module is imported once per process


@contextmanager
def at_forks(check: Callable) -> Iterator[list]:
    """A list that gets ``check()``'s answer at each fork of this process made inside the block."""
    watch: tuple[Callable, list] = (check, [])
    _watching.append(watch)
    try:
        yield watch[1]
    finally:
        _watching.remove(watch)
