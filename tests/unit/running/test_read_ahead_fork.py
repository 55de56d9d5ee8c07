"""A folder's inputs decoded ahead while its models load (mattekit.running.ahead) and the writing processes' fork
(mattekit.running.processes): no decoding is under way at the fork, even where the reading thread is still at work
once the models have loaded. The run is a fresh process of its own: a test process's own threads (left by earlier
tests in the same pytest worker) would make its fork unsafe for reasons that are not the run's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mattekit.running import layout

# Each photo decoded before the first fork begins only once the model has loaded and takes 1 s more, so that the
# reading thread is still decoding when the run is about to fork. Prints what held at each fork, the photos read.
RUN = """
import json, sys, threading, time
from forks import at_forks
from mattekit import io, runtime
from mattekit.cli import main
loaded, forked, decoding, reads = threading.Event(), threading.Event(), [], []
read_image, for_task = io.read_image, runtime.ModelCache.for_task
def reading(*args, **kwargs):
    decoding.append(1)
    try:
        if not forked.is_set():
            assert loaded.wait(30), "the model never loaded"
            time.sleep(1)
        reads.append(str(args[0]))
        return read_image(*args, **kwargs)
    finally:
        decoding.pop()
def loading(self, *args, **kwargs):
    try:
        return for_task(self, *args, **kwargs)
    finally:
        loaded.set()
def decodings():
    forked.set()
    return len(decoding)
io.read_image, runtime.ModelCache.for_task = reading, loading
with at_forks(decodings) as under_way:
    code = main(["remove", "-q", "--model", "u2netp", "-o", sys.argv[1], *sys.argv[2:]])
print(json.dumps({"code": code, "under_way": under_way, "reads": reads}))
"""


@pytest.mark.slow  # a model's load and a run of 4 photos in a process of its own: 10-40 s on 2 shared cores
@pytest.mark.skipif(not layout.processes_for({}, 2)[0], reason="this system has no writing processes")
def test_no_photo_is_being_decoded_when_the_writing_processes_fork(shared, tmp_path):
    """The runner stops the reading thread before it forks (the photo it decodes finished, the thread joined): no
    decoding is under way at any fork, each photo is decoded once, and every cut-out is written."""
    photos = sorted((shared / "data" / "grabcut50" / "im").iterdir())[:4]
    out = tmp_path / "out"
    helpers = str(Path(__file__).resolve().parents[2] / "helpers")
    env = dict(os.environ, MATTEKIT_MIRROR=str(shared / "weights"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [helpers, env.get("PYTHONPATH")]))
    run = subprocess.run(
        [sys.executable, "-c", RUN, str(out), *map(str, photos)], capture_output=True, text=True, timeout=300, env=env
    )
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.splitlines()[-1])
    assert seen["code"] == 0 and seen["under_way"] and not any(seen["under_way"]), seen
    assert sorted(seen["reads"]) == list(map(str, photos))
    assert sorted(p.name for p in out.iterdir()) == [p.stem + ".png" for p in photos]
