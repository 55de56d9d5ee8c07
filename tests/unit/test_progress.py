"""Progress of long work (mattekit.progress): events with rate and ETA, one bar on a terminal, plain lines off it,
the same events in a folder run, roto frames and the worker's messages for GIMP and Blender."""

from __future__ import annotations

import fcntl
import io
import os
import re
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mattekit import roto
from mattekit.wire.client import Pixels
from mattekit.progress import Display, Progress, Reporter, clock
from plates import make_plate
from roto_runs import spec

BAR = ("\r", "█", "%|")  # what a drawn bar leaves in its stream


def _terminal():
    """(master fd, a text stream on the slave side of a pseudo-terminal 100 columns wide)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    return master, slave


def _drain(master: int) -> str:
    out = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the slave side closed
            break
        if not data:
            break
        out += data
    os.close(master)
    return out.decode()


def test_events_count_computed_and_skipped_units_with_a_rate_from_the_first_event():
    events = []
    report = Reporter(events.append, 5, "frame", skipped=2)
    report.start()
    time.sleep(0.02)
    report(1003)
    report(1004)
    first, last = events[0], events[-1]
    assert (first.done, first.computed, first.rate, first.eta, first.item) == (2, 0, 0.0, None, None)
    assert (last.done, last.total, last.computed, last.skipped, last.item) == (4, 5, 2, 2, 1004)
    assert last.fraction == 0.8 and last.rate > 0 and last.eta == pytest.approx(1 / last.rate)
    assert (last.frame, last.fps) == (last.item, last.rate)  # roto's names
    message = last.message()
    assert message.startswith("frame 4 of 5 (1004), ") and " frames/s, ETA 0:0" in message
    assert message.endswith(", 2 already done")


def test_work_that_counts_itself_reports_its_steps():
    events = []
    tiles = Reporter(events.append, 0, "tile")
    for done in (1, 2, 3):
        tiles.steps(done, 12)
    assert [(e.done, e.total) for e in events] == [(1, 12), (2, 12), (3, 12)]
    assert events[0].rate == 0.0 and events[0].message() == "tile 1 of 12"
    assert Progress(0, 0, "tile").fraction == 1.0 and clock(29) == "0:29" and clock(3725) == "1:02:05"


def test_off_a_terminal_one_plain_line_per_unit_and_never_a_bar():
    stream = io.StringIO()
    display = Display(stream=stream)
    report = Reporter(display, 3, "frame")
    report.start()  # a start names no unit: no line
    report(1001)
    display.note("wrote a.png")
    report(1002)
    display(Progress(3, 3, "image", "c.png"), "wrote c.png")
    display.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("mattekit: frame 1 of 3 (1001)") and lines[1] == "mattekit: wrote a.png"
    assert lines[2].startswith("mattekit: frame 2 of 3 (1002)") and lines[3] == "mattekit: [3/3] wrote c.png"
    assert len(lines) == 4 and not any(mark in stream.getvalue() for mark in BAR)
    tiles, quiet = io.StringIO(), io.StringIO()
    Reporter(Display(stream=tiles, lines=False), 0, "tile").steps(1, 4)  # tiles off a terminal: no line
    Display(stream=quiet, quiet=True)(Progress(1, 2, "image", "a.png"), "wrote a.png")
    assert tiles.getvalue() == "" and quiet.getvalue() == ""


def test_on_a_terminal_one_bar_with_the_lines_above_it():
    master, slave = _terminal()
    with os.fdopen(slave, "w") as stream:
        display = Display(stream=stream)
        assert display.tty
        report = Reporter(display, 4, "image")
        report.start()
        time.sleep(0.02)
        report("a.png")
        display(Progress(2, 4, "image", "b.png", 2), "wrote b.png")
        display.close()
    shown = _drain(master)
    assert "mattekit: wrote b.png" in shown and "\r" in shown and "█" in shown
    assert "2/4 images" in shown and "images/s" in shown and "ETA" in shown


class _Clock:
    """The ticker's time, moved by the test, never the wall clock's: each wait of the ticker's that finds ``ticks``
    left passes its seconds at once; with none left it says so (``idle``) and waits for the block to end."""

    def __init__(self, ticks: int = 0):
        self.now, self.ticks, self.idle = 0.0, ticks, threading.Event()

    def __call__(self) -> float:
        return self.now

    def wait(self, finished: threading.Event, seconds: float) -> bool:
        if self.ticks > 0:
            self.ticks -= 1
            self.now += seconds
            return False
        self.idle.set()
        return finished.wait()


class _Written(io.StringIO):
    """A text stream that says when something was written to it."""

    def __init__(self):
        super().__init__()
        self.written = threading.Event()

    def write(self, text: str) -> int:
        self.written.set()
        return super().write(text)


def test_a_step_without_counts_shows_a_line_before_and_its_time_after_but_no_carriage_returns_off_a_terminal():
    """A step without counts (an ONNX export, ~31 s), off a terminal: one line as it starts, one with its
    time as it ends, no carriage return; a step that ends within ``after`` seconds shows nothing; quiet: nothing.
    The clock is the test's: no race with the ticker's thread."""
    stream, clock = io.StringIO(), _Clock()
    with Display(stream=stream, clock=clock, wait=clock.wait).ticking(
        "exporting m to ONNX once", done="exported m to ONNX in {time}."
    ):
        clock.now = 31.4
    assert stream.getvalue() == "mattekit: exporting m to ONNX once...\nmattekit: exported m to ONNX in 31 s.\n"
    late, clock = _Written(), _Clock(ticks=1)  # the ticker's 0.3 s pass
    with Display(stream=late, clock=clock, wait=clock.wait).ticking("working on a.png", after=0.3):
        assert late.written.wait(60)  # the ticker's line, whenever its thread runs
    clock = _Clock()  # no time passes: the block ends within its 5 s
    with Display(stream=late, clock=clock, wait=clock.wait).ticking("working on b.png", after=5):
        assert clock.idle.wait(60)
    with Display(stream=late, quiet=True).ticking("working on c.png"):
        pass
    assert late.getvalue() == "mattekit: working on a.png...\n"


def test_on_a_terminal_the_step_counts_its_seconds_in_place_and_leaves_its_time():
    """Item 15 on a terminal: one line redrawn in place each second (cut to the terminal's width, so that it never
    wraps), a warning printed above it, then erased; the time taken on a line of its own. Two seconds pass on the
    test's clock, not the wall's."""
    master, slave = _terminal()
    clock = _Clock(ticks=2)
    with os.fdopen(slave, "w") as stream:
        display = Display(stream=stream, clock=clock, wait=clock.wait)
        with display.ticking("exporting " + "m" * 200 + " to ONNX once", done="exported m to ONNX in {time}."):
            assert clock.idle.wait(60)  # drawn at 0, 1 and 2 s
            display.warning("a.png: a note")
    shown = _drain(master)
    drawn = [part.removeprefix("\x1b[K") for part in shown.split("\r") if part.startswith("\x1b[Kmattekit: exporting")]
    assert [line.rsplit("... ", 1)[1] for line in drawn] == ["0 s", "1 s", "2 s", "2 s"], (
        drawn
    )  # the last: the warning's
    assert all(len(line) <= 99 for line in drawn) and "mattekit: warning: a.png: a note" in shown
    assert re.search(r"\r\x1b\[Kmattekit: exported m to ONNX in 2 s\.\r\n$", shown), shown[-200:]


def _photos(folder: Path, count: int) -> None:
    folder.mkdir()
    for i in range(count):
        pixels = (np.random.default_rng(i).random((40, 50, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"p{i}.png")


@pytest.mark.slow
def test_a_folder_run_shows_a_line_per_file_in_a_pipe_and_a_bar_on_a_terminal(shared, tmp_path):
    _photos(tmp_path / "in", 3)
    env = dict(
        os.environ,
        MATTEKIT_MIRROR=str(shared / "weights"),
        MATTEKIT_OFFLINE="1",
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(Path(__file__).resolve().parents[2] / "core"),
    )
    command = [sys.executable, "-m", "mattekit", "remove", str(tmp_path / "in"), "--model", "u2netp", "-o"]
    piped = subprocess.run(command + [str(tmp_path / "piped")], env=env, capture_output=True, text=True, timeout=300)
    assert piped.returncode == 0, piped.stderr
    lines = [line for line in piped.stderr.splitlines() if " to ONNX " not in line]  # (u2netp's export, when first)
    assert sorted(line.split("] ")[0] for line in lines) == ["mattekit: [1/3", "mattekit: [2/3", "mattekit: [3/3"]
    assert sorted(line.split(" wrote ")[1] for line in lines) == [
        str(tmp_path / "piped" / f"p{i}.png") for i in range(3)
    ]
    assert not any(mark in piped.stderr for mark in BAR)
    master, slave = _terminal()
    shown = subprocess.run(
        command + [str(tmp_path / "shown")], env=env, stderr=slave, stdout=subprocess.DEVNULL, timeout=300
    )
    os.close(slave)
    seen = _drain(master)
    assert shown.returncode == 0 and "3/3 images" in seen and "█" in seen and "\r" in seen, seen
    assert seen.count("mattekit: wrote ") == 3 and "[1/3]" not in seen  # the bar counts; lines name the files


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_the_worker_names_tiles_and_their_count_while_upscaling(make_worker, mirror):
    _, worker = make_worker()
    rgb = np.random.default_rng(0).integers(0, 256, (150, 140, 3), dtype=np.uint8)
    seen = []
    (out,) = worker.run(
        "upscale",
        [Pixels(rgb.tobytes(), 140, 150, 3, "u8")],
        {"model": "rfdn-x4", "scale": 2.0, "tile": 64},
        progress=lambda fraction, message: seen.append((fraction, message)),
        poll=0.01,
    )
    assert (out.width, out.height) == (280, 300)
    tiles = [message for _, message in seen if message.startswith("tile ")]
    assert tiles, seen
    total = int(tiles[-1].split(" of ")[1].split(",")[0].split(" ")[0])
    assert total > 1 and all(" of " in m for m in tiles)
    fractions = [fraction for fraction, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_the_worker_roto_operation_names_each_frame_its_count_rate_and_eta(shared, mirror, tmp_path):
    plate = make_plate(shared, tmp_path / "plate", 3, size=(64, 36))
    seen = []
    options = spec(plate, str(tmp_path / "out" / "m.####.png"), temporal=False).to_dict()
    roto.run_operation(options, lambda fraction, message: seen.append((fraction, message)))  # what the worker runs
    frames = [message for _, message in seen if message.startswith("frame ")]
    assert [m.split(" (")[0] for m in frames] == ["frame 0 of 3", "frame 1 of 3", "frame 2 of 3", "frame 3 of 3"]
    assert frames[1].startswith("frame 1 of 3 (1001), ") and "frames/s, ETA 0:" in frames[1]
    assert [f for f, _ in seen] == sorted(f for f, _ in seen) and seen[-1][0] == 1.0
