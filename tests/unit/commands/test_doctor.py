"""`mattekit doctor`: the machine and, per catalog model, the device, engine and precision it runs with."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from mattekit import catalog
from mattekit.cli import main


def table(out: str) -> dict[str, list[str]]:
    """{model: [model, task, weights, device, engine, precision, layout, why this engine]}: the columns cut where the
    header's names start (a value may hold spaces: "on disk", "in mirror", "measured (shipped for ...): ...")."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("model "))
    header = lines[start]
    names = ("model", "task", "weights", "device", "engine", "precision", "layout", "why this engine")
    cuts = [header.index(name) for name in names] + [None]
    end = next((i for i, line in enumerate(lines) if line.startswith("the plan of ")), len(lines))
    rows = [[line[a:b].strip() for a, b in zip(cuts, cuts[1:])] for line in lines[start + 1 : end]]
    return {row[0]: row for row in rows}


# Facts of docs/benchmarks.md's "CPU engine choice" (bench engines, 2026-11-24), copied by hand: per CPU class,
# model -> (torch / ONNX Runtime CPU time, the engine `auto` takes there: torch only where ONNX Runtime takes 5 % more).
# The shipped table must say the same.
DOCUMENTED = {
    "x86_64-avx2": {
        "u2netp": (1.35, "onnx"),
        "u2net": (1.19, "onnx"),
        "modnet-portrait": (1.54, "onnx"),
        "csnet-sod": (1.35, "onnx"),
    },
    "x86_64-avx512_bf16": {
        "u2netp": (1.09, "onnx"),
        "u2net": (1.01, "onnx"),
        "u2net-human-seg": (0.99, "onnx"),
        "extremec3-portrait": (1.65, "onnx"),
    },
}
SAM2 = ("sam2.1-hiera-tiny", "sam2.1-hiera-small", "sam2.1-hiera-base-plus", "sam2.1-hiera-large")  # torch only:
# no single-tensor forward to export to ONNX (catalog.toml pins them)


def _ratio(why: str) -> float:
    """The ratio of a "measured (...): torch 1.35x ONNX Runtime's time" reason."""
    return float(why.split(": torch ", 1)[1].split("x", 1)[0])


