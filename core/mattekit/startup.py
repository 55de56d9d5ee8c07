"""A command's start-up, decided in one place: Python's cyclic garbage collector paused while a task command starts
(its imports and its models' load) and its pause ended once, where the run begins or at the command's end.

- :func:`paused`: the one start, entered by :func:`mattekit.cli.run` (a command's own process, never a caller's);
- :func:`done`: the one end, called by :meth:`mattekit.running.runner.Runner.run` (nothing where no pause began).

Standard library only.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_pausing: list[bool] = []  # [True] while this process's start-up holds the collector off


@contextlib.contextmanager
def paused(pause: bool = True) -> Iterator[None]:
    """The collector off for the ``with`` block where ``pause`` and it was on; :func:`done` at the block's end at the
    latest. Importing torch makes about 280,000 objects the collector tracks, and its passes over them took 0.1 of
    torch's 0.9 s import here (Python 3.11, 2 cores). Only a task command pauses (``pause``): its run begins
    soon after its models load and ends the pause; any other (the worker, a bench, ``doctor``, roto)
    collects from its start, as it may run on for long without passing a task's run."""
    if pause and gc.isenabled():
        gc.disable()
        _pausing.append(True)
    try:
        yield
    finally:
        done()


def done() -> None:
    """The start-up is over: where :func:`paused` holds the collector off, everything alive now (the modules, the
    loaded models, start-up's few thousand unreachable cycles) is set aside for good (``gc.freeze``), so that later
    passes never traverse it, and collection goes on for what is made from now on. Elsewhere (no pause, or ended)
    nothing: a caller's own collector setting is left as it is."""
    if _pausing:
        _pausing.clear()
        gc.freeze()
        gc.enable()
