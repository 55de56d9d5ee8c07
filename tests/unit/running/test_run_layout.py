"""A run's layout (mattekit.running.layout), decided once: the pipeline's stages and why, the finish's device asked
once per item and passed along."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from mattekit import catalog, runtime
from mattekit.engines import plan as plans
from mattekit.engines.onnx import OnnxEngine
from mattekit.running import layout
from mattekit.tasks import remove


def _u2netp(shared, engine=None) -> runtime.Predictor:
    """u2netp planned on the CPU, run by ``engine`` (default: ONNX Runtime on the mirror's export)."""
    entry = catalog.load().get("u2netp")
    path = shared / "weights" / "u2netp.onnx"
    engine = engine or OnnxEngine(lambda: None, (), path, example=(320, 320), dynamic_size=False)
    return runtime.Predictor(entry, plans.decide(entry, "cpu"), (engine, path))


@pytest.mark.needs_data
def test_a_run_of_several_photos_and_of_one_each_say_why_they_are_laid_out_so(shared):
    models = {"model": _u2netp(shared)}
    several = layout.decide(remove.TASK, models, [1, 2, 3])
    one = layout.decide(remove.TASK, models, [1], single=True)
    assert several.stages["batch"] <= 3 and one.stages["workers"] == 1 and one.stages["batch"] == 1
    assert one.why["stages"].startswith("one worker with every thread: one item")
    assert one.why["finish"] == "on the CPU cores"
    assert set(several.why) == {"stages", "finish"} and all(several.why.values())
    hinted = layout.decide(remove.TASK, {}, [1, 2, 3])  # remove answered by the hint model: the task runs whole
    assert hinted.infer is None and hinted.stages == {} and hinted.device_for(np.zeros((9, 9, 3))) is None


@pytest.mark.needs_data
def test_the_finish_device_is_asked_once_per_photo(shared, tmp_path, monkeypatch):
    """A `remove` run of 3 photos on u2netp asks mattekit.finish.device.device_of 3 times: once per photo, its answer
    passed to the finish."""
    from mattekit.finish import device as finish_device
    from mattekit.running.runner import Runner

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
