"""The one sentence said when a model runs on the CPU although a GPU is there: why, once per process, never without
a GPU. This machine has none: the GPU is emulated, by a stand-in nvidia-smi on PATH or by the facts
:func:`mattekit.engines.gpus.found` reports."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest
import torch

from mattekit import machine
from mattekit.wire import client
from mattekit.cli import main
from mattekit.engines import gpus
from mattekit.worker import service
from mattekit.options import model_choice

H100 = gpus.GPUs(
    cuda=(("NVIDIA H100 80GB HBM3", 79.2),), nvidia=(("NVIDIA H100 80GB HBM3", "580.65.06"),), torch_cuda="13.0"
)
MAC = gpus.GPUs(mps=True)
DRIVER_ONLY = gpus.GPUs(nvidia=(("NVIDIA GeForce RTX 4090", "575.51.03"),))  # a CPU-only torch on a GPU machine


@pytest.fixture
def mirror(shared, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")


def test_nvidia_smis_lines_are_read_as_name_and_driver():
    text = "NVIDIA GeForce RTX 4090, 575.51.03\nTesla T4, 535.104.05\n\nNo devices were found\n"
    assert machine.parse_nvidia_smi(text) == [("NVIDIA GeForce RTX 4090", "575.51.03"), ("Tesla T4", "535.104.05")]
    assert machine.parse_nvidia_smi("") == []


@pytest.mark.parametrize(
    "found, asked, engine, expected",
    [
        (gpus.GPUs(), "cpu", "torch-cpu-fp32", None),  # no GPU: nothing to say
        (H100, "cpu", "torch-cpu-fp32", "the device 'cpu' was asked for"),
        (MAC, "cpu", "onnx-cpu-fp32", "the device 'cpu' was asked for"),
        (H100, "auto", "onnx-cpu-fp32", "its engine, ONNX Runtime, runs on the CPU only"),
        (MAC, "auto", "onnx-cpu-fp32", "its engine, ONNX Runtime, runs on the CPU only"),
        (DRIVER_ONLY, "auto", "torch-cpu-fp32", "is a CPU-only build"),
        (
            gpus.GPUs(nvidia=(("Tesla K80", "470.82.01"),), torch_cuda="13.0"),
            "auto",
            "torch-cpu-fp32",
            "built for CUDA 13.0, cannot use it (driver 470.82.01",
        ),
    ],
)
def test_the_reason_follows_the_facts(found, asked, engine, expected):
    reason = gpus.idle_reason(found, asked, engine)
    assert reason is None if expected is None else expected in reason


@pytest.mark.parametrize("found, said", [(H100, True), (MAC, True), (gpus.GPUs(), False)])
def test_the_cli_says_it_once_with_device_cpu_and_never_without_a_gpu(
    found, said, shared, mirror, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(gpus, "found", lambda ask_torch=True: found)
    photo = shared / "data/grabcut50/im/teddy.jpg"  # two photos with one model, then another model: one sentence
    code = max(
        main(["remove", str(photo), "-o", str(tmp_path / f"{n}.png"), "--model", model, "--device", "cpu"])
        for n, model in enumerate(("u2netp", "u2netp", "csnet-sod"))
    )
    err = capsys.readouterr().err
    assert code == 0, err
    lines = [line for line in err.splitlines() if "runs on the CPU" in line]
    if said:
        assert lines == [
            f"mattekit: {found.name()} is here but u2netp runs on the CPU: the device 'cpu' was asked for "
            f"(--device cpu, or the job's device option)."
        ], err
    else:
        assert lines == [], err


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_a_gpu_torch_cannot_use_is_said_by_a_real_run(shared, tmp_path):
    """A real process with a stand-in nvidia-smi on PATH and no CUDA device visible to torch: `remove` with the
    default device says why the GPU is idle (a CPU-only torch build here; with a CUDA build, that torch cannot
    use it); when nvidia-smi finds no GPU (it shadows any real one), nothing."""
    with_gpu, without = tmp_path / "gpu", tmp_path / "none"
    for folder, script in (
        (with_gpu, "echo 'NVIDIA GeForce RTX 4090, 575.51.03'"),
        (without, "echo 'No devices were found'; exit 6"),
    ):
        folder.mkdir()
        (folder / "nvidia-smi").write_text(f"#!/bin/sh\n{script}\n")
        (folder / "nvidia-smi").chmod(0o755)
    why = "this torch" if torch.version.cuda is None else f"torch, built for CUDA {torch.version.cuda}, cannot use it"
    photo = shared / "data/grabcut50/im/teddy.jpg"
    for folder, said in ((with_gpu, True), (without, False)):
        env = dict(
            os.environ,
            PATH=f"{folder}{os.pathsep}{os.environ['PATH']}",
            MATTEKIT_MIRROR=str(shared / "weights"),
            MATTEKIT_OFFLINE="1",
            CUDA_VISIBLE_DEVICES="",
        )
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "mattekit",
                "remove",
                str(photo),
                "-o",
                str(tmp_path / f"{said}.png"),
                "--model",
                "u2netp",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        lines = [line for line in done.stderr.splitlines() if "runs on the CPU" in line]
        assert len(lines) == (1 if said else 0), done.stderr
        if said:
            assert lines[0].startswith(f"mattekit: NVIDIA GeForce RTX 4090 is here but u2netp runs on the CPU: {why}")


def test_the_worker_says_it_once_for_its_jobs(shared, mirror, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpus, "found", lambda ask_torch=True: H100)
    srv = service.WorkerServer(
        state_file=str(tmp_path / "state" / "worker.json"), idle_timeout=None, log=lambda text: None, threads=1
    ).start_background()
    try:
        worker = client.WorkerClient(srv.url, srv.token, timeout=120)
        photo = np.zeros((32, 48, 3), np.uint8)
        pixels = client.Pixels(photo.tobytes(), 48, 32, 3, "u8")
        for _ in range(2):
            worker.run("remove", [pixels], {"model": "u2netp", "device": "cpu", "result": "alpha"})
    finally:
        srv.stop(wait=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if "runs on the CPU" in line]
    assert lines == [
        "mattekit: NVIDIA H100 80GB HBM3 is here but u2netp runs on the CPU: the device 'cpu' was asked "
        "for (--device cpu, or the job's device option)."
    ]


def test_an_engine_without_gpu_support_is_the_reason_given(shared, mirror, tmp_path, monkeypatch, capsys):
    """u2netp runs on ONNX Runtime here (the engine measured faster on this CPU class, or the mirror's .onnx file)."""
    monkeypatch.setattr(gpus, "found", lambda ask_torch=True: MAC)
    monkeypatch.setenv("MATTEKIT_BACKEND", "onnx")
    assert (
        main(
            ["remove", str(shared / "data/grabcut50/im/teddy.jpg"), "-o", str(tmp_path / "t.png"), "--model", "u2netp"]
        )
        == 0
    )
    lines = [line for line in capsys.readouterr().err.splitlines() if "runs on the CPU" in line]
    assert lines == [
        "mattekit: Apple MPS is here but u2netp runs on the CPU: its engine, ONNX Runtime, runs on the CPU "
        "only (the weights are an ONNX file, or the onnx backend was chosen)."
    ]


def test_doctor_names_a_gpu_torch_cannot_use(monkeypatch, capsys):
    monkeypatch.setattr(gpus, "found", lambda ask_torch=True: DRIVER_ONLY)
    assert main(["doctor", "--device", "cpu", "--task", "segment"]) == 0
    out = capsys.readouterr().out
    assert (
        "  nvidia-smi lists NVIDIA GeForce RTX 4090 (driver 575.51.03) but torch cannot use it: this torch "
        f"({metadata.version('torch')}) is a CPU-only build"
    ) in out  # the installed version (no import to read it)


def test_the_gpus_are_asked_for_once_per_process(shared, mirror, monkeypatch):
    """Each CPU model load while nothing has been said asks whether a GPU is there: nvidia-smi runs on the first
    only (the real subprocess call, counted), and again after :func:`mattekit.engines.gpus.forget`."""
    from mattekit import runtime

    real_run, asked = subprocess.run, []

    def counted(command, *args, **kwargs):
        if list(command) == list(machine.NVIDIA_SMI_QUERY):
            asked.append(command)
        return real_run(command, *args, **kwargs)

    monkeypatch.setattr(machine.subprocess, "run", counted)
    for model in ("u2netp", "u2netp", "csnet-sod"):  # a fresh cache each time (its owner says the notices): three loads
        runtime.ModelCache(say=lambda sentence: None).get(model_choice(model, "segment"), "cpu")
    assert len(asked) == 1
    gpus.forget()
    runtime.ModelCache(say=lambda sentence: None).get(model_choice("u2netp", "segment"), "cpu")
    assert len(asked) == 2


def test_an_explicit_cpu_names_the_gpu_without_asking_torch(monkeypatch, capsys):
    """With ``--device cpu`` on a machine whose torch is built for CUDA, the GPU's name comes from nvidia-smi: torch is
    not asked (its import costs 1.3-2 s, and the reason needs no more than the name); with ``auto`` it is asked."""
    monkeypatch.setattr(gpus, "gpu_possible", lambda: True)
    monkeypatch.setattr(machine, "nvidia_gpus", lambda: [("NVIDIA H100 80GB HBM3", "580.159.04")])
    torch_asked = []
    monkeypatch.setattr(gpus, "mps_available", lambda: torch_asked.append(True) or False)  # only on torch's branch
    sentence = gpus.idle_sentence("u2netp", "cpu", "cpu", "onnx-cpu-fp32")
    assert sentence == (
        "mattekit: NVIDIA H100 80GB HBM3 is here but u2netp runs on the CPU: the device 'cpu' was "
        "asked for (--device cpu, or the job's device option)."
    )
    assert torch_asked == [] and gpus.idle_sentence("u2netp", "cpu", "cpu", "onnx-cpu-fp32") is None  # said once
    assert capsys.readouterr().err == ""  # the runtime says nothing itself: its owner does (ModelCache's say)
    gpus.forget()
    gpus.idle_sentence("u2netp", "auto", "cpu", "onnx-cpu-fp32")
    assert torch_asked == [True]
