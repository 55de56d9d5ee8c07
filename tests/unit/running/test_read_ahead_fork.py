"""A folder's inputs decoded ahead while its models load (mattekit.running.ahead) and the writing processes' fork
(mattekit.running.processes): no decoding is under way at the fork, even where the reading thread is still at work
once the models have loaded."""

from __future__ import annotations

import threading
import time

import pytest

from forks import at_forks
from mattekit import io, runtime
from mattekit.cli import main
from mattekit.running import layout


@pytest.mark.slow  # a model's load and a run of 4 photos in this process: 10-40 s on 2 shared cores
@pytest.mark.skipif(not layout.processes_for({}, 2)[0], reason="this system has no writing processes")
def test_no_photo_is_being_decoded_when_the_writing_processes_fork(shared, tmp_path, monkeypatch):
    """Each photo decoded before the first fork begins only once the model has loaded and takes 1 s more here, so
    that the reading thread is still decoding when the run is about to fork; the runner stops it first (the photo
    it decodes finished, the thread joined): no decoding is under way at any fork, each photo is decoded once, and
    every cut-out is written."""
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    loaded, forked, decoding, reads = threading.Event(), threading.Event(), [], []
    read_image, for_task = io.read_image, runtime.ModelCache.for_task

    def reading(*args, **kwargs):
        decoding.append(1)
        try:
            if not forked.is_set():
                assert loaded.wait(30), "the model never loaded"
                time.sleep(1)
            reads.append(args[0])
            return read_image(*args, **kwargs)
        finally:
            decoding.pop()

    def loading(self, *args, **kwargs):
        try:
            return for_task(self, *args, **kwargs)
        finally:
            loaded.set()

    def decodings() -> int:
        forked.set()
        return len(decoding)

    monkeypatch.setattr(io, "read_image", reading)
    monkeypatch.setattr(runtime.ModelCache, "for_task", loading)
    photos = sorted((shared / "data" / "grabcut50" / "im").iterdir())[:4]
    out = tmp_path / "out"
    with at_forks(decodings) as under_way:
        assert main(["remove", "-q", "--model", "u2netp", "-o", str(out), *map(str, photos)]) == 0
    assert under_way and not any(under_way), under_way
    assert sorted(reads) == photos and sorted(p.name for p in out.iterdir()) == [p.stem + ".png" for p in photos]
