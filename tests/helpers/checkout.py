"""This checkout as the tests run it: its install/ scripts as modules, an interpreter that imports its mattekit, and a
folder's exact contents (to show that a run changed nothing)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GIMP_PLUGIN = ROOT / "gimp_plugin" / "mattekit_gimp"  # the GIMP plug-in's folder: mattekit_gimp.py and its modules


def gimp_plugin_modules() -> list[str]:
    """The names the GIMP plug-in's files import as (its folder on sys.path): the entry file's and its siblings'."""
    return sorted(path.stem for path in GIMP_PLUGIN.glob("*.py"))


def install_module(name: str = "install_gimp"):
    """install/NAME.py as a module (install/ on sys.path, as when it runs as a script)."""
    folder = str(ROOT / "install")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, ROOT / "install" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def this_python(folder: Path) -> str:
    """An interpreter, a script written in ``folder``, that imports this checkout's mattekit (the client clears
    PYTHONPATH for the worker)."""
    wrapper = folder / "python"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={ROOT / "core"} exec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def snapshot(folder: Path) -> dict:
    """Every path under ``folder`` with its mode and (for files) content."""
    return {
        str(p.relative_to(folder)): (p.stat().st_mode, p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }
