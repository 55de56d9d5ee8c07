"""Progress of long work, one concept for every job: events (:class:`Progress`), the reporter that makes them
(:class:`Reporter`) and their one display on standard error (:class:`Display`).

Folders of images, roto frames, the tiles of one large image and the benchmarks report through a Reporter;
the CLI shows the events with a Display (one bar on a terminal, plain lines elsewhere), the worker turns them
into ``progress(fraction, message)`` for GIMP's and Blender's own progress bars.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Progress:
    """One event: ``done`` (computed + skipped) of ``total`` units ("image", "frame", "tile") finished.

    item: the unit just finished (a file name, a frame number; None: none yet). elapsed: seconds since
    the reporter started. rate: computed units per second, measured from the first event (so that loading
    a model is not counted). eta: seconds left at that rate (None until there is a rate).
    """

    done: int
    total: int
    unit: str = "item"
    item: str | int | None = None
    computed: int = 0
    skipped: int = 0
    elapsed: float = 0.0
    rate: float = 0.0
    eta: float | None = None

    @property
    def fraction(self) -> float:
        """done / total in [0, 1] (1 when there is nothing to do)."""
        return min(self.done / self.total, 1.0) if self.total else 1.0

    @property
    def frame(self) -> str | int | None:
        """Roto's name for the item: the frame number just finished."""
        return self.item

    @property
    def fps(self) -> float:
        """Roto's name for the rate: computed frames per second."""
        return self.rate

    def message(self) -> str:
        """One line: 'frame 5 of 40 (1005), 1.20 frames/s, ETA 0:29'."""
        text = f"{self.unit} {self.done} of {self.total}" + ("" if self.item is None else f" ({self.item})")
        if self.rate > 0:
            text += f", {_rate(self.rate)} {self.unit}s/s"
        if self.eta is not None:
            text += f", ETA {clock(self.eta)}"
        return text + (f", {self.skipped} already done" if self.skipped else "")


def clock(seconds: float) -> str:
    """Seconds as 'm:ss' or 'h:mm:ss'."""
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def _rate(rate: float) -> str:
    return f"{rate:.2f}" if rate < 10 else f"{rate:.0f}"


class Reporter:
    """Makes :class:`Progress` events for ``callback`` (None: counts only) as units finish; thread-safe.

    total: units in all; unit: their name; skipped: units found done before the run (counted in ``done``,
    never in the rate); started: the monotonic time the work began (default: now).
    """

    def __init__(
        self,
        callback: Callable[[Progress], None] | None,
        total: int,
        unit: str,
        skipped: int = 0,
        started: float | None = None,
    ):
        self.callback, self.total, self.unit = callback, total, unit
        self.computed, self.skipped = 0, skipped
        self.started = time.monotonic() if started is None else started
        self.first: tuple[float, int] | None = None  # (time, computed) of the first event: the rate's origin
        self.lock = threading.Lock()

    def start(self) -> None:
        """The first event (nothing computed yet): the rate is measured from here."""
        self.set(self.computed)

    def __call__(self, item: str | int | None = None) -> None:
        """One more unit computed (``item``: its name), then an event."""
        with self.lock:
            self.computed += 1
            self._emit(item)

    def set(self, computed: int, skipped: int | None = None, total: int | None = None, item=None) -> None:
        """Counts told whole (work that counts itself: tiles, Ray chunks), then an event."""
        with self.lock:
            self.computed = computed
            self.skipped = self.skipped if skipped is None else skipped
            self.total = self.total if total is None else total
            self._emit(item)

    def steps(self, done: int, total: int) -> None:
        """``done`` of ``total`` computed: the ``progress(done, total)`` callback of tiling and of a task's steps."""
        self.set(done, total=total)

    def _emit(self, item) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = (now, self.computed)
        span, counted = now - self.first[0], self.computed - self.first[1]
        rate = counted / span if span > 0 and counted > 0 else 0.0
        done = self.computed + self.skipped
        eta = max(self.total - done, 0) / rate if rate > 0 else None
        if self.callback is not None:
            self.callback(
                Progress(done, self.total, self.unit, item, self.computed, self.skipped, now - self.started, rate, eta)
            )


