"""The temporal filter as a pipeline stage (:class:`OrderedSmoother`): frames pushed in order, each wanted frame's
filtered matte handed on as soon as its window is in, on the CPU or on the model's device."""

from __future__ import annotations

import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from ..machine import cpu_count
from .temporal import FrameState, Smoother, TemporalOptions, prepare
from .temporal_device import DeviceSmoother

AHEAD_THREADS = 4  # at most this many threads make the filter's plate-only work ahead (DIS flows, agreements)


class OrderedSmoother:
    """The filter as a stage fed in frame order, for pipelines that compute per-frame mattes ahead.

    ``frames`` lists what to :meth:`push`, in that order: the ``wanted`` frames and the neighbours
    their windows need (warm-up). Each wanted frame's result goes to ``emit(frame, payload, alpha, shadow)``
    in increasing order as soon as the last frame of its window has been pushed: ``shadow``, the frame's shadow
    matte filtered along the same flows with the same weights when the frames pushed carry one, else None. With
    ``options`` None the mattes (and shadow mattes) pass through unchanged. Holds at most ``halo`` pushed frames beyond the last
    emitted one, plus the :class:`~mattekit.roto.temporal.Smoother`'s own window. ``device``: the torch device
    where the filter's full-resolution work runs (:class:`mattekit.roto.temporal_device.DeviceSmoother`), or None for
    the CPU's.
    What depends on the plates only (:meth:`~mattekit.roto.temporal.Smoother.ahead`) is made ahead for each pair
    of neighbours once both have been pushed, in ``ahead_threads`` threads (None: up to :data:`AHEAD_THREADS`, at most
    the cores; 0: made when the filter asks, in the pushing thread): the same bytes, made while the pushing thread
    filters earlier frames.
    """

    def __init__(
        self,
        options: TemporalOptions | None,
        have,
        wanted,
        emit: Callable[[int, object, np.ndarray, np.ndarray | None], None],
        device=None,
        ahead_threads: int | None = None,
    ):
        self.wanted = sorted(set(wanted))
        self.wanted_set = set(self.wanted)
        self.emit = emit
        self.smoother = (
            None
            if options is None
            else Smoother(options, self.ready_state, have)
            if device is None
            else DeviceSmoother(options, self.ready_state, have, device)
        )
        self.last = [self.smoother.window(t)[1] if self.smoother else t for t in self.wanted]
        needed: set[int] = set(self.wanted)
        if self.smoother:
            for t in self.wanted:
                low, high = self.smoother.window(t)
                needed.update(range(low, high + 1))
        self.frames = sorted(needed)
        self.ahead_at = self._ahead_schedule(needed) if self.smoother else {}
        self.ahead_threads = min(AHEAD_THREADS, cpu_count()) if ahead_threads is None else ahead_threads
        self.pool: ThreadPoolExecutor | None = None
        self.ready: dict[int, FrameState | tuple] = {}  # pushed, not yet taken by the filter
        self.payloads: dict[int, object] = {}
        self.pushed = 0
        self.emitted = 0

    def _ahead_schedule(self, needed: set[int]) -> dict[int, list[tuple[int, int]]]:
        """{frame: the pairs of frames whose plate-only work can start once it is pushed}: the pairs the passes use
        (each frame within ``radius * (passes - 1)`` of a wanted one, with each of its neighbours, all pushed), each
        at the later of its two frames, those the filter asks for first (towards the pushed frame) first."""
        reach = self.smoother.options.radius * (self.smoother.options.passes - 1)
        near = {f for t in self.wanted for f in range(t - reach, t + reach + 1)}
        schedule: dict[int, list[tuple[int, int]]] = {}
        for a in sorted(needed & near):
            others = self.smoother.neighbours(a)
            if set(others) <= needed:
                for b in others:
                    schedule.setdefault(max(a, b), []).append((a, b))
        for pairs in schedule.values():
            pairs.sort(key=lambda pair: pair[1] < pair[0])  # a -> the pushed frame before the pushed frame -> a
        return schedule

    @property
    def expects(self) -> int | None:
        """The frame the next :meth:`push` must bring (None: every frame has been pushed)."""
        return self.frames[self.pushed] if self.pushed < len(self.frames) else None

    @property
    def finished(self) -> bool:
        """Every wanted frame has been emitted."""
        return self.emitted == len(self.wanted)

    def ready_state(self, frame: int) -> FrameState:
        return self.ready.pop(frame)

    def keep(self, image: np.ndarray, alpha: np.ndarray, shadow: np.ndarray | None = None) -> FrameState | tuple:
        """What the filter keeps of one frame (:func:`~mattekit.roto.temporal.prepare`; (matte, shadow) without a
        filter); ``shadow``: its shadow matte (H x W [0,1]) to filter beside the matte, or None. It depends on that
        frame only, so it may be computed ahead, in any thread, and given to :meth:`push`."""
        return prepare(image, alpha, self.smoother.options, shadow) if self.smoother else (alpha, shadow)

    def push(
        self,
        frame: int,
        image: np.ndarray | None,
        alpha: np.ndarray,
        payload=None,
        kept: FrameState | tuple | None = None,
    ) -> None:
        """The next frame's sRGB plate (H x W x 3|4 [0,1]) and per-frame matte (H x W [0,1]), or
        ``kept``, what :meth:`keep` made of them already (with a shadow matte, if any); ``payload`` is handed to
        ``emit`` with the frame's result (wanted frames only)."""
        if frame != self.expects:
            raise ValueError(f"frame {frame} pushed where frame {self.expects} was expected")
        self.pushed += 1
        self.ready[frame] = kept if kept is not None else self.keep(image, alpha)
        if self.ahead_threads > 0:
            for a, b in self.ahead_at.pop(frame, ()):
                if self.pool is None:
                    self.pool = ThreadPoolExecutor(self.ahead_threads, thread_name_prefix="mattekit-flow")
                    weakref.finalize(self, self.pool.shutdown, wait=False)  # a run that stops short: no idle threads
                self.pool.submit(self.smoother.ahead, a, b)
        if payload is not None and frame in self.wanted_set:
            self.payloads[frame] = payload
        while self.emitted < len(self.wanted) and self.last[self.emitted] <= frame:
            t = self.wanted[self.emitted]
            alpha, shadow = self.smoother.smooth(t) if self.smoother else self.ready.pop(t)
            self.emitted += 1
            self.emit(t, self.payloads.pop(t, None), alpha, shadow)
        if self.finished and self.pool is not None:
            self.pool.shutdown(wait=False)
