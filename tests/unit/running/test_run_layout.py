"""A run's layout (mattekit.running.layout), decided once: writing processes or not and why, the finish's device
asked once per item and passed along, and what holds at the writing processes' fork."""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from forks import at_forks
from mattekit import catalog, runtime
from mattekit.engines import plan as plans
from mattekit.engines.onnx import OnnxEngine
from mattekit.ops import regions
from mattekit.running import layout
from mattekit.tasks import remove

FORKS = layout.processes_for({}, 2)[0]


def test_processes_only_for_several_items_in_any_order_each_choice_with_its_reason():
    stages = {"ordered": False}
    assert layout.processes_for(stages, 1) == (0, "none: one item")
    assert layout.processes_for(stages, None) == (0, "none: the items' count is not known")
    assert layout.processes_for({"ordered": True}, 10) == (0, "none: the items are written in order, by one writer")
    count, why = layout.processes_for(stages, 10)
    assert (count > 0) == sys.platform.startswith("linux") and why


def _u2netp(shared, engine=None) -> runtime.Predictor:
    """u2netp planned on the CPU, run by ``engine`` (default: ONNX Runtime on the mirror's export)."""
    entry = catalog.load().get("u2netp")
    path = shared / "weights" / "u2netp.onnx"
    engine = engine or OnnxEngine(lambda: None, (), path, example=(320, 320), dynamic_size=False)
    return runtime.Predictor(entry, plans.decide(entry, "cpu"), (engine, path))


@pytest.mark.needs_data
def test_a_run_of_several_photos_forks_writers_and_says_why_one_photo_does_not(shared, monkeypatch):
    models = {"model": _u2netp(shared)}
    several = layout.decide(remove.TASK, models, [1, 2, 3])
    one = layout.decide(remove.TASK, models, [1], single=True)
    assert several.processes == FORKS and several.stages["writers"] == max(FORKS, several.on_device)
    assert several.stages["batch"] <= 3 and one.stages["workers"] == 1 and one.processes == 0
    assert one.why["processes"] == "none: one item" and one.why["finish"] == "on the CPU cores"
    assert set(several.why) == {"stages", "processes", "finish"} and all(several.why.values())
    hinted = layout.decide(remove.TASK, {}, [1, 2, 3])  # remove answered by the hint model: the task runs whole
    assert hinted.infer is None and hinted.processes == 0 and hinted.device_for(np.zeros((9, 9, 3))) is None


def _tiles_and_threads(array: np.ndarray, tag: str) -> tuple[set, int]:
    """(the threads a writing process spreads 8 tiles over, OpenCV's thread count there)."""
    import cv2

    return set(regions.each_tile(lambda t: (time.sleep(0.01), threading.current_thread().name)[1], range(8))), int(
        cv2.getNumThreads()
    )


@pytest.mark.needs_data
@pytest.mark.skipif(not FORKS, reason="this system does not fork")
def test_the_writers_fork_once_the_models_have_loaded_with_opencvs_pool_stopped_and_spread_no_tiles(
    shared, monkeypatch
):
    """An ONNX engine loads its first session on a thread of its own (made 0.5 s slower here, so that it is still
    loading when the run begins); the layout forks the writing processes only once it has loaded, with OpenCV's pool
    stopped (restarted after); each process runs a finish's tiles in its own thread, while this process still
    spreads them over threads."""
    import cv2
    import onnxruntime

    monkeypatch.setattr(regions, "cpu_count", lambda: 4)
    made, loading = onnxruntime.InferenceSession, []

    def slow(*args, **kwargs):
        loading.append(1)
        time.sleep(0.5)
        try:
            return made(*args, **kwargs)
        finally:
            loading.pop()

    monkeypatch.setattr(onnxruntime, "InferenceSession", slow)
    engine = OnnxEngine(lambda: None, (), shared / "weights" / "u2netp.onnx", example=(320, 320), dynamic_size=False)
    run = layout.decide(remove.TASK, {"model": _u2netp(shared, engine)}, [1, 2, 3])
    pool = cv2.getNumThreads()
    with at_forks(lambda: (len(loading), cv2.getNumThreads())) as at_each_fork:
        with run.started(_tiles_and_threads) as writers:
            names, opencv = writers.call(np.ones(3, np.float32), "ok")
    assert at_each_fork == [(0, 1)] * run.processes and cv2.getNumThreads() == pool
    assert len(names) == 1 and opencv == 1  # (a child's OpenCV runs in its own thread)
    assert len(_tiles_and_threads(np.ones(3), "here")[0]) > 1
    assert engine(np.zeros((1, 3, 320, 320), np.float32)).shape[0] == 1


@pytest.mark.needs_data
def test_the_finish_device_is_asked_once_per_photo(shared, tmp_path, monkeypatch):
    """A `remove` run of 3 photos on u2netp in this one process (no writing processes, where every call is seen) asks
    mattekit.finish.device.device_of 3 times: once per photo, its answer passed to the finish."""
    from mattekit.finish import device as finish_device
    from mattekit.running.runner import Runner

    monkeypatch.setattr(layout, "processes_for", lambda stages, items: (0, "none: the test's"))
    planned = []
    for source in sorted((shared / "data" / "grabcut50" / "im").iterdir())[:3]:
        with Image.open(source) as picture:
            planned.append((tmp_path / f"{source.stem}.png", tmp_path / "out" / f"{source.stem}.png"))
            picture.convert("RGB").resize((120, 90)).save(planned[-1][0])
    asked, real = [], finish_device.device_of

    def counted(*args):
        asked.append(1)
        return real(*args)

    for module in list(sys.modules.values()):  # wherever it was imported
        if getattr(module, "device_of", None) is real:
            monkeypatch.setattr(module, "device_of", counted)
    runner = Runner(remove.TASK, {"model": _u2netp(shared)}, remove.TASK.make_options({}))
    result = runner.files(planned)
    assert not result.failed and all(target.is_file() for _, target in planned)
    assert len(asked) == 3