class Display:
    """Progress events on standard error, the same for every job.

    On a terminal: one bar (tqdm), with the lines of :meth:`note` and of events given a ``text`` printed
    above it. Elsewhere (a pipe, a log file): plain lines only, never a bar or a carriage return: with
    ``lines``, one per event that names its item ('mattekit: [3/10] wrote a.png', or the event's message),
    without, only the notes. quiet: nothing at all (errors are printed by the caller). leave: the bar stays
    once closed. clock (seconds) and wait (an Event's wait: True once set, False after the seconds) time
    :meth:`ticking`; tests give their own.
    """

    def __init__(
        self,
        quiet: bool = False,
        lines: bool = True,
        leave: bool = True,
        stream=None,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[threading.Event, float], bool] = threading.Event.wait,
    ):
        self.stream = stream or sys.stderr
        self.clock, self.wait = clock, wait
        self.quiet, self.lines, self.leave = quiet, lines, leave
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.bar: Any = None  # a tqdm bar, made on the first event
        self.ticker: str | None = None  # the line :meth:`ticking` shows on a terminal, redrawn in place
        self.lock = threading.Lock()

    def __call__(self, event: Progress, text: str | None = None) -> None:
        """Show ``event``; ``text``: what its unit did ('wrote a.png'), printed with it."""
        if self.quiet:
            return
        with self.lock:
            if not self.tty:
                if self.lines and event.item is not None:  # a line per unit finished, none for a start
                    self._print(
                        f"mattekit: [{event.done}/{event.total}] {text}" if text else f"mattekit: {event.message()}"
                    )
                return
            if text:
                self._write(f"mattekit: {text}")
            self._draw(event)

    def note(self, text: str) -> None:
        """A line of its own ('mattekit: wrote a.png'), above the bar on a terminal."""
        if self.quiet:
            return
        with self.lock:
            self._write(f"mattekit: {text}")

    def warning(self, text: str) -> None:
        """'mattekit: warning: TEXT' on a line of its own, above the bar on a terminal; shown when quiet too, as
        mattekit's Python warnings are."""
        with self.lock:
            self._write(f"mattekit: warning: {text}")

    @contextmanager
    def ticking(self, doing: str, done: str | None = None, after: float = 0.0):
        """A step with no counts of its own (an ONNX export, one image computed whole) for a ``with`` block.

        On a terminal: once ``after`` seconds have passed, the line 'mattekit: DOING... 12 s', its seconds counted
        up in place, then erased. Elsewhere: 'mattekit: DOING...' once, when ``after`` seconds have passed (no
        carriage returns). Either way, if the line was shown and the block ends without an exception, ``done``
        (its '{time}' replaced by the seconds taken, '26 s') follows on a line of its own. A block that ends within
        ``after`` seconds shows nothing.
        """
        started, finished, shown = self.clock(), threading.Event(), threading.Event()

        def show() -> None:  # (under the lock)
            shown.set()
            if self.tty:
                self.ticker = _fit(f"mattekit: {doing}...", f" {self.clock() - started:.0f} s")
                self._redraw()
            else:
                self._print(f"mattekit: {doing}...")

        def tick() -> None:
            if not shown.is_set():
                if self.wait(finished, after):
                    return
                with self.lock:
                    if finished.is_set():
                        return
                    show()
            while self.tty and not self.wait(finished, 1.0):
                with self.lock:
                    show()

        if not self.quiet and after <= 0:
            with self.lock:
                show()
        thread = threading.Thread(target=tick, name="mattekit-ticker", daemon=True)
        if not self.quiet:
            thread.start()
        try:
            yield
        except BaseException:
            done = None
            raise
        finally:
            finished.set()
            if thread.is_alive():
                thread.join()
            with self.lock:
                if self.ticker is not None:
                    self.ticker = None
                    self.stream.write("\r\x1b[K")
                    self.stream.flush()
                if shown.is_set() and done:
                    self._print(f"mattekit: {done.replace('{time}', f'{self.clock() - started:.0f} s')}")

    def _redraw(self) -> None:
        """The ticker's line again, in place (the cursor stays at its end)."""
        self.stream.write("\r\x1b[K" + (self.ticker or ""))
        self.stream.flush()

    def close(self) -> None:
        """End the bar (a left one stays on screen)."""
        with self.lock:
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    def _draw(self, event: Progress) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=event.total,
                unit=event.unit,
                file=self.stream,
                leave=self.leave,
                disable=False,
                dynamic_ncols=True,
                bar_format="{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {unit}s [{elapsed}{postfix}]",
            )
        self.bar.total = event.total
        self.bar.n = event.done
        rate = f"{_rate(event.rate)} {event.unit}s/s" if event.rate > 0 else ""
        eta = "" if event.eta is None else f"ETA {clock(event.eta)}"
        self.bar.set_postfix_str(", ".join(part for part in (rate, eta) if part), refresh=True)

    def _write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        elif self.ticker is not None:  # above the ticker's line, which is drawn again below it
            self.stream.write("\r\x1b[K")
            self._print(line)
            self._redraw()
        else:
            self._print(line)

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


def _fit(text: str, tail: str) -> str:
    """``text`` + ``tail`` within the terminal's width (``text`` cut short with '...'): a line redrawn in place must
    not wrap, or each redraw leaves a row behind."""
    import shutil

    room = shutil.get_terminal_size((80, 24)).columns - 1 - len(tail)
    return (text if len(text) <= room else text[: max(room - 3, 0)] + "...") + tail


@contextmanager
def shown(total: int, unit: str, quiet: bool = False, lines: bool = True):
    """A :class:`Reporter` of ``total`` units (``unit``) shown by a new :class:`Display` for a ``with`` block (the bar
    closed at its end). ``lines``: a line per unit off a terminal and a bar that stays; without (the tiles of
    one image, their total told by the first step): no lines, no start event, a bar that goes when done."""
    display = Display(quiet=quiet, lines=lines, leave=lines)
    report = Reporter(display, total, unit)
    if lines:
        report.start()
    try:
        yield report
    finally:
        display.close()
