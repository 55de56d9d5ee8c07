"""Real bpy for the tests: the Python of a bpy venv (built by tests/hosts/blender/build_venv.py on first use, in
$MATTEKIT_CACHE), a model's weights added to the worker the add-on starts, and that worker stopped afterwards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BUILD_VENV = Path(__file__).resolve().parents[1] / "hosts" / "blender" / "build_venv.py"


def bpy_python(version: str) -> Path:
    """The Python of the bpy ``version`` venv (built on first use); fails, never skips, where none can be made."""
    result = subprocess.run([sys.executable, str(BUILD_VENV), version], capture_output=True, text=True, timeout=1800)
    if result.returncode == 77:  # no skip: a suite that passes with no Blender checked would lie
        pytest.fail(
            f"No Python for bpy {version}, so real Blender cannot be tested here: {result.stderr.strip()} "
            "(install Python 3.11 or set MATTEKIT_BPY_PYTHON to one).",
            pytrace=False,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return Path(result.stdout.strip().splitlines()[-1])


def shutdown_worker() -> None:
    """Stop the worker this process finds by its state file (the one the add-on started), if any."""
    from mattekit.wire import client

    worker = client.find_worker()
    if worker is not None:
        try:
            worker.shutdown()
        except client.WorkerError:
            pass


def add_derived(env: dict, model: str, path: Path) -> None:
    """``mattekit models add MODEL PATH --derived`` into the worker's MATTEKIT_HOME (the worker takes no weights path)."""
    added = subprocess.run(
        [sys.executable, "-m", "mattekit", "models", "add", model, str(path), "--derived"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert added.returncode == 0, added.stderr
