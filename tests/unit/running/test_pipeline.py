"""The overlapped read -> infer -> write pipeline: complete, bounded, batched, failure- and cancel-safe, ordered when
asked, post-processing in its workers, without an inference stage where a task has none, and for segmentation the
same alpha as ``predict_mask``."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from mattekit import io, runtime
from mattekit.running import layout, pipeline
from mattekit.finish import refine
from mattekit.subject import answer
from mattekit.errors import MattekitError
from mattekit.options import model_choice
from pipeline_items import _double, _read


def test_every_item_is_written_once():
    got, lock = {}, threading.Lock()

    def write(item, context, y):
        assert context["item"] == item and y.shape == (1, 1, 2, 2)
        with lock:
            assert item not in got
            got[item] = float(y[0, 0, 0, 0])

    report = pipeline.run_pipeline(range(57), _read, _double, write, workers=3, batch=4)
    assert report.done == 57 and not report.failed and not report.cancelled
    assert got == {i: 2.0 * i for i in range(57)}
    assert set(report.timings.seconds) >= {"read", "infer", "write"}


def test_readers_decode_at_once_and_every_item_is_written_once():
    """With ``readers`` threads, items are read at once (three reads meet at a barrier one reader could never pass),
    each item is taken once, a bad item fails alone, and an ordered pipeline still writes in input order."""
    meeting = threading.Barrier(3, timeout=30)

    def read(i):
        if i < 3:
            meeting.wait()  # BrokenBarrierError, a bug that stops the run, unless 3 reads run at once
        if i % 10 == 7:
            raise MattekitError(f"item {i} is unreadable")
        return _read(i)

    for ordered in (False, True):
        meeting.reset()
        got, lock = [], threading.Lock()

        def write(item, context, y):
            with lock:
                got.append((item, float(y[0, 0, 0, 0])))

        report = pipeline.run_pipeline(
            iter(range(60)), read, _double, write, workers=2, batch=3, readers=3, ordered=ordered
        )
        assert report.done == 54 and sorted(item for item, _ in report.failed) == list(range(7, 60, 10))
        expected = [(i, 2.0 * i) for i in range(60) if i % 10 != 7]
        assert (got if ordered else sorted(got)) == expected


def test_batches_hold_equal_shapes_only():
    sizes = []

    def read(i):
        return torch.zeros(1, 3, 4 + i % 2, 4), i

    def infer(x):
        sizes.append(tuple(x.shape))
        return x

    report = pipeline.run_pipeline(range(40), read, infer, lambda *a: None, workers=1, batch=3)
    assert report.done == 40
    assert all(n <= 3 for n, *_ in sizes) and sum(n for n, *_ in sizes) == 40


def test_memory_stays_bounded_on_a_long_stream():
    live, peak, lock = [0], [0], threading.Lock()

    def items():  # lazily generated: the pipeline must not drain it ahead
        for i in range(2000):
            yield i

    def read(i):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        return torch.zeros(1, 1, 1, 1), i

    def write(item, context, y):
        time.sleep(0.0005)  # the slow stage: queues fill up
        with lock:
            live[0] -= 1

    report = pipeline.run_pipeline(items(), read, _double, write, workers=2, batch=2, queue_size=4)
    assert report.done == 2000
    bound = 1 + 4 + 2 * 2 + 2 + 4 + 1  # reader + inbox + workers' batches (+ pending) + outbox + writer
    assert peak[0] <= bound, f"{peak[0]} items in flight"


def test_user_errors_fail_one_item_and_the_rest_go_on():
    def read(i):
        if i == 3:
            raise MattekitError("Cannot read 3.")
        return _read(i)

    def write(item, context, y):
        if item == 5:
            raise MattekitError("Cannot write 5.")

    seen = []
    report = pipeline.run_pipeline(range(10), read, _double, write, progress=lambda n, item: seen.append(n))
    assert report.done == 8
    assert sorted((item, str(exc)) for item, exc in report.failed) == [(3, "Cannot read 3."), (5, "Cannot write 5.")]
    assert sorted(seen) == list(range(1, 11))


def test_a_bug_stops_the_pipeline_and_is_raised():
    def infer(x):
        if float(x.flatten()[0]) == 7:
            raise ValueError("boom")
        return x

    read_items = []

    def read(i):
        read_items.append(i)
        return _read(i)

    with pytest.raises(ValueError, match="boom"):
        pipeline.run_pipeline(range(10_000), read, infer, lambda *a: None, workers=2)
    assert len(read_items) < 100, "reading went on after the failure"  # bounded queues: a few items ahead at most


def test_cancel_finishes_what_was_read():
    read_items, written = [], []

    def read(i):
        read_items.append(i)
        return _read(i)

    report = pipeline.run_pipeline(
        range(1000), read, _double, lambda item, c, y: written.append(item), cancel=lambda: len(read_items) >= 5
    )
    assert report.cancelled and report.done == len(written) == len(read_items) < 1000


def test_ordered_writes_come_in_input_order_with_bounded_lookahead():
    """ordered=True: write sees items in input order whatever the workers' timing; failed items are
    skipped in place; reading never runs more than queue_size + workers * batch items ahead of writing."""
    written, lock, ahead = [], threading.Lock(), [0]

    def read(i):
        if i == 11:
            raise MattekitError("Cannot read 11.")
        with lock:
            ahead[0] = max(ahead[0], i - (written[-1] + 1 if written else 0))
        return _read(i)

    def infer(x):
        time.sleep(0.001 * (int(x.flatten()[0]) * 7 % 5))  # uneven: later items often finish first
        if float(x.flatten()[0]) == 23:
            raise MattekitError("Cannot infer 23.")
        return x

    def write(item, context, y):
        assert float(y[0, 0, 0, 0]) == item
        with lock:
            written.append(item)

    report = pipeline.run_pipeline(range(60), read, infer, write, workers=3, queue_size=4, ordered=True)
    assert written == [i for i in range(60) if i not in (11, 23)]
    assert sorted(item for item, _ in report.failed) == [11, 23] and report.done == 58
    assert ahead[0] <= 4 + 3, ahead[0]
    with pytest.raises(ValueError):
        pipeline.run_pipeline(range(3), read, infer, write, writers=2, ordered=True)


def test_worker_thread_settings_do_not_leak():
    before = torch.get_num_threads()
    pipeline.run_pipeline(range(4), _read, _double, lambda *a: None, workers=2, threads=1)
    assert torch.get_num_threads() == before


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_segmentation_stages_match_predict_mask(shared, monkeypatch, tmp_path):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    predictor = runtime.ModelCache().get(model_choice("extremec3-portrait", "segment"), "cpu")
    paths = sorted((shared / "data" / "grabcut50" / "im").glob("*"))[:4]
    alphas = {}

    def read(path):
        picture = io.read_image(path)
        return predictor.prepare(picture.pixels), picture

    def write(path, picture, y):
        alphas[path] = refine.mask_from_prediction(picture.pixels, y)

    settings = layout.plan(predictor)
    assert settings["device"] == "cpu" and settings["batch"] == 1
    report = pipeline.run_pipeline(paths, read, predictor, write, **settings)
    assert report.done == 4
    for path in paths:
        expected = answer.predict_mask(predictor, io.read_image(path).pixels)
        assert alphas[path].shape == expected.shape
        assert np.abs(alphas[path] - expected).max() < 1e-4


def test_post_runs_in_the_workers_and_its_result_is_written():
    names, written = set(), {}

    def post(item, context, y):
        names.add(threading.current_thread().name)
        if item == 4:
            raise MattekitError("Cannot finish 4.")
        return float(y[0, 0, 0, 0]) + 0.5

    report = pipeline.run_pipeline(
        range(12), _read, _double, lambda item, c, r: written.__setitem__(item, r), workers=2, post=post, ordered=True
    )
    assert written == {i: 2.0 * i + 0.5 for i in range(12) if i != 4}
    assert [(item, str(exc)) for item, exc in report.failed] == [(4, "Cannot finish 4.")]
    assert names and all(n.startswith("mattekit-infer-") for n in names)


def test_without_an_inference_stage_read_goes_straight_to_write():
    """infer=None: no inference threads run; write gets read's x as y (None included), in input order when
    ordered; a failed read is counted and skipped in place; cancel stops reading."""
    written, names = [], set()

    def read(i):
        if i == 3:
            raise MattekitError("Cannot read 3.")
        return (None if i % 2 else f"x{i}"), {"item": i}

    def write(item, context, y):
        names.update(thread.name for thread in threading.enumerate())
        assert context["item"] == item and y == (None if item % 2 else f"x{item}")
        written.append(item)

    report = pipeline.run_pipeline(range(40), read, None, write, workers=4, ordered=True)
    assert written == [i for i in range(40) if i != 3] and report.done == 39
    assert [(item, str(exc)) for item, exc in report.failed] == [(3, "Cannot read 3.")]
    assert "mattekit-write-0" in names and not any(name.startswith("mattekit-infer") for name in names)
    written.clear()
    report = pipeline.run_pipeline(range(1000), read, None, write, writers=2, cancel=lambda: len(written) >= 5)
    assert report.cancelled and report.done == len(written) < 1000


def test_a_task_without_a_network_input_runs_whole_in_the_writer(tmp_path):
    """The runner gives a task that does not stream (enhance: no model) a pipeline with no inference stage: each
    image is read in the reader and enhanced in the writer, as ``task.run`` enhances it."""
    from mattekit.running.runner import Runner
    from mattekit.tasks import enhance

    rng = np.random.default_rng(5)
    images = [rng.random((24, 32, 3), dtype=np.float32) for _ in range(3)]
    options = enhance.TASK.make_options({})
    stored, names = {}, set()

    def store(item, kept, result):
        names.update(thread.name for thread in threading.enumerate())
        stored[item] = result["image"]

    result = Runner(enhance.TASK, {}, options).run(range(3), lambda i: ({"image": images[i]}, None), store)
    assert result.done == 3 and not result.failed
    assert not any(name.startswith("mattekit-infer") for name in names)
    for i, image in enumerate(images):
        np.testing.assert_array_equal(stored[i], enhance.TASK.run({}, {"image": image}, options)["image"])
