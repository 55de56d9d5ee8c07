"""Fast start: `mattekit --help`, `--version` and `models list` work and import no torch; the catalog,
the weights cache and the speed benchmark's harness import without torch, rembg or onnxruntime."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import mattekit

COMMANDS = {"help": ["--help"], "version": ["--version"], "models list": ["models", "list"]}

# Runs the CLI in-process the way the `mattekit` script does, then reports what it imported on the last line.
PROBE = """
import json, sys
import mattekit.cli
try:
    code = mattekit.cli.main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
print(json.dumps({"code": code or 0, "torch": "torch" in sys.modules}))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """name -> (exit code, stdout without the probe's line, torch imported?, stderr), each in a fresh interpreter."""
    home = tmp_path_factory.mktemp("startup_home")
    out = {}
    for name, argv in COMMANDS.items():
        done = subprocess.run(
            [sys.executable, "-c", PROBE, *argv],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "MATTEKIT_HOME": str(home)},
        )
        assert done.returncode == 0, f"mattekit {' '.join(argv)} crashed: {done.stderr[-2000:]}"
        *lines, last = done.stdout.rstrip("\n").split("\n")
        report = json.loads(last)
        out[name] = (report["code"], "\n".join(lines), report["torch"], done.stderr)
    return out


def test_help_version_and_models_list_work(runs):
    for name, (code, stdout, _, stderr) in runs.items():
        assert code == 0, f"mattekit {name} exited {code}: {stderr[-2000:]}"
    assert runs["version"][1].strip() == f"mattekit {mattekit.__version__}"
    assert "models" in runs["help"][1] and "remove" in runs["help"][1]
    listing = runs["models list"][1]
    assert listing.startswith("name") and "csnet-sod" in listing and "(default)" in listing


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_command_imports_no_torch(runs, name):
    assert not runs[name][2], f"mattekit {' '.join(COMMANDS[name])} imported torch"


def test_catalog_weights_and_models_command_import_without_torch():
    code = (
        "import sys, mattekit.catalog, mattekit.weights, mattekit.commands.models, mattekit.bench.speed\n"
        "print(sorted(m for m in ('torch', 'rembg', 'onnxruntime', 'onnx') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
