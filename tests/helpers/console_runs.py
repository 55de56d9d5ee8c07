"""The real console entry point in a subprocess for the tests of a command's end (tests/unit/tasks/test_remove*.py):
its exit code and standard error, and the one error sentence there."""

from __future__ import annotations

import os
import subprocess
import sys


def run_cli(*args, env=None):
    """The real console entry point in a subprocess: exit code and stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "mattekit", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
    return proc.returncode, proc.stderr.strip()


def one_sentence(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("mattekit: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]
