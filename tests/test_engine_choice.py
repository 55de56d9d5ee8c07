"""The CPU engine per model is chosen by measurement (mattekit.engines.choice): the shipped table, this machine's
own table first, the old rule for models not measured on a CPU class, and the bench that makes the tables."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from mattekit import catalog
from mattekit.cli import main
from mattekit.engines import choice, policy
from mattekit.machine import cpu_info
from mattekit.runtime import Predictor

CPU = torch.device("cpu")


def test_cpu_class_names_the_widest_vector_feature(monkeypatch):
    found = choice.cpu_class()
    assert re.fullmatch(r"[a-z0-9_]+(-(avx512_bf16|avx512|avx2))?", found), found
    if found.startswith("x86_64") and "avx2" in (cpu_info() or ("", frozenset()))[1]:
        assert found != "x86_64", "an AVX2 CPU is at least x86_64-avx2"
    monkeypatch.setenv("MATTEKIT_CPU_CLASS", "x86_64-avx512_bf16")
    assert choice.cpu_class() == "x86_64-avx512_bf16"


def test_the_shipped_table_decides_for_a_measured_model_and_the_old_rule_for_others(monkeypatch):
    shipped = json.loads(choice.SHIPPED.read_text())
    assert "x86_64-avx2" in shipped and "u2netp" in shipped["x86_64-avx2"]
    for cpu, rows in shipped.items():
        for model, row in rows.items():
            catalog.load().get(model)  # every measured model is a catalog model
            assert row["ratio"] == pytest.approx(row["torch_s"] / row["onnx_s"], rel=0.01), (cpu, model)
    monkeypatch.setenv("MATTEKIT_CPU_CLASS", "x86_64-avx2")
    expected = "onnx" if shipped["x86_64-avx2"]["u2netp"]["ratio"] >= choice.MARGIN else "torch"
    assert policy.resolve_backend("auto", CPU, "u2netp") == expected
    old_rule = "torch" if policy.nnpack_available() else "onnx"
    assert "birefnet-general" not in shipped["x86_64-avx2"]
    assert policy.resolve_backend("auto", CPU, "birefnet-general") == old_rule  # not measured: the old rule
    monkeypatch.setenv("MATTEKIT_CPU_CLASS", "x86_64-avx512")  # a class nobody measured: the old rule for every model
    assert policy.resolve_backend("auto", CPU, "u2netp") == old_rule
    assert policy.resolve_backend("torch", CPU, "u2netp") == "torch"  # asked for: no table overrides it
    assert policy.resolve_backend("auto", torch.device("meta"), "u2netp") == "torch"  # not a CPU: torch


def test_this_machines_table_wins_and_a_small_margin_keeps_torch(monkeypatch):
    monkeypatch.setenv("MATTEKIT_CPU_CLASS", "x86_64-avx2")
    choice.save({"u2netp": {"torch_s": 1.0, "onnx_s": 1.0 / (choice.MARGIN - 0.01), "ratio": choice.MARGIN - 0.01}})
    assert choice.measured("u2netp")[1] == "this machine"
    assert policy.resolve_backend("auto", CPU, "u2netp") == "torch"
    choice.save({"u2netp": {"torch_s": 2.0, "onnx_s": 1.0, "ratio": 2.0}})
    assert policy.resolve_backend("auto", CPU, "u2netp") == "onnx"
    # bf16 asked for: ONNX Runtime runs fp32 only here, so auto gives torch whatever the table says
    assert policy.resolve_backend("auto", CPU, "u2netp", "bf16") == "torch"
    monkeypatch.setenv("MATTEKIT_PRECISION", "bf16")
    assert policy.resolve_backend("auto", CPU, "u2netp") == "torch"
    monkeypatch.delenv("MATTEKIT_PRECISION")
    assert policy.resolve_backend("auto", CPU, "u2netp", "fp32") == "onnx"
    choice.own_table_path().write_text("not json")  # a damaged table is no table: the shipped one decides
    assert choice.measured("u2netp")[1] == "shipped"


@pytest.mark.needs_data
def test_the_onnx_engine_auto_picks_keeps_the_answer_on_real_weights(shared, monkeypatch):
    """u2netp's real weights on a real photo: the engine ``auto`` runs here gives the torch engine's prediction."""
    monkeypatch.setenv("MATTEKIT_CPU_CLASS", "x86_64-avx2")
    entry = catalog.load().get("u2netp")
    weights = shared / "weights" / "u2netp.onnx"
    auto = Predictor(entry, CPU, weights)
    assert choice.winner("u2netp") == "onnx" and auto.backend.startswith("onnx"), auto.backend  # e.g. onnx-cpu-fp32
    photo = next(iter(sorted((shared / "data" / "grabcut50" / "im").iterdir())))
    image = np.asarray(Image.open(photo).convert("RGB"), np.float32) / 255
    x = auto.prepare(image)  # a numpy array: the ONNX engine runs without torch
    reference = Predictor(entry, CPU, weights, backend="torch")
    assert reference.backend.startswith("torch"), reference.backend
    assert isinstance(x, np.ndarray) and isinstance(reference.prepare(image), torch.Tensor)
    raw = auto.engine(torch.from_numpy(x)).float(), reference.engine(torch.from_numpy(x)).float()
    assert float((raw[0] - raw[1]).abs().max()) < 1e-4
    # the numpy path's activation (minmax, 8-bit rounding) gives the torch path's prediction exactly
    assert isinstance(auto(x), np.ndarray) and np.array_equal(auto(x), auto(torch.from_numpy(x)).numpy())


@pytest.mark.slow
@pytest.mark.needs_data
def test_bench_engines_measures_prints_and_saves(shared, capsys, monkeypatch):
    monkeypatch.setenv("MATTEKIT_CPU_CLASS", "test-class")
    code = main(["bench", "engines", "--model", f"sinet-portrait={shared / 'weights' / 'SINet.pth'}", "--repeat", "1",
                 "--save"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "CPU class test-class" in out and "sinet-portrait" in out and "saved:" in out
    row = json.loads(choice.own_table_path().read_text())["test-class"]["sinet-portrait"]
    assert row["torch_s"] > 0 and row["onnx_s"] > 0 and row["max_diff"] < 1e-4
    assert policy.resolve_backend("auto", CPU, "sinet-portrait") == ("onnx" if row["ratio"] >= choice.MARGIN else "torch")
