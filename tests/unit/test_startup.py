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
        "import sys, mattekit.catalog, mattekit.weights, mattekit.commands.models, mattekit_bench.speed\n"
        "print(sorted(m for m in ('torch', 'rembg', 'onnxruntime', 'onnx') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


# A process ended by mattekit.cli.exit_without_teardown: a non-daemon thread that writes once the main thread is done, an idle
# thread pool, an exit handler, output still buffered, and a module-level object whose finalizer only the
# interpreter's teardown would run.
ENDING = """
import atexit, os, sys, threading
from concurrent.futures import ThreadPoolExecutor
from mattekit.cli import exit_without_teardown

class Noisy:
    def __del__(self):
        os.write(2, b"torn down")

kept, done = Noisy(), threading.Event()
thread = threading.Thread(target=lambda: done.wait() and open(sys.argv[1] + ".thread", "w").close())
thread.start()
ThreadPoolExecutor(2).submit(int, "1").result()
atexit.register(lambda: open(sys.argv[1] + ".atexit", "w").close())
print("buffered", end="")
done.set()
exit_without_teardown(int(sys.argv[2])) if sys.argv[2] != "normal" else sys.exit(3)
"""


@pytest.mark.parametrize("ending", ["0", "5", "normal"])
def test_a_command_ends_as_python_does_but_without_the_interpreters_teardown(tmp_path, ending):
    """exit_without_teardown (the `mattekit` script's and `python -m mattekit`'s end) keeps what Python's exit does (the
    non-daemon threads joined, an idle thread pool let go, the exit handlers run, standard output flushed, the
    status) and skips the interpreter's teardown, which frees every module (0.5-0.7 s with torch loaded): a
    module-level object's finalizer, which that teardown runs ("normal": Python's own exit, for comparison), is
    not run. The child's standard output is buffered (no PYTHONUNBUFFERED, which many CI containers set)."""
    mark = tmp_path / "mark"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    argv = [sys.executable, "-c", ENDING, str(mark), ending]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert done.stdout == "buffered" and done.returncode == (3 if ending == "normal" else int(ending)), done
    assert (tmp_path / "mark.thread").exists() and (tmp_path / "mark.atexit").exists()
    assert ("torn down" in done.stderr) == (ending == "normal"), done.stderr


def test_a_photos_command_imports_no_downloader_before_it_needs_it():
    """What every image command imports on its way to its first photo holds not the downloader's HTTP stack (urllib,
    http.client, email, tqdm: a download is rare): it loads at its first use."""
    code = (
        "import sys, mattekit.cli, mattekit.commands.tasks, mattekit.io, mattekit.catalog, mattekit.runtime\n"
        "import mattekit.running.runner, mattekit.weights.download\n"
        "late = ('urllib.request', 'http.client', 'email.parser', 'tqdm')\n"
        "print(sorted(m for m in late if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[0] == "[]", done.stdout
