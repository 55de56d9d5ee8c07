"""The habits a newcomer's editor expects, held by the test command (so CI's README command runs them): ruff's
linting and formatting on the whole repository and mypy on the packages pyproject.toml names ([tool.ruff],
[tool.mypy])."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def _tool(name: str, *arguments: str) -> subprocess.CompletedProcess:
    """``python -m NAME ARGUMENTS`` on the repository with its pyproject settings; skipped, with the reason, without
    it."""
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is in the dev extra: pip install -e '.[dev]'")
    return subprocess.run(
        [sys.executable, "-m", name, *arguments], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_passes_on_the_whole_repository():
    done = _tool("ruff", "check", ".")
    assert done.returncode == 0, f"ruff check . (pyproject's rules) finds:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"


def test_the_whole_repository_is_formatted():
    """``ruff format .`` (pyproject's [tool.ruff.format]) leaves every file as it is: run it before committing."""
    done = _tool("ruff", "format", "--check", ".")
    assert done.returncode == 0, f"ruff format --check . would reformat:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"


@pytest.mark.slow  # about 40 s on a shared 2-core machine without mypy's cache (.mypy_cache), 1 s with it
def test_mypy_passes_on_its_scope():
    done = _tool("mypy")
    assert done.returncode == 0, f"mypy (pyproject's files) finds:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"


def test_the_type_checkers_scope_is_the_one_the_design_names():
    """docs/design.md names each file and package mypy checks, so a reader knows which layers are typed."""
    scope = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["files"]
    design = (ROOT / "docs" / "design.md").read_text()
    unnamed = [path for path in scope if f"`{path.removeprefix('core/mattekit/')}`" not in design]
    assert not unnamed, f"docs/design.md's type-checking line does not name {unnamed}"
