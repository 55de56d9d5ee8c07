"""The journeys' runs of mattekit in subprocesses under an address-space cap (RLIMIT_AS, as ``ulimit -v``): the CLI task
with its offline model, the child's environment (the shared mirror, offline, its own home), its own peak RSS, a hang
told by a timeout, and what its stderr says (one ``mattekit: error:`` line, no traceback, no other noise)."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


CAP = 6 << 30  # bytes of address space every subprocess may map


TIMEOUT = 240  # seconds one run may take before it counts as a hang


ANIMEVIDEO = "realesr-animevideov3.pth"


TASK_ARGS = {  # every CLI task with an offline model (depth has no weights in the shared folder)
    "remove": ["--model", "csnet-sod"],
    "matte": ["--model", "csnet-sod"],
    "upscale": ["--model", "realesr-animevideov3", "--weights", "{weights}/" + ANIMEVIDEO],
    "bokeh": ["--mask-only", "--segment-model", "csnet-sod"],
    "enhance": [],
    "mask-preview": ["--model", "csnet-sod"],
}


@dataclass
class Run:
    returncode: int
    stderr: str
    seconds: float
    peak_kb: int  # the child's maximum RSS
    hung: bool


def _cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


def run_capped(argv: list[str], env: dict, timeout: float = TIMEOUT) -> Run:
    """Run ``argv`` under the address-space cap; its own peak RSS comes from wait4."""
    with tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env, preexec_fn=_cap)
        hung = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                hung = True
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    return Run(proc.returncode, text, time.monotonic() - start, usage.ru_maxrss, hung)


def _env(shared: Path, home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATTEKIT_")}
    repo_core = str(Path(__file__).resolve().parents[2] / "core")
    env.update(
        MATTEKIT_MIRROR=str(shared / "weights"),
        MATTEKIT_OFFLINE="1",
        MATTEKIT_HOME=str(home),
        OMP_NUM_THREADS="1",
        PYTHONPATH=repo_core + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return env


def _mattekit(task: str, shared: Path) -> list[str]:
    return [sys.executable, "-m", "mattekit", task] + [a.format(weights=shared / "weights") for a in TASK_ARGS[task]]


def lines(stderr: str) -> list[str]:
    """stderr's lines, progress-bar redraws (carriage returns) split off."""
    return [line for line in re.split(r"[\r\n]+", stderr) if line.strip()]


def noise(stderr: str) -> list[str]:
    """Lines that are not mattekit's own (tracebacks, library messages, warnings with source paths)."""
    return [
        line for line in lines(stderr) if not line.startswith("mattekit: ") and not re.match(r"^\s*\d+%\|", line)
    ]  # the progress bar of folder runs


def check_single(run: Run, out: Path, valid: bool, what: str) -> str:
    """'ok' or 'error' for one file's run; fails the test on a hang, traceback, noise or a wrong outcome."""
    assert not run.hung, f"{what}: no answer after {TIMEOUT} s"
    assert "Traceback" not in run.stderr and not noise(run.stderr), f"{what}:\n{run.stderr}"
    errors = [line for line in lines(run.stderr) if line.startswith("mattekit: error:")]
    if run.returncode == 0:
        assert not errors and out.is_file(), f"{what}: exit 0 but {run.stderr!r}"
        assert valid, f"{what}: an invalid input was accepted"
        return "ok"
    assert run.returncode == 2 and len(errors) == 1 and errors[0].endswith("."), (
        f"{what}: exit {run.returncode}:\n{run.stderr}"
    )
    assert not valid, f"{what}: a valid image failed: {errors[0]}"
    assert not out.exists()
    return "error"
