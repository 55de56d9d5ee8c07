"""The tests' own layout as docs/usage.md describes it: folders by what they cover, nothing at the root of tests/ but
conftest.py, no module of the tests over 400 lines (the core's cap), and test counts left to pytest, not typed into the pages."""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
MAX_LINES = 400


def _folders(path: Path) -> set[str]:
    return {p.name for p in path.iterdir() if p.is_dir() and p.name != "__pycache__"}


def test_usage_names_each_test_folder_and_the_root_holds_only_conftest():
    usage = (ROOT / "docs" / "usage.md").read_text()
    table = usage[usage.index("| folder | covers |") :]
    named = set(re.findall(r"^\| `(\w+)/` \|", table[: table.index("\n\n")], re.M))
    assert named == _folders(TESTS), (
        f"tests/ has {sorted(_folders(TESTS))}; docs/usage.md's table names {sorted(named)}"
    )
    files = sorted(p.name for p in TESTS.iterdir() if p.is_file())
    assert files == ["conftest.py"], (
        f"tests/ holds {files}: each file but conftest.py goes in the folder of what it covers"
    )


def test_unit_folders_are_the_packages():
    """tests/unit/NAME/ covers core/mattekit/NAME/, both ways: no folder there is named after something else, and
    every package has its folder."""
    packages = {p.parent.name for p in (ROOT / "core" / "mattekit").glob("*/__init__.py")}
    strays = _folders(TESTS / "unit") - packages
    assert not strays, f"tests/unit/ folders named after no package of core/mattekit: {sorted(strays)}"
    untested = packages - _folders(TESTS / "unit")
    assert not untested, f"packages of core/mattekit without a tests/unit/ folder: {sorted(untested)}"


def test_modules_importing_test_modules():
    """Each test module imports set-ups from tests/helpers/ (or gets fixtures from a conftest.py), never from another
    test module; helpers and conftest.py import no test module either (issue 82 moved the last ones)."""
    tests = {p.stem for p in TESTS.rglob("test_*.py")}
    found = {}
    for path in sorted(TESTS.rglob("*.py")):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                imported.add(node.module)
        if imported & tests:
            found[path.relative_to(TESTS).as_posix()] = sorted(imported & tests)
    assert not found, f"modules importing test modules (move the set-up to tests/helpers/ or a conftest.py): {found}"


def test_no_module_of_the_tests_is_over_400_lines():
    """Issue 82: no module over 400 lines in any folder: test modules, conftest.py, tests/helpers/ and the stand-ins."""
    lines = {p.relative_to(TESTS).as_posix(): len(p.read_text().splitlines()) for p in TESTS.rglob("*.py")}
    over = {name: count for name, count in lines.items() if count > MAX_LINES}
    assert not over, f"modules of the tests over {MAX_LINES} lines (split them by topic): {over}"


def test_test_counts_are_counted_not_typed():
    """Issue 71: the README's typed counts went stale (about 1,080 / 1,230 stated, 1,265 / 1,411 collected). The pages
    type no count of the suite's tests (three digits or more); the README names the option that counts them."""
    for page in ("README.md", "docs/usage.md"):
        typed = re.findall(r"\b(?:\d{1,3},\d{3}|\d{3,})\s+tests\b", (ROOT / page).read_text())
        assert not typed, f"{page} types a count of tests {typed}: `--collect-only -q` counts them"
    assert "`--collect-only -q`" in (ROOT / "README.md").read_text()
