"""mattekit.startup: a task command's own process starts with Python's garbage collector paused and ends the pause
once, as its run begins (its model loaded by then); every other command collects from its start; a caller's process
(the API, ``cli.main``) keeps its own collector setting. Watched from outside, by an audit hook."""

from __future__ import annotations

import ast
import gc
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "core" / "mattekit"
BENCH = PACKAGE.parents[1] / "bench" / "mattekit_bench"  # the benchmarks beside it, run by `mattekit bench`


def _calls(name: str) -> list[str]:
    """'module:line' of each call of an attribute or function named ``name`` in core/mattekit (its modules named
    from there) and in the benchmarks beside it (named ``mattekit_bench/...``)."""
    found = []
    for path in sorted([*PACKAGE.rglob("*.py"), *BENCH.rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if called == name:
                    where = path.relative_to(PACKAGE if path.is_relative_to(PACKAGE) else BENCH.parent)
                    found.append(f"{where}:{node.lineno}")
    return found


def test_the_pause_has_one_start_and_one_end():
    """The collector is turned off, on and its objects set aside in mattekit.startup only; its pause is entered in
    one place (the command line's entry) and ended in one place (a task's run), besides the pause's own end."""
    for call in ("disable", "enable", "freeze"):
        assert [site.split(":")[0] for site in _calls(call)] == ["startup.py"], (call, _calls(call))
    assert [site.split(":")[0] for site in _calls("paused")] == ["cli.py"], _calls("paused")
    assert [site.split(":")[0] for site in _calls("done")] == ["running/runner.py", "startup.py"], _calls("done")


# The command line as the `mattekit` script runs it, watched by an audit hook: whether the collector is on, and how
# many objects are set aside, at the first import of a model's engine, and as the
# first output file under argv[1] is opened for writing; printed at exit.
WATCHED = """
import atexit, gc, json, sys
from mattekit import cli
seen, under = {}, sys.argv[1]
def noted(event, args):
    if event == "import" and args[0] in ("onnxruntime", "torch"):
        seen.setdefault("loading", [gc.isenabled(), gc.get_freeze_count()])
    elif event == "open" and str(args[0]).startswith(under) and args[1] in ("w", "wb"):
        seen.setdefault("writing", [gc.isenabled(), gc.get_freeze_count()])
sys.addaudithook(noted)
atexit.register(lambda: print(json.dumps(seen)))
sys.argv = ["mattekit", *sys.argv[2:]]
cli.run()
"""


def _watched(output: str, *argv: str) -> dict:
    run = subprocess.run([sys.executable, "-c", WATCHED, output, *argv], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.splitlines()[-1])


def test_remove_loads_its_model_without_collecting_and_collects_once_its_run_begins(shared, tmp_path, monkeypatch):
    """`mattekit remove` as its own process: the collector is off while it imports and loads its model (torch's
    import alone made 280,000 objects for it to traverse), on as it writes the cut-out, with start-up's objects set
    aside. Run in-process (:func:`mattekit.cli.main`: tests, scripts), it leaves the caller's collector as it is."""
    photo = sorted((shared / "data/grabcut50/im").iterdir())[0]
    out = tmp_path / "cut.png"
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    argv = ["remove", "-q", str(photo), "-o", str(out), "--model", "u2netp"]
    seen = _watched(str(tmp_path), *argv)
    assert seen["loading"] == [False, 0] and seen["writing"][0] and seen["writing"][1] > 10_000, seen
    assert out.is_file()
    from mattekit import cli

    assert cli.main([*argv, "--overwrite"]) == 0 and gc.isenabled() and gc.get_freeze_count() == 0


def test_commands_that_run_no_task_collect_from_their_start(tmp_path, monkeypatch):
    """`mattekit doctor` (it imports torch and plans every model, outside any task's run) is never paused: it
    collects from its start, as it imports torch."""
    monkeypatch.setenv("MATTEKIT_HOME", str(tmp_path / "home"))
    assert _watched(str(tmp_path), "doctor", "--model", "u2netp")["loading"] == [True, 0]


SERVE = """
import gc, json, os, signal, sys, threading, time
from mattekit import cli
def watch(state):  # once the worker has written where it listens: is it collecting? then stop it as a user would
    while not os.path.exists(state):
        time.sleep(0.05)
    time.sleep(0.2)
    print(json.dumps({"collecting while it serves": gc.isenabled(), "set aside": gc.get_freeze_count()}), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
threading.Thread(target=watch, args=(sys.argv[1],), daemon=True).start()
sys.argv = ["mattekit", "serve", "--port", "0", "--state-file", sys.argv[1]]
cli.run()
"""


def test_the_worker_collects_while_it_serves(tmp_path):
    """`mattekit serve` lives on: it collects while it serves, and stops on SIGTERM."""
    run = subprocess.run([sys.executable, "-c", SERVE, str(tmp_path / "worker.json")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[0]) == {"collecting while it serves": True, "set aside": 0}


API = """
import gc, json
import numpy as np
import mattekit
grey = np.full((30, 40, 3), 0.5, np.float32)
seen = {}
for setting in (False, True):
    (gc.enable if setting else gc.disable)()
    mattekit.enhance(grey)
    seen[str(setting)] = [gc.isenabled(), gc.get_freeze_count()]
print(json.dumps(seen))
"""


def test_a_caller_of_the_api_keeps_its_own_collector_setting():
    """A script that turned its collector off or left it on finds it so after a run, nothing set aside."""
    run = subprocess.run([sys.executable, "-c", API], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[-1]) == {"False": [False, 0], "True": [True, 0]}
