"""mattekit.heap: a command-line run of one image reuses the large blocks it frees instead of faulting them in again;
a command's own process starts with the garbage collector paused and resumes it, a caller's process never."""

import subprocess
import sys

import pytest

LARGE = """
import resource, sys
import numpy as np
from mattekit import heap
if sys.argv[1] == "one image":
    heap.for_one_image()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step(mb):  # a full-size array made, written and freed, as each step of a big photo's finish does
    a = np.empty(mb << 20, np.uint8)
    a[::4096] = 1
    del a
step(64), step(48)  # the heap grows to its largest block once
before = faults()
for _ in range(5):
    step(64), step(48)
advice = (getattr(np, '_core', None) or np.core).multiarray  # numpy 2 / numpy 1
print(advice._set_madvise_hugepage(False), faults() - before)
"""


def _faults(mode: str) -> int:
    run = subprocess.run([sys.executable, "-c", LARGE, mode], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    advised, faults = run.stdout.split()[-2:]
    assert advised == str(mode == "default")  # numpy's 2 MB page advice: left as it is, or off
    return int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator settings")
def test_a_command_line_run_of_one_image_reuses_freed_large_blocks():
    """Ten 48-64 MB arrays made and freed after a first pair: glibc maps each one afresh by default (a fault per
    4 KiB page written, ~16,000 per 64 MB array; one per 2 MB where the kernel gives huge pages: 300 or more either
    way) and reuses the heap's blocks after :func:`mattekit.heap.for_one_image` (measured here: 5,900 against 0),
    which also turns numpy's 2 MB page advice off."""
    default, one_image = _faults("default"), _faults("one image")
    print(f"minor page faults over 10 large arrays: glibc default {default}, one image {one_image}")
    assert default >= 300 and one_image * 10 <= default


PAUSE = """
import gc, json
from mattekit import heap
heap.resume_collection()  # no pause began: the caller's collector is left as it is
seen = {"untouched": gc.isenabled() and gc.get_freeze_count() == 0}
gc.disable()
heap.pause_collection(), heap.resume_collection()  # a caller that turned it off: still off, nothing set aside
seen["caller's own off"] = not gc.isenabled() and gc.get_freeze_count() == 0
gc.enable()
heap.pause_collection()
seen["paused"] = not gc.isenabled()
heap.resume_collection()
seen["resumed"], seen["set aside"] = gc.isenabled(), gc.get_freeze_count()
print(json.dumps(seen))
"""

COMMAND = """
import gc, json, sys
from mattekit import cli, runtime
seen = {}
loading = runtime.Predictor.__init__
def watched(self, *args, **kwargs):
    seen["collecting while the model loads"] = gc.isenabled()
    loading(self, *args, **kwargs)
runtime.Predictor.__init__ = watched
notices = runtime.load_notices
def noted(*args):
    seen["collecting once it is loaded"] = gc.isenabled()
    return notices(*args)
runtime.load_notices = noted
import atexit
atexit.register(lambda: print(json.dumps(dict(seen, after=gc.isenabled(), set_aside=gc.get_freeze_count()))))
sys.argv = ["mattekit", *sys.argv[1:]]
cli.run()
"""


def _python(code: str, *args: str) -> dict:
    import json

    run = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.splitlines()[-1])


def test_collection_is_paused_and_resumed_only_where_it_was_paused():
    """:func:`mattekit.heap.resume_collection` acts only after :func:`mattekit.heap.pause_collection` paused a running
    collector (never on a caller's own setting), and then sets aside what is alive (``gc.freeze``)."""
    seen = _python(PAUSE)
    assert seen["untouched"] and seen["caller's own off"] and seen["paused"], seen
    assert seen["resumed"] and seen["set aside"] > 1_000, seen  # the interpreter's and mattekit.heap's objects


def test_a_commands_own_process_starts_without_collecting_and_collects_once_its_model_is_loaded(
    shared, tmp_path, monkeypatch
):
    """`mattekit remove` as its own process: the collector is off while it imports and loads its model (torch's
    import alone made 280,000 objects for it to traverse), on again after, with start-up's objects set aside; a
    command called in-process (:func:`mattekit.cli.main`: tests, scripts) never touches it."""
    photo = sorted((shared / "data/grabcut50/im").iterdir())[0]
    argv = ["remove", "-q", str(photo), "-o", str(tmp_path / "cut.png"), "--model", "u2netp"]
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    seen = _python(COMMAND, *argv)
    assert seen["collecting while the model loads"] is False and seen["collecting once it is loaded"] is True, seen
    assert seen["set_aside"] > 10_000, seen  # what the start-up made: numpy, OpenCV, mattekit (torch where imported)
    assert (tmp_path / "cut.png").is_file()
    from mattekit import cli

    assert cli.main(argv + ["--overwrite"]) == 0 and gc_untouched()


def gc_untouched() -> bool:
    import gc

    return gc.isenabled() and gc.get_freeze_count() == 0


SERVE = """
import gc, json, sys
from mattekit import cli
from mattekit.worker import service
def served(self, _started=False):  # what the worker's loop would find, then it ends at once
    print(json.dumps({"collecting while it serves": gc.isenabled()}))
service.WorkerServer.serve_forever = served
sys.argv = ["mattekit", "serve", "--port", "0", "--state-file", sys.argv[1]]
cli.run()
"""


def test_the_worker_collects_while_it_serves(tmp_path):
    """`mattekit serve` lives on without loading a model first: its collector is on by the time it serves."""
    assert _python(SERVE, str(tmp_path / "worker.json")) == {"collecting while it serves": True}


ENHANCE = """
import gc, json, sys
from mattekit import cli, io
seen = {}
writing = io.write_image
def watched(*args, **kwargs):
    seen["collecting while it writes"] = gc.isenabled()
    return writing(*args, **kwargs)
io.write_image = watched
import atexit
atexit.register(lambda: print(json.dumps(seen)))
sys.argv = ["mattekit", "enhance", "-q", *sys.argv[1:]]
cli.run()
"""


def test_a_command_without_a_model_collects_once_its_run_begins(tmp_path):
    """`mattekit enhance` loads no model: the run itself ends the start-up's pause (a folder of thousands of photos
    is no start-up)."""
    import numpy as np
    from PIL import Image

    Image.fromarray(np.full((40, 60, 3), 120, np.uint8)).save(tmp_path / "grey.png")
    seen = _python(ENHANCE, str(tmp_path / "grey.png"), "-o", str(tmp_path / "out.png"))
    assert seen == {"collecting while it writes": True} and (tmp_path / "out.png").is_file()


BENCH = """
import gc, sys
import mattekit.bench.engines as bench
bench.run = lambda args: print("collecting while it measures:", gc.isenabled()) or 0
from mattekit import cli
sys.argv = ["mattekit", "bench", "engines"]
cli.run()
"""


def test_a_bench_collects_while_it_measures():
    """`mattekit bench KIND` runs for minutes and `bench engines` builds its predictors itself: the start-up's pause
    ends before any bench runs."""
    run = subprocess.run([sys.executable, "-c", BENCH], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "collecting while it measures: True"
