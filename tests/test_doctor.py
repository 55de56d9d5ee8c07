"""`mattekit doctor`: the machine and, per catalog model, the device, engine and precision it runs with."""
from __future__ import annotations

import pytest
import torch

from mattekit import catalog
from mattekit.cli import main


def table(out: str) -> dict[str, list[str]]:
    """{model: [model, task, weights, device, engine, precision, why this engine]}: the columns cut where the
    header's names start (a value may hold spaces: "on disk", "in mirror", "measured (shipped): ...")."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("model "))
    header = lines[start]
    names = ("model", "task", "weights", "device", "engine", "precision", "why this engine")
    cuts = [header.index(name) for name in names] + [None]
    rows = [[line[a:b].strip() for a, b in zip(cuts, cuts[1:])] for line in lines[start + 1:]]
    return {row[0]: row for row in rows}


def test_doctor_plans_every_model_on_the_cpu_in_fp32_but_those_marked_cpu_bf16(capsys, monkeypatch):
    """On a CPU claiming native bf16, every model runs in fp32 but those the catalog marks cpu_bf16 (none today),
    which would run in bf16 on torch; the machine lines come first and name torch's build."""
    monkeypatch.setenv("MATTEKIT_CPU_BF16", "1")
    assert main(["doctor", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("CPU: ") and "native bf16: yes" in out and f"torch {torch.__version__}" in out
    rows = table(out)
    assert set(rows) == set(catalog.load().models)
    for name, row in rows.items():
        device, engine, precision, why = row[3:7]
        if catalog.load().get(name).cpu_bf16:
            assert (engine, precision, why) == ("torch", "bfloat16", "bf16 (catalog, native here)"), row
            continue
        assert device == "cpu" and precision == "float32", row
        assert engine == catalog.load().get(name).extra.get("backend", engine) and engine in ("torch", "onnx"), row
        if why.startswith("measured"):  # "measured (shipped): torch/onnx 1.35x": ONNX Runtime from 5 % faster on
            assert engine == ("onnx" if float(why.split()[-1].rstrip("x")) >= 1.05 else "torch"), row
        else:
            assert why in ("rule", "catalog"), row


def test_doctor_names_the_onnx_engine_when_asked_for(capsys, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("MATTEKIT_BACKEND", "onnx")
    assert main(["doctor", "--device", "cpu", "--task", "matte"]) == 0
    rows = table(capsys.readouterr().out)
    assert rows and all(row[1] == "matte" for row in rows.values())
    assert rows["modnet-portrait"][4] == "onnx"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_doctor_for_an_absent_gpu_is_one_sentence(capsys):
    """A model asked to run on CUDA where there is none is refused in one sentence, never planned on the CPU."""
    assert main(["doctor", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "mattekit: error: Device 'cuda' was asked for but this machine has no usable CUDA GPU; use --device cpu or auto."
