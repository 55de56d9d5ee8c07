"""The network compiled for its device (``mattekit.engines.compiled.Compiled``, the mode from
``mattekit.engines.plan.compile_mode``): the mode and its one-sentence refusal,
off on the CPU, the cache folder's keys, and the per-shape measured choice run on torch's CPU device (eager and
torch.compile's net; the CUDA-graph candidates need CUDA: tests/cuda/test_cuda_engines.py runs them)."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from mattekit.engines import compiled as compiled_module
from mattekit.engines.plan import compile_mode
from mattekit.engines.compiled import Compiled, cache_folder
from mattekit.errors import MattekitError

CPU = torch.device("cpu")


def test_the_mode_is_asked_or_from_the_environment_and_off_but_on_cuda(monkeypatch):
    monkeypatch.delenv("MATTEKIT_COMPILE", raising=False)
    assert compile_mode(None, "cuda") == "auto" and compile_mode("Inductor", "cuda") == "inductor"
    monkeypatch.setenv("MATTEKIT_COMPILE", "graphs")
    assert compile_mode(None, "cuda") == "graphs" and compile_mode("off", "cuda") == "off"
    assert compile_mode(None, "cpu") == "off" and compile_mode("inductor", "mps") == "off"
    monkeypatch.setenv("MATTEKIT_COMPILE", "fast")
    with pytest.raises(
        MattekitError, match=r"^'fast' is not a compile mode \(MATTEKIT_COMPILE\): use auto, off, graphs or inductor\.$"
    ):
        compile_mode(None, "cuda")


def test_the_plan_carries_the_mode_its_engine_is_built_with(monkeypatch):
    """The compile mode is decided with the rest of the plan (:func:`mattekit.engines.plan.decide`), keys the model
    cache, and is what :func:`mattekit.engines.create` hands the torch engine; a bad name is refused at planning."""
    from mattekit import catalog, engines
    from mattekit.engines import plan

    monkeypatch.delenv("MATTEKIT_COMPILE", raising=False)
    assert plan._compile("cuda", "torch")[0] == "auto" and plan._compile("cpu", "torch") == (
        "off",
        "compiled only on CUDA",
    )
    monkeypatch.setenv("MATTEKIT_COMPILE", "inductor")
    assert plan._compile("cuda", "torch") == ("inductor", "asked (MATTEKIT_COMPILE)")
    made = plan.decide(catalog.load().get("u2netp"), "cpu", "torch", "fp32")
    assert made.compile == "off" and made.why("compile") == "compiled only on CUDA" and made.key[-1] == "off"
    asked = []
    monkeypatch.setattr(engines, "build_torch", lambda net, *a, **k: asked.append(k["compile"]))
    engines.create(plan.replace(made, compile="graphs"), lambda: torch.nn.Identity())
    assert asked == ["graphs"]
    monkeypatch.setenv("MATTEKIT_COMPILE", "fast")
    with pytest.raises(MattekitError, match="not a compile mode"):
        plan.decide(catalog.load().get("u2netp"), "cpu", "torch", "fp32")


def test_the_cache_folder_is_keyed_by_device_torch_and_model(tmp_path, monkeypatch):
    monkeypatch.setenv("MATTEKIT_HOME", str(tmp_path))
    recipe = {"net": "birefnet:BiRefNet", "kwargs": {"backbone": "swin_v1_l"}}
    folder = cache_folder("NVIDIA H200", "birefnet-general", recipe)
    assert folder.parent == tmp_path / "compiled" and folder == cache_folder(
        "NVIDIA H200", "birefnet-general", dict(recipe)
    )
    assert folder.name.startswith(f"nvidia-h200-torch{torch.__version__.lower().replace('+', '-')}-birefnet-general-")
    others = {
        cache_folder("NVIDIA H100 80GB HBM3", "birefnet-general", recipe),
        cache_folder("NVIDIA H200", "birefnet-general-lite", recipe),
        cache_folder(
            "NVIDIA H200", "birefnet-general", {"net": "birefnet:BiRefNet", "kwargs": {"backbone": "swin_v1_t"}}
        ),
    }
    assert folder not in others and len(others) == 3


def test_a_torch_engine_off_cuda_runs_eager():
    from mattekit.engines.torch_engine import TorchEngine

    net = torch.nn.Conv2d(3, 1, 3, padding=1).eval()
    engine = TorchEngine(net, CPU, torch.bfloat16, compile="inductor")
    assert engine.compiled is None


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.GELU(), torch.nn.Conv2d(8, 1, 3, padding=1)
    ).eval()


def test_each_shape_runs_eager_until_its_second_call_and_is_chosen_once_from_many_threads():
    """Mode auto on the CPU: its one candidate there (eager) is kept at a shape's second call; a shape seen once is
    not chosen; calls from 4 threads at once give the eager answers and one choice."""
    net = _net()
    runner = Compiled(net, CPU, "auto", "tiny")
    assert runner.names == ("eager",)
    xs = [torch.rand(1, 3, 32, 32), torch.rand(2, 3, 16, 24)]
    with torch.inference_mode():
        expected = [net(x) for x in xs]
        assert torch.equal(runner(xs[0]), expected[0]) and runner.choices == {}
        results = []
        threads = [
            threading.Thread(target=lambda: results.append(torch.equal(runner(xs[0]), expected[0]))) for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [True] * 4
        assert torch.equal(runner(xs[1]), expected[1])
    assert list(runner.choices.values()) == [("eager", {"eager": 0.0})] and runner.seen[runner.key(xs[0])] == 2
    assert runner.describe() == "1x3x32x32 float32: eager"


def test_candidates_are_tried_on_the_calls_as_they_come_and_the_choice_costs_no_call():
    """Two candidates (eager, and one standing in for a CUDA graph, which this CPU cannot make): from a shape's second
    call each is made, then timed on TRIALS calls, and the faster kept; every call answers its own input, and the net
    runs exactly once per call, choice included."""
    net, calls = _net(), []

    def counted(x):
        calls.append(x.shape)
        return net(x)

    class WithSlowCandidate(Compiled):
        def _make(self, name, x):
            def slow(y):
                time.sleep(0.02)
                return counted(y)

            return slow, slow(x)

    runner = WithSlowCandidate(counted, CPU, "auto", "tiny")
    runner.names = ("eager", "slow")
    xs = [torch.rand(1, 3, 16, 16) for _ in range(2 + 2 * compiled_module.TRIALS)]
    with torch.inference_mode():
        for i, x in enumerate(xs):
            assert torch.equal(runner(x), net(x)), i
            assert (runner.key(x) in runner.choices) == (i == len(xs) - 1), i  # kept after the last trial, not before
    assert len(calls) == len(xs)
    best, times = runner.choices[runner.key(xs[0])]
    assert best == min(times, key=times.get) and times["slow"] >= 0.02, times  # (the best of its timed calls)
    assert runner.trials == {} and runner.made == {}


@pytest.mark.slow
def test_inductor_is_a_measured_candidate_its_artefacts_cached_and_its_compile_announced(tmp_path, capsys):
    """Mode inductor with the CPU's candidates (eager and torch.compile's net): at a shape's second call both are timed
    and the faster kept; the answers within 1e-5 of eager's; the compile announced once a shape and its artefacts in
    the given folder. (Minutes of CPU: torch.compile runs a C++ compiler here.)"""
    net, folder = _net(), tmp_path / "compiled"
    runner = Compiled(net, CPU, "inductor", "tiny", folder, compilable=net)
    assert runner.names == ("eager", "compiled")
    x = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        expected = net(x)
        for _ in range(6):  # the first eager; then eager timed twice, compiled made and timed twice
            assert (runner(x) - expected).abs().max() <= 1e-5
    best, times = runner.choices[runner.key(x)]
    assert set(times) == {"eager", "compiled"} and best == min(times, key=times.get)
    err = capsys.readouterr().err
    assert err.count("mattekit: compiling tiny for cpu at 1x3x32x32 float32 with torch.compile once") == 1, err
    assert "mattekit: compiled tiny at 1x3x32x32 float32 in " in err
    assert (folder / "fxgraph").is_dir() and any((folder / "fxgraph").rglob("*"))
