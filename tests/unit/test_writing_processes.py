"""The writing stage in processes (mattekit.running.processes): the same bytes as the threads write, items' arrays
through shared memory, an item's failure fails that item only, a process's death costs no item, big items held by
one process at a time."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from mattekit.cli import main
from mattekit.errors import MattekitError, OutputError
from mattekit.running import layout, processes

TESTS = os.getpid()  # this process: the writing processes are its children


def _kind(value) -> tuple[str, tuple, float]:
    """(the type's name, the shape, the sum) of what a writing process was given."""
    return type(value).__name__, tuple(value.shape), float(value.sum())


def _doubled(array: np.ndarray, tag: str) -> tuple[int, float, bool]:
    """(the writing process's id, the sum of ``array`` doubled in place, whether the array was writable); a writing
    process dies for tag "die" and "die, then refuse"; raises an OutputError for "refuse" (and "die, then refuse" in
    the tests' process) and an exception that does not pickle for "odd"."""
    if tag.startswith("die") and os.getpid() != TESTS:
        os._exit(3)
    if tag.endswith("refuse"):
        raise OutputError("Cannot write x.png: it is a folder.")
    if tag == "odd":
        raise _Unpicklable("a lock in it")
    array *= 2
    return os.getpid(), float(array.sum()), array.flags.writeable


class _Unpicklable(Exception):
    def __init__(self, text):
        super().__init__(text)
        self.lock = threading.Lock()


@pytest.mark.skipif(not layout.processes_for({}, 2)[0], reason="this system does not fork")
def test_an_items_arrays_reach_a_process_through_shared_memory_and_its_answer_comes_back():
    writers = processes.Writers(_doubled, 2)
    try:
        big = np.arange(3 * 1024 * 1024, dtype=np.float32).reshape(1024, 1024, 3)  # 12 MB, out of the pickle
        pid, total, writable = writers.call(big, "ok")
        assert pid != os.getpid() and writable
        assert total == pytest.approx(2 * float(big.astype(np.float64).sum()), rel=1e-6)
        assert big[0, 0, 1] == 1  # the caller's array is untouched: the process works on its own copy
        with pytest.raises(OutputError, match="it is a folder"):
            writers.call(big[:1], "refuse")
        with pytest.raises(MattekitError, match="a lock in it"):
            writers.call(big[:1], "odd")
        assert writers.call(np.ones(3, np.float32), "ok")[1] == 6  # the processes are still there
    finally:
        writers.close()


@pytest.mark.skipif(not layout.processes_for({}, 2)[0], reason="this system does not fork")
def test_a_tensor_that_views_a_batch_reaches_a_process_as_that_tensor():
    import torch

    batch = torch.arange(8 * 64 * 64, dtype=torch.float32).reshape(8, 1, 64, 64)
    writers = processes.Writers(_kind, 1)
    try:
        assert writers.call(batch[3:4]) == ("Tensor", (1, 1, 64, 64), float(batch[3:4].sum()))
    finally:
        writers.close()


@pytest.mark.skipif(not layout.processes_for({}, 2)[0], reason="this system does not fork")
def test_a_process_that_dies_is_reaped_at_once_and_its_item_written_by_the_caller():
    """A writing process that dies holding an item (killed for memory) is reaped before the call returns (no zombie
    to the run's end) and the item is written again in the caller's process, which then writes the items that
    process would have; where that second try fails too, its own exception is the item's."""
    writers = processes.Writers(_doubled, 1)
    try:
        child = writers.call(np.ones(2, np.float32), "ok")[0]
        assert child != os.getpid() and Path(f"/proc/{child}").exists()
        pid, total, _ = writers.call(np.ones(2, np.float32), "die")
        assert pid == os.getpid() and total == 4  # written again, here
        assert not Path(f"/proc/{child}").exists()  # reaped: no zombie left in the process table
        assert writers.call(np.ones(2, np.float32), "ok")[0] == os.getpid()  # (the dead process's place)
    finally:
        writers.close()
    writers = processes.Writers(_doubled, 1)
    try:
        with pytest.raises(OutputError, match="it is a folder"):
            writers.call(np.ones(2, np.float32), "die, then refuse")
    finally:
        writers.close()


def _held(array: np.ndarray, folder: str, together: bool) -> int:
    """How many writing processes held an item at once, as seen by this one while it holds ``array`` (a marker file
    each in ``folder``): ``together``, waiting (up to 30 s) until another holds one too; else over 0.4 s."""
    mark = Path(folder) / str(os.getpid())
    mark.touch()
    most, until = 0, time.monotonic() + (30 if together else 0.4)
    try:
        while time.monotonic() < until and not (together and most > 1):
            most = max(most, len(list(Path(folder).iterdir())))
            time.sleep(0.02)
    finally:
        mark.unlink()
    return most


@pytest.mark.skipif(not layout.processes_for({}, 2)[0], reason="this system does not fork")
def test_at_most_big_processes_hold_a_big_item_at_once(tmp_path, monkeypatch):
    """Items of mattekit.running.processes.BIG_ITEM bytes or more (1 MB here) are held by at most ``big`` processes
    at once (1 here: their memory), while small items are held by every process at once (2 here)."""
    monkeypatch.setattr(processes, "BIG_ITEM", 1 << 20)
    writers = processes.Writers(_held, 2, big=1)
    try:
        with ThreadPoolExecutor(2) as pool:
            small = [pool.submit(writers.call, np.ones(8, np.float32), str(tmp_path), True) for _ in range(2)]
            assert [f.result() for f in small] == [2, 2]
            big = [pool.submit(writers.call, np.ones(1 << 18, np.float32), str(tmp_path), False) for _ in range(2)]
            assert [f.result() for f in big] == [1, 1]
    finally:
        writers.close()


@pytest.mark.slow
@pytest.mark.skipif(not layout.processes_for({}, 2)[0], reason="this system does not fork")
def test_a_folder_written_by_processes_has_the_bytes_the_threads_write(four_images, tmp_path, monkeypatch):
    """Every output of a folder (real weights, the default finish: refinement, edge matting, decontamination, PNG)
    byte for byte the same whether the writing processes or the pipeline's own threads finished and encoded it."""
    data, images = four_images
    calls = []
    real_call = processes.Writers.call
    monkeypatch.setattr(processes.Writers, "call", lambda self, *a: calls.append(1) or real_call(self, *a))
    args = ["remove", str(data / "im"), "--model", "extremec3-portrait", "-q", "-o"]
    assert main(args + [str(tmp_path / "by_processes")]) == 0
    assert len(calls) == len(images)
    monkeypatch.setattr(layout, "processes_for", lambda stages, items: (0, "none: the test's"))
    assert main(args + [str(tmp_path / "by_threads")]) == 0
    assert len(calls) == len(images)
    for image in images:
        name = image.stem + ".png"
        assert (tmp_path / "by_processes" / name).read_bytes() == (tmp_path / "by_threads" / name).read_bytes()


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
@pytest.mark.skipif(not layout.processes_for({}, 2)[0], reason="this system does not fork")
def test_an_output_a_process_cannot_write_fails_that_image_only(four_images, tmp_path, capsys):
    data, images = four_images
    out = tmp_path / "out"
    (out / (images[1].stem + ".png")).mkdir(parents=True)
    assert main(["remove", str(data / "im"), "--model", "extremec3-portrait", "-o", str(out), "--overwrite"]) == 1
    err = capsys.readouterr().err
    assert f"{images[1].name}: " in err and "it is a folder" in err and "Traceback" not in err
    assert all((out / (image.stem + ".png")).is_file() for image in images if image != images[1])


@pytest.mark.slow
@pytest.mark.skipif(not layout.processes_for({}, 2)[0], reason="this system does not fork")
def test_on_a_gpu_a_photo_finished_on_the_device_stays_in_the_parent(shared, tmp_path, monkeypatch):
    """On a (the bench's simulated) GPU the small photos' finish goes to the writing processes, while a photo of 1 MP or more,
    whose finish runs on the model's device (mattekit.finish.device.device_of), is finished in the pipeline's own thread: a forked
    process has no GPU context."""
    from PIL import Image

    from gpu_plans import simulated_gpu

    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    simulated_gpu(monkeypatch)
    photos = sorted((shared / "data/grabcut50/im").iterdir())[:2]
    large = tmp_path / "large.jpg"
    with Image.open(photos[0]) as small:
        small.resize((small.width * 3, small.height * 3)).save(large)  # 1.4 MP
    sent = []
    real_call = processes.Writers.call
    monkeypatch.setattr(
        processes.Writers, "call", lambda self, item, *a: sent.append(item[0].name) or real_call(self, item, *a)
    )
    out = tmp_path / "out"
    assert main(["remove", "-q", "--model", "u2netp", "-o", str(out), *map(str, photos), str(large)]) == 0
    assert sorted(sent) == sorted(p.name for p in photos)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.stem + ".png" for p in [*photos, large])
