"""The pipeline's plan and batches: writers and threads per core on the CPU and beside a GPU (planned as on one), padded
batches on CUDA only, and a batch out of GPU memory halved until one image stops the run."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from mattekit.running import layout as run_layout, pipeline
from mattekit.errors import MattekitError
from pipeline_items import _read


def _planned(monkeypatch, cores: int, device: str, gpu: bool = False, backend: str = "auto"):
    """A predictor as the pipeline sees it, with u2netp's plan decided (engines.plan.decide) for ``cores`` cores on
    ``device``; ``gpu``: planned as on a machine with a CUDA GPU."""
    from types import SimpleNamespace

    from gpu_plans import planned_on_a_gpu

    from mattekit import catalog
    from mattekit.engines import layout, plan

    monkeypatch.setattr(run_layout, "cpu_count", lambda: cores)
    monkeypatch.setattr(layout, "cpu_count", lambda: cores)
    if gpu:
        planned_on_a_gpu(monkeypatch)
    made = plan.decide(catalog.load().get("u2netp"), device, backend)
    return SimpleNamespace(device_type=made.device.split(":")[0], device=torch.device(made.device), plan=made)


def test_plan_on_the_cpu_gives_a_writer_to_every_4_cores(monkeypatch):
    """On the CPU the finish and the encoding run in the writers: one per 4 cores (one on up to 7), one when ordered;
    the plan's workers and threads share the cores out; one reader (the network fills the cores)."""
    for cores, writers in ((2, 1), (4, 1), (8, 2), (16, 4), (32, 8)):
        layout = run_layout.plan(on_cpu := _planned(monkeypatch, cores, "cpu", backend="onnx"))
        assert layout["writers"] == writers and layout["workers"] * layout["threads"] <= cores, (cores, layout)
        assert run_layout.plan(on_cpu, ordered=True)["writers"] == 1 and layout["readers"] == 1 and not layout["pad"]


def test_plan_on_cuda_gives_the_spare_cores_to_writers(monkeypatch):
    """With the net on a GPU, postprocessing and encoding bound the speed: the cores but two write (at most 8),
    except in an ordered pipeline (one writer), and a reader per 4 cores reads (at most 4; one where asked: a movie);
    two workers with batches of 8 of one shape for a fixed-size model."""
    for cores, writers, readers in ((16, 8, 4), (6, 4, 1), (2, 1, 1), (64, 8, 4), (8, 6, 2)):
        on_gpu = _planned(monkeypatch, cores, "auto", gpu=True)
        layout = run_layout.plan(on_gpu)
        assert (layout["workers"], layout["batch"], layout["writers"], layout["readers"]) == (2, 8, writers, readers)
        assert layout["pad"] and layout["device"] == "cuda"
        ordered = run_layout.plan(on_gpu, ordered=True)
        assert (
            ordered["writers"] == 1 and ordered["readers"] == readers and ordered["ordered"] and not layout["ordered"]
        )
        assert run_layout.plan(on_gpu, ordered=True, readers=1)["readers"] == 1  # a movie decodes forwards


