"""``mattekit bench``: the benchmarks are a package beside the core (bench/mattekit_bench), which the core names in one
module (commands/bench.py) and imports only when ``mattekit bench`` runs; an install without them says so."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mattekit.cli import main

CORE = Path(__file__).resolve().parents[3] / "core" / "mattekit"
BENCH = CORE.parents[1] / "bench" / "mattekit_bench"

# The CLI in-process as the `mattekit` script runs it; the last line says whether the bench package was imported.
PROBE = """
import json, sys
import mattekit.cli
try:
    mattekit.cli.main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps("mattekit_bench" in sys.modules))
"""


def test_the_core_names_the_bench_in_one_module():
    naming = sorted(
        path.relative_to(CORE).as_posix()
        for path in CORE.rglob("*")
        if path.is_file() and path.suffix in (".py", ".pyi", ".toml", ".json") and "mattekit_bench" in path.read_text()
    )
    assert naming == ["commands/bench.py"], f"modules of core/mattekit naming mattekit_bench: {naming}"


def test_the_bench_imports_the_core_below_its_command_line():
    """One way, as when the bench was the core's layer of front ends: its modules import mattekit's, not the command
    line's (mattekit.cli, mattekit.commands), which name the bench."""
    above = []
    for path in sorted(BENCH.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            hits = [n for n in names if n.split(".")[:2] in (["mattekit", "cli"], ["mattekit", "commands"])]
            above += [f"{path.name}:{node.lineno} {n}" for n in hits]
    assert not above, f"bench modules importing mattekit's command line: {above}"


@pytest.mark.parametrize("argv, imported", [(["--help"], False), (["bench", "--help"], True)])
def test_the_bench_is_imported_only_when_mattekit_bench_runs(argv, imported):
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.rstrip("\n").split("\n")[-1]) is imported, done.stdout[-2000:]


def test_an_install_without_the_bench_says_one_sentence_and_exits_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mattekit_bench", None)  # what `import mattekit_bench` meets where it is absent
    with pytest.raises(SystemExit) as stop:
        main(["bench", "segment", "--data", "photos"])
    assert stop.value.code == 2
    assert capsys.readouterr().err == (
        "mattekit: error: The benchmarks are not installed with this mattekit (no package mattekit_bench).\n"
    )
