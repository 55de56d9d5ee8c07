"""Roto runs for the tests: a RotoSpec with the plates' MODEL on the CPU, the command in a subprocess, kill -9 of it
once it has written some mattes, and the files an output folder holds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mattekit import roto
from plates import MODEL


def spec(plate: str, output: str, **kw) -> roto.RotoSpec:
    """A roto job of ``plate`` into ``output`` with MODEL on one CPU thread, radius 1 unless ``kw`` says."""
    kw.setdefault("radius", 1)
    return roto.RotoSpec(plate=plate, output=output, model=MODEL, device="cpu", threads=1, **kw)


def files_of(folder: Path) -> dict[str, bytes]:
    """{name: bytes} of the files in ``folder`` but the .json ones (manifest, journal)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.endswith(".json")}


def cli(*args, env=None, **kw) -> subprocess.Popen:
    """``mattekit roto ARGS`` started in a subprocess (text pipes for its output)."""
    return subprocess.Popen(
        [sys.executable, "-m", "mattekit", "roto", *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def kill_when_written(
    victim: subprocess.Popen, folder: Path, count: int, timeout: float = 240, names: str = "m.*.png"
) -> list[str]:
    """kill -9 the roto process ``victim`` once ``folder`` holds ``count`` mattes (``names``); their names."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(list(folder.glob(names))) < count:
        assert victim.poll() is None, victim.communicate()[1]
        time.sleep(0.01)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    return sorted(p.name for p in folder.glob(names))
