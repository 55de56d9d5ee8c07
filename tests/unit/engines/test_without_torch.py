"""A model on ONNX Runtime on the CPU runs without importing torch (1.3-2 s of every command's start): the
torch-free plan agrees with the torch one wherever it answers, plain families are what they say, thread counts
follow torch's, and a whole ``mattekit remove`` with a cached export never imports torch."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from mattekit.engines.plan import decide
from mattekit import catalog, nets
from mattekit.engines import policy, threads
from mattekit.errors import MattekitError

CORE = str(Path(__file__).resolve().parents[3] / "core")


@pytest.mark.parametrize("cpu_class", ["x86_64-avx2", "x86_64-avx512_bf16", "x86_64", "arm64"])
def test_planning_on_the_cpu_never_imports_torch(cpu_class):
    """Every plain-family catalog model's plan on the CPU (every backend and precision, native bf16 or not, on CPUs
    of several classes) is made in a fresh process without importing torch; the measured segmentation models plan
    ONNX Runtime there, and the torch backend asked for is torch. (The other families' modules import torch.)"""
    code = f"""
import itertools, os, sys
os.environ["MATTEKIT_CPU_CLASS"] = {cpu_class!r}
from mattekit import catalog, nets
from mattekit.engines.plan import decide
from mattekit.errors import MattekitError
planned = 0
for bf16 in ("0", "1"):
    os.environ["MATTEKIT_CPU_BF16"] = bf16
    for entry, backend, precision in itertools.product(catalog.load().models.values(), ("auto", "onnx", "torch"),
                                                       ("auto", "fp32", "bf16")):
        if not nets.plain(entry.net):
            continue
        try:
            made = decide(entry, "cpu", backend, precision)
        except MattekitError:
            continue
        planned += 1
        assert made.device == "cpu", made
assert decide(catalog.load().get("u2netp"), "cpu").engine == "onnx"
assert decide(catalog.load().get("u2netp"), "cpu", "torch").engine == "torch"
assert "torch" not in sys.modules, "planning imported torch"
print(planned)
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert int(run.stdout.split()[-1]) > 50


def test_plain_families_are_plain_and_the_others_are_not():
    """:data:`mattekit.nets.PLAIN` lists the families whose descriptor takes every default, checked on each loaded
    FAMILY (the runtime then needs none of them loaded to size an input or read a prediction)."""
    for name in nets.names():
        assert nets.family(name).plain == (name in nets.PLAIN), name
        assert nets.plain(name) == (name in nets.PLAIN)


def test_gpu_possible_follows_the_torch_build():
    """A torch built for CUDA or ROCm (or macOS) may see a GPU; a CPU-only build elsewhere cannot."""
    built = torch.version.cuda is not None or getattr(torch.version, "hip", None) is not None
    assert policy.gpu_possible() == (built or sys.platform == "darwin")
    if not policy.gpu_possible():
        assert not torch.cuda.is_available()


def test_where_a_gpu_may_be_there_auto_asks_torch(monkeypatch):
    """With a torch built for CUDA (forced here: this one is a CPU-only build), ``auto`` may mean a GPU, so the plan
    asks torch for the device; an explicit ``cpu`` is planned without asking."""
    monkeypatch.setenv("MATTEKIT_CPU_CLASS", "x86_64-avx2")
    monkeypatch.setattr(policy, "gpu_possible", lambda: True)
    asked = []
    monkeypatch.setattr(policy, "select_device", lambda name: asked.append(name) or torch.device("cpu"))
    entry = catalog.load().get("u2netp")
    assert decide(entry, "auto").device == "cpu" and decide(entry, None).device == "cpu" and len(asked) == 2
    assert decide(entry, "cpu").device == "cpu" and len(asked) == 2


def test_the_onnx_backend_asked_for_runs_auto_on_the_cpu_where_a_gpu_is_there(monkeypatch):
    """With a CUDA GPU there (emulated: this torch is a CPU-only build; found on the H100, where ``auto`` with the onnx
    backend was the sentence "The onnx backend runs on the CPU only, not on cuda"), asking for the onnx backend
    (the option or ``$MATTEKIT_BACKEND``) runs ``auto`` on the CPU, planned without torch; an explicit cuda is still
    the one sentence, and the torch backend still takes the GPU."""
    monkeypatch.setenv("MATTEKIT_CPU_CLASS", "x86_64-avx2")
    monkeypatch.setattr(policy, "gpu_possible", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    entry = catalog.load().get("u2netp")
    made = decide(entry, "auto", "onnx")
    assert (made.device, made.engine) == ("cpu", "onnx") and "CPU only" in made.why("device")
    monkeypatch.setenv("MATTEKIT_BACKEND", "onnx")
    assert (decide(entry, None).device, decide(entry, None).engine) == ("cpu", "onnx")
    with pytest.raises(MattekitError, match="runs on the CPU only, not on cuda"):
        decide(entry, "cuda", "onnx")
    monkeypatch.delenv("MATTEKIT_BACKEND")
    made = decide(entry, "auto", "torch")
    assert (made.device, made.engine) == ("cuda", "torch")


@pytest.mark.parametrize(
    "env", [{}, {"OMP_NUM_THREADS": "1"}, {"MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "4"}, {"OMP_NUM_THREADS": "64"}]
)
@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_the_default_thread_count_is_torchs(env):
    """Without torch, a thread's count is torch's default as a fresh process would have it (environment included)."""
    code = (
        "import sys; sys.path.insert(0, %r); from mattekit.engines import threads; own = threads.default_count(); "
        "import torch; print(own, torch.get_num_threads())" % CORE
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env=clean | env, capture_output=True, text=True, check=True)
    own, torchs = out.stdout.split()
    assert own == torchs, (env, out.stdout)


def test_a_threads_count_is_its_own():
    """set_count gives the calling thread its count (and torch's where loaded); another thread keeps its own."""
    import threading

    threads.set_count(1)
    assert threads.count() == 1 and torch.get_num_threads() == 1
    seen = []
    worker = threading.Thread(target=lambda: (threads.set_count(2), seen.append(threads.count())))
    worker.start()
    worker.join()
    assert seen == [2] and threads.count() == 1
    threads.set_count(2)


def test_a_torch_another_thread_is_still_importing_is_left_alone(monkeypatch):
    """A worker setting its count while a reader thread's lazy ``import torch`` is under way (MODNet's torch-area
    resize on the ONNX path: "partially initialized module 'torch' has no attribute 'set_num_threads'") keeps its
    own count and does not touch the half-made module; torch's count is set again once it is loaded."""
    import importlib.machinery
    import types

    half_made = types.ModuleType("torch")
    half_made.__spec__ = importlib.machinery.ModuleSpec("torch", None)
    half_made.__spec__._initializing = True  # as importlib marks a module whose code is still running
    monkeypatch.setitem(sys.modules, "torch", half_made)
    threads.set_count(1)
    assert threads.count() == 1
    monkeypatch.setattr(threads, "_OWN", threading.local())
    assert threads.count() == threads.default_count()
    monkeypatch.setitem(sys.modules, "torch", torch)
    threads.set_count(2)
    assert torch.get_num_threads() == 2


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
@pytest.mark.needs_data
def test_a_remove_on_onnx_runtime_never_imports_torch(shared, tmp_path):
    """``mattekit remove`` with u2netp (ONNX Runtime here; ``--device cpu`` where torch is built for a GPU) exports the
    model once (torch imported for that), and then cuts out a photo without importing torch, with the same bytes as
    the torch path's run (``--backend torch`` gives the ONNX engine's prediction within 1e-4, not bit for bit, so the
    check is against the first run)."""
    photo = sorted((shared / "data" / "grabcut50" / "im").iterdir())[0]
    env = dict(
        os.environ,
        MATTEKIT_CPU_CLASS="x86_64-avx2",
        MATTEKIT_HOME=str(tmp_path / "home"),
        MATTEKIT_MIRROR=str(shared / "weights"),
        PYTHONPATH=os.pathsep.join(filter(None, (CORE, os.environ.get("PYTHONPATH")))),
    )
    code = (
        "import sys; from mattekit.cli import main; code = main(sys.argv[1:]); "
        "print('torch' in sys.modules); sys.exit(code)"
    )
    device = "cpu" if policy.gpu_possible() else "auto"  # where a GPU may be there, auto asks torch (the test above)
    runs = []
    for name in ("first", "second"):
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                code,
                "remove",
                "--model",
                "u2netp",
                "--device",
                device,
                str(photo),
                "-o",
                str(tmp_path / f"{name}.png"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
        runs.append(out.stdout.split()[-1])
    assert runs == ["True", "False"]  # the export needs torch; the run from the cached export does not
    assert (tmp_path / "first.png").read_bytes() == (tmp_path / "second.png").read_bytes()