def test_a_batch_out_of_gpu_memory_is_halved_and_a_single_image_stops_the_run():
    """The GPU path emulated on the CPU: an infer that runs out of memory on more than 2 inputs gets halves of the
    batch until they fit, and every item is written with its own result; out of memory on one input stops the run
    with one sentence. Events, not sleeps, shape the batches: the first call gets item 0 alone (item 1 is read once
    it has started), and returns once the reader reached item 15, so the next batch is a full one of 8."""
    tried, fitted, written = [], [], {}
    first_started, last_read = threading.Event(), threading.Event()

    def read(i):
        if i == 1:
            assert first_started.wait(30), "the first batch never reached the network"
        if i == 15:
            last_read.set()  # items 1..14 wait in the queue
        return _read(i)

    def infer(x):
        tried.append(x.shape[0])
        if len(tried) == 1:
            first_started.set()
            assert last_read.wait(30), "the reader never reached the last item"
        if x.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        fitted.append(x.shape[0])
        return x * 2

    report = pipeline.run_pipeline(
        range(16), read, infer, lambda i, c, y: written.__setitem__(i, float(y[0, 0, 0, 0])), batch=8, queue_size=16
    )
    assert report.done == 16 and written == {i: 2.0 * i for i in range(16)}
    assert tried[:4] == [1, 8, 4, 2] and max(fitted) == 2 and sum(fitted) == 16, tried

    def starved(x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory.")

    with pytest.raises(MattekitError, match="^The GPU ran out of memory on a single image; use --device cpu"):
        pipeline.run_pipeline(range(3), _read, starved, lambda *a: None)


def _reader_finished() -> None:
    """Wait until the pipeline's reader thread has put every item and the stream's end in the queue."""
    for thread in threading.enumerate():
        if thread.name.startswith("mattekit-read-"):
            thread.join(30)
            assert not thread.is_alive(), "the reader never finished"


def test_a_padded_pipeline_runs_full_batches_but_the_first_and_the_last_at_their_own_size():
    """``pad`` (the plan's choice on CUDA): while the stream goes on every batch is full, so a GPU engine meets one
    batch shape; the worker's first batch (the reader just begun: item 0 alone here) and the stream's last (item 9)
    run at their own size rather than padded with zeros, which would hold the device. A short batch waits for the
    reader (20 ms an item here) rather than being padded: no batch holds a row of zeros. Only the real items are
    written, each with its own result."""
    seen, written = [], {}
    first_ran = threading.Event()

    def read(i):
        if i == 1:
            assert first_ran.wait(30), "the first batch never reached the network"
        if i > 1:
            time.sleep(0.02)  # a slow reader: the worker finds the queue empty
        return _read(i)

    def infer(x):
        seen.append([float(row.max()) for row in x])
        first_ran.set()
        return x * 2

    report = pipeline.run_pipeline(
        range(10), read, infer, lambda i, c, y: written.__setitem__(i, y.clone()), batch=4, pad=True
    )
    assert report.done == 10 and seen == [[0.0], [1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0]], seen
    assert all(y.shape == (1, 1, 2, 2) and float(y.max()) == 2.0 * i for i, y in written.items())
    unpadded = []
    pipeline.run_pipeline(range(3), _read, lambda x: unpadded.append(x.shape[0]) or x, lambda *a: None, batch=4)
    assert sum(unpadded) == 3, unpadded  # without pad, no zero input is added


def test_an_unpadded_pipeline_runs_what_is_read_without_waiting_for_a_full_batch():
    """On the CPU (no ``pad``) a worker runs the inputs there are rather than wait for a batch to fill: item i is
    read here only once item i - 1 has been through the network, and every batch is that one item."""
    inferred = [threading.Event() for _ in range(6)]
    seen = []

    def read(i):
        if i:
            assert inferred[i - 1].wait(10), f"item {i - 1} waited for a fuller batch"
        return _read(i)

    def infer(x):
        seen.append(x.shape[0])
        inferred[int(x.max())].set()
        return x

    report = pipeline.run_pipeline(range(6), read, infer, lambda *a: None, batch=4, workers=1)
    assert report.done == 6 and seen == [1] * 6, seen


def test_a_padded_batch_out_of_gpu_memory_is_padded_to_the_halved_size():
    """Out of memory halves the padded size for the rest of the run: after the first batch (item 0 alone, its own
    size), a batch of 8 fails and is halved until it fits (2); later, item 9 of another input size, a short batch
    mid-stream, is padded to 2, not to 8."""
    tried, written, odd = [], {}, []
    first_ran = threading.Event()

    def read(i):
        if i == 1:
            assert first_ran.wait(30), "the first batch never reached the network"
        if i == 9:
            return torch.full((1, 1, 3, 3), 9.0), {"item": i}
        return _read(i)

    def small_gpu(x):
        tried.append(x.shape[0])
        if len(tried) == 1:
            first_ran.set()
            _reader_finished()
        if x.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory.")
        if x.shape[-1] == 3:
            odd.append([float(row.max()) for row in x])
        return x * 2

    report = pipeline.run_pipeline(
        range(12),
        read,
        small_gpu,
        lambda i, c, y: written.__setitem__(i, float(y.max())),
        batch=8,
        pad=True,
        queue_size=16,
    )
    assert report.done == 12 and written == {i: 2.0 * i for i in range(12)}
    assert tried == [1, 8, 4, 2, 2, 4, 2, 2, 2, 2] and odd == [[9.0, 0.0]], (tried, odd)


def test_a_short_batch_is_padded_with_zero_inputs_not_with_copies_of_a_real_one():
    """The padding is zeros (finite, and nothing a stateful or batch-normalising engine could mistake for an image):
    three items valued 1, 2, 3 in a batch of 4, short mid-stream (the next item has another input size), reach the
    engine as those three rows and one row of zeros. The first batch (item 0, a 1 x 1 input) runs alone."""
    seen = []
    first_ran = threading.Event()

    def read(i):
        if i == 1:
            assert first_ran.wait(30), "the first batch never reached the network"
        side = {0: 1, 4: 3}.get(i, 2)
        return torch.full((1, 1, side, side), float(i)), i

    def infer(x):
        seen.append(x.clone())
        if len(seen) == 1:
            first_ran.set()
            _reader_finished()
        return x

    report = pipeline.run_pipeline(range(5), read, infer, lambda *a: None, batch=4, pad=True, queue_size=16)
    assert report.done == 5 and [x.shape[0] for x in seen] == [1, 4, 1], [x.shape for x in seen]
    assert [float(row.max()) for row in seen[1]] == [1.0, 2.0, 3.0, 0.0] and float(seen[1][3].abs().max()) == 0


def test_plan_pads_batches_on_cuda_only(monkeypatch):
    assert not run_layout.plan(_planned(monkeypatch, 2, "cpu"))["pad"]
    assert run_layout.plan(_planned(monkeypatch, 2, "auto", gpu=True))["pad"]


def test_on_a_gpu_no_batch_is_larger_than_the_items_and_a_folder_runs_in_padded_batches(monkeypatch):
    """The runner's pipeline for a model planned on CUDA: no batch larger than the items there are (padding one photo
    to 8 would run the network 8 times over, in 8 times the GPU memory); a folder gets the plan's batches, padded."""
    from mattekit.running.runner import Runner
    from mattekit.tasks import remove

    on_gpu = _planned(monkeypatch, 2, "auto", gpu=True)
    seen = []
    monkeypatch.setattr(
        pipeline,
        "run_pipeline",
        lambda items, read, infer, write, **settings: seen.append(settings) or pipeline.Result(),
    )
    runner = Runner(remove.TASK, {"model": on_gpu}, remove.TASK.make_options({}))
    runner.run([0], lambda item: None, lambda *a: None, single=True)
    runner.run(list(range(3)), lambda item: None, lambda *a: None)
    runner.run(list(range(20)), lambda item: None, lambda *a: None)
    assert (seen[0]["batch"], seen[0]["workers"]) == (1, 1)
    assert (seen[1]["batch"], seen[1]["pad"]) == (3, True) and (seen[2]["batch"], seen[2]["pad"]) == (8, True)
