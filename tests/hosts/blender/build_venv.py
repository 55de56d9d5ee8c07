#!/usr/bin/env python3
"""Build (once) a virtual environment holding Blender as a Python module (``bpy`` from PyPI).

    python3 tests/hosts/blender/build_venv.py 4.5.15 [5.0.1 ...]   -> prints each venv's python, one per line

Each bpy version gets its own venv (bpy pins numpy<2) under ``$MATTEKIT_CACHE`` (default
``~/.cache/mattekit-ci``), outside the repository, as ``bpy-<version>/``. A completion marker
written last (``bpy-<version>.complete``, holding the recipe) says the venv is whole; a venv
without it (an interrupted build) is removed and rebuilt. A lock serialises concurrent builds.

bpy wheels are built for one Python minor version (3.11 for 4.5 and 5.0): the interpreter
comes from ``$MATTEKIT_BPY_PYTHON``, else ``python3.11`` on PATH, else this interpreter if it
is 3.11. Exit status 77 when none is found (the caller skips).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

PYTHON_FOR = {"4.5": "3.11", "5.0": "3.11"}


def cache_dir() -> Path:
    return Path(os.environ.get("MATTEKIT_CACHE") or Path.home() / ".cache" / "mattekit-ci").expanduser()


def find_python(minor: str) -> str | None:
    """An interpreter of Python ``minor`` (e.g. "3.11") that can create venvs."""
    candidates = [os.environ.get("MATTEKIT_BPY_PYTHON"), shutil.which(f"python{minor}")]
    if f"{sys.version_info.major}.{sys.version_info.minor}" == minor:
        candidates.append(sys.executable)
    for exe in filter(None, candidates):
        probe = subprocess.run(
            [exe, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
        )
        if probe.returncode == 0 and probe.stdout.strip() == minor:
            return exe
    return None


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def build(version: str) -> Path:
    """The python of a venv with bpy==``version`` (built when missing or incomplete)."""
    minor = PYTHON_FOR.get(".".join(version.split(".")[:2]), "3.11")
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    venv = cache / f"bpy-{version}"
    marker = cache / f"bpy-{version}.complete"
    recipe = f"python{minor} venv; pip install bpy=={version}"
    with open(cache / f"bpy-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text() == recipe and venv_python(venv).is_file():
            return venv_python(venv)
        python = find_python(minor)
        if python is None:
            print(f"build_venv: no Python {minor} found for bpy {version} (set MATTEKIT_BPY_PYTHON)", file=sys.stderr)
            raise SystemExit(77)
        marker.unlink(missing_ok=True)
        if venv.exists():
            print(f"build_venv: removing an incomplete venv at {venv}", file=sys.stderr)
            shutil.rmtree(venv)
        print(f"build_venv: creating {venv} with bpy=={version} (about a minute)", file=sys.stderr)
        subprocess.run([python, "-m", "venv", str(venv)], check=True, stdout=sys.stderr)
        pip = [str(venv_python(venv)), "-m", "pip", "--disable-pip-version-check", "--no-input"]
        subprocess.run(pip + ["install", "-q", f"bpy=={version}"], check=True, stdout=sys.stderr)
        subprocess.run(
            [str(venv_python(venv)), "-c", "import bpy; print('bpy', bpy.app.version_string)"],
            check=True,
            stdout=sys.stderr,
        )
        marker.write_text(recipe)
        return venv_python(venv)


def main(argv: list[str]) -> int:
    versions = argv or ["4.5.15", "5.0.1"]
    for version in versions:
        print(build(version))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