def test_doctor_plans_every_model_on_the_cpu_in_fp32_but_those_marked_cpu_bf16(capsys, monkeypatch):
    """On a CPU claiming native bf16, every model runs in fp32 (the catalog marks none cpu_bf16 today); the machine
    lines come first and name torch's build; each row's engine is torch or ONNX Runtime, with a reason."""
    monkeypatch.setenv("MATTEKIT_CPU_BF16", "1")
    assert main(["doctor", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("CPU: ") and "native bf16: yes" in out and f"torch {torch.__version__}" in out
    rows = table(out)
    assert set(rows) == set(catalog.load().models) and set(SAM2) <= set(rows)
    assert not [name for name, entry in catalog.load().models.items() if entry.cpu_bf16]
    for name, row in rows.items():
        device, engine, precision, layout, why = row[3:8]
        assert device == "cpu" and precision == "fp32" and engine in ("torch", "onnx"), row
        assert why and "x" in layout, row
    for name in SAM2:
        assert rows[name][4:8:3] == ["torch", "the catalog: this model runs on torch only"], rows[name]


@pytest.mark.parametrize("cpu", sorted(DOCUMENTED))
def test_doctor_takes_the_engine_the_documented_measurements_chose(cpu, capsys, monkeypatch):
    """On each CPU class of the documented engine tables (MATTEKIT_CPU_CLASS names it), the engine the docs say
    `auto` takes there, by the documented ratio, from the shipped table."""
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("MATTEKIT_CPU_CLASS", cpu)
    assert main(["doctor", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"shipped table: read for CPU class {cpu}" in out
    rows = table(out)
    for name, (ratio, engine) in DOCUMENTED[cpu].items():
        why = rows[name][7]
        assert rows[name][4] == engine and why.startswith(f"measured (shipped for {cpu}): torch "), rows[name]
        assert _ratio(why) == pytest.approx(ratio, abs=0.011), rows[name]


def test_doctor_follows_this_machines_own_measurements(capsys, monkeypatch):
    """Measurements saved for this machine (forged here, under its fingerprint, in this test's MATTEKIT_HOME) decide
    before the shipped table: torch where ONNX Runtime takes 5 % more, ONNX Runtime otherwise (torch 4 % faster
    too); a catalog pin wins over any figure; an unmeasured model follows the evidence; another fingerprint's figures
    are not this machine's."""
    pytest.importorskip("onnxruntime")
    from mattekit.engines import plan

    monkeypatch.setenv("MATTEKIT_CPU_CLASS", "test-cpu")
    forged = {
        "csnet-sod": {"ratio": 1.06},
        "modnet-portrait": {"ratio": 0.96},
        "extremec3-portrait": {"ratio": 2.0},
        "sinet-portrait": {"ratio": 0.7},
        "sam2.1-hiera-tiny": {"ratio": 9.0},
    }
    own = Path(os.environ["MATTEKIT_HOME"]) / "engines.json"
    own.write_text(json.dumps({plan.fingerprint(): forged, "x86_64-avx2": {"u2netp": {"ratio": 0.5}}}))
    expected = {"csnet-sod": "onnx", "modnet-portrait": "onnx", "extremec3-portrait": "onnx", "sinet-portrait": "torch"}
    assert main(["doctor", "--device", "cpu"]) == 0
    rows = table(capsys.readouterr().out)
    for name, engine in expected.items():
        ratio = forged[name]["ratio"]
        assert rows[name][4:8:3] == [engine, f"measured (this machine): torch {ratio:.2f}x ONNX Runtime's time"], rows[
            name
        ]
    assert rows["sam2.1-hiera-tiny"][4:8:3] == ["torch", "the catalog: this model runs on torch only"]
    assert rows["u2net"][7] == plan.EVIDENCE and rows["isnet-general-use"][7] == plan.EVIDENCE  # other classes only
    assert rows["u2netp"][4:8:3] == ["onnx", plan.EVIDENCE]  # a CPU class's key is not this machine's fingerprint


def test_doctor_names_the_onnx_engine_when_asked_for(capsys, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("MATTEKIT_BACKEND", "onnx")
    assert main(["doctor", "--device", "cpu", "--task", "matte"]) == 0
    rows = table(capsys.readouterr().out)
    assert rows and all(row[1] == "matte" for row in rows.values())
    assert rows["modnet-portrait"][4] == "onnx"


@pytest.mark.cuda  # its answer depends on the GPU: --full lets it skip on a machine that has one
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_doctor_for_an_absent_gpu_is_one_sentence(capsys):
    """A model asked to run on CUDA where there is none is refused in one sentence, never planned on the CPU."""
    assert main(["doctor", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "mattekit: error: Device 'cuda' was asked for but this machine has no usable CUDA GPU; use --device cpu or auto."
    )


def test_doctor_prints_a_models_whole_plan_with_reasons_and_the_default_on_cuda(capsys, monkeypatch):
    """Below the table, every field of one model's plan (engines.plan.decide: device, engine, precision, compile,
    release, layout, finish, temporal filter) with its reason, as the readers of the plan get it; on a GPU (planned
    here: it reports CUDA) the finish and the filter go to the model's device and the batches are padded; then which
    segmentation model is the default on CUDA, and why."""
    from gpu_plans import planned_on_a_gpu

    with monkeypatch.context() as on_gpu:
        planned_on_a_gpu(on_gpu)
        assert main(["doctor", "--model", "u2netp"]) == 0
    out = capsys.readouterr().out
    block = out[out.index("the plan of u2netp for --device auto") :].splitlines()
    fields = {line.split()[0]: line.split(None, 1)[1] for line in block[1:9]}
    assert list(fields) == ["device", "engine", "precision", "compile", "release", "layout", "finish", "temporal"]
    assert fields["device"].startswith("cuda; why: auto: a GPU torch can use")
    assert "batch 8 of one shape" in fields["layout"] and "why: a GPU on" in fields["layout"]
    assert fields["finish"].startswith("cuda; why: the model's GPU for photos of 1 MP and up")
    assert fields["temporal"].startswith("cuda; why: the model's GPU at any size")
    assert block[9].startswith(f"default segmentation model on CUDA: {catalog.load().default('segment').name}")
    assert main(["doctor", "--device", "cpu", "--model", "u2netp"]) == 0
    out = capsys.readouterr().out
    assert "  finish    CPU cores; why: the CPU cores' own path" in out and "batch 1, 1 reader(s)" in out
