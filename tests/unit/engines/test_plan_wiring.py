"""The quick subset's wiring check of a model's plan (issue 91; the full suite's slower ones: tests/bench/
test_simulated.py, tests/unit/engines/test_engine_choice.py): a run's models are planned with the engine ``mattekit
doctor`` names for them, and the steps that follow the model get the devices its plan names for them."""

from __future__ import annotations

import cv2
import torch
from gpu_plans import recorded_devices, simulated_gpu
from plates import make_plate

import mattekit
from mattekit import api, catalog
from mattekit.cli import main
from mattekit.io import read_image


def test_a_run_takes_the_engine_doctor_names_and_its_plans_finish_and_filter_devices(
    shared, monkeypatch, tmp_path, capsys
):
    """The engine of the default model for a run on the CPU is the one ``mattekit doctor --device cpu`` prints (a
    plan, no load: ONNX Runtime's export takes seconds). On the bench's simulated GPU (its plan: the finish held on the
    device, roto's filter on torch's CPU device), a 1 MP photo's finish (remove) and roto's temporal filter are handed
    the devices the loaded model's plan names (a model on the CPU names none: tests/unit/finish/test_finish_device.py,
    tests/unit/roto/test_temporal.py)."""
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    assert main(["doctor", "--device", "cpu", "--task", "segment"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("model "))
    column = slice(header.index(" engine ") + 1, header.index(" precision "))
    engine = next(line[column].strip() for line in lines if line.startswith("u2netp "))
    assert api.models_cache().plan(catalog.load().get("u2netp"), "cpu").engine == engine

    mattekit.clear_models()  # a model an earlier test of this process loaded on the CPU is not this run's
    simulated_gpu(monkeypatch)
    finishes, filters = recorded_devices(monkeypatch)
    photo = read_image(sorted((shared / "data" / "grabcut50" / "im").iterdir())[0], integers=True).pixels
    photo = cv2.resize(photo, (1200, 900), interpolation=cv2.INTER_AREA)
    plate = make_plate(shared, tmp_path / "plate", 3, size=(64, 36))
    mattekit.remove_background(photo, model="u2netp", matting=False)
    mattekit.rotoscope(plate, tmp_path / "m.####.png", model="u2netp", radius=1)
    plans = {(p.plan.finish, p.plan.temporal) for p in api.models_cache().loaded()}
    mattekit.clear_models()  # nor is this run's simulated model a later test's
    assert len(plans) == 1, plans
    ((finish, temporal),) = plans
    assert finish and temporal  # (the simulated GPU's plan names both)
    assert finishes == [finish] and filters == [torch.device(temporal)], (finishes, filters)
