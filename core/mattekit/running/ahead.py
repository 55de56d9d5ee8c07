"""A run's first inputs decoded on a thread of their own while its models load (torch's import: about a second here,
2-5 s with CUDA), so that the load and the host's first work overlap.

A run of several inputs forks its writing processes (:mod:`mattekit.running.processes`) once the models are loaded,
and no thread may be alive at that fork: the run's layout (:meth:`mattekit.running.layout.RunLayout.started`) calls
:meth:`ReadAhead.stop` first, which lets the photo being decoded finish and joins the thread; the pipeline's readers then take the pictures decoded ahead and decode the
others themselves. That thread never starts the tile pool (:func:`mattekit.ops.regions.tiles_inline`), whose
threads would outlive it. A run of one input forks nothing: its reader waits for the one picture.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path

from .. import io
from ..machine import usable_ram
from ..ops.regions import tiles_inline

# bytes: decoding ahead stops once its pictures' pixels hold this much memory (or an eighth of the usable RAM)
HELD = 512 << 20


class ReadAhead:
    """The inputs of ``todo`` (their files, in the run's order) decoded in order by :func:`mattekit.io.read_image`
    (``integers`` as the task's image port says; ``data``: {an input that is no file: (its bytes, its name)}) on a
    daemon thread from now on, until :meth:`stop`, the end of ``todo`` or :data:`HELD` bytes of pixels (an eighth of
    the usable RAM where that is less)."""

    def __init__(self, todo: list[Path], integers: bool, data: dict | None = None):
        self.todo, self.integers, self.data = list(todo), integers, data or {}
        self.decoded: dict[Path, Future] = {}  # {input: its picture, or its decoding's exception}
        self.halt, self.lock = threading.Event(), threading.Lock()
        self.thread = threading.Thread(target=self._decode, name="mattekit-read-ahead", daemon=True)
        self.thread.start()

    def _decode(self) -> None:
        if len(self.todo) > 1:  # a fork follows: no pool thread may outlive this one
            tiles_inline()
        held, most = 0, min(HELD, usable_ram() // 8)
        for source in self.todo:
            with self.lock:
                if self.halt.is_set() or held >= most:
                    return
                future = self.decoded[source] = Future()
            given, name = self.data.get(source, (source, None))
            try:
                picture = io.read_image(given, integers=self.integers, name=name)
            except BaseException as exc:  # noqa: BLE001 - the input's own failure, raised where it is taken
                future.set_exception(exc)
            else:
                future.set_result(picture)
                held += picture.pixels.nbytes

    def take(self, source: Path):
        """The picture of ``source`` decoded ahead (waiting for it while it is being decoded; the exception its
        decoding raised, raised here), or None where it was not decoded ahead."""
        if self.thread.is_alive() and len(self.todo) == 1:
            self.thread.join()  # (one input: its decoding has begun)
        with self.lock:
            future = self.decoded.pop(source, None)
        return None if future is None else future.result()

    def stop(self) -> None:
        """No further input begun; the one being decoded finished and the thread joined (before a fork)."""
        self.halt.set()
        self.thread.join()
