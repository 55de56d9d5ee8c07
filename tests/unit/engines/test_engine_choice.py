"""The CPU engine per model is chosen by measurement (mattekit.engines.plan, .measure): this machine's own measurement
first, then the shipped table, then a measurement on first use, else the evidence; the plan made once per load and
keying the model cache; the bench and ``doctor --measure`` that make the tables."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
import torch
from PIL import Image

from mattekit import catalog, runtime
from mattekit.cli import main
from mattekit.engines import measure, plan, tables
from mattekit.engines.plan import decide
from mattekit.machine import cpu_info
from mattekit.predictor import Predictor
from mattekit.options import model_choice, ModelChoice

CPU = torch.device("cpu")


def test_cpu_class_names_the_widest_vector_feature(monkeypatch):
    found = plan.cpu_class()
    assert re.fullmatch(r"[a-z0-9_]+(-(avx512_bf16|avx512|avx2))?", found), found
    if found.startswith("x86_64") and "avx2" in (cpu_info() or ("", frozenset()))[1]:
        assert found != "x86_64", "an AVX2 CPU is at least x86_64-avx2"
    monkeypatch.setenv("MATTEKIT_CPU_CLASS", "x86_64-avx512_bf16")
    assert plan.cpu_class() == "x86_64-avx512_bf16"


@pytest.mark.parametrize(
    "flags, expected",
    [
        ({"sse4_2", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16"}, "x86_64-avx512_bf16"),  # Xeon
        ({"avx2", "avx512f", "avx512_bf16"}, "x86_64-avx512_bf16"),  # an AMD EPYC of the bf16 class (no AMX)
        ({"avx2", "amx_bf16"}, "x86_64-avx512_bf16"),
        ({"avx2", "fma", "avx512f", "avx512_vnni"}, "x86_64-avx512"),
        ({"avx", "avx2", "fma"}, "x86_64-avx2"),
        ({"sse4_2", "avx"}, "x86_64"),
    ],
)
def test_cpu_class_of_given_flags_is_their_widest_vector_level(flags, expected, monkeypatch):
    """The flag-to-class mapping, driven with given /proc/cpuinfo flags: a CPU with every level gets its widest."""
    monkeypatch.delenv("MATTEKIT_CPU_CLASS", raising=False)
    monkeypatch.setattr(tables.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(tables, "cpu_info", lambda: ("a CPU", frozenset(flags)))
    assert plan.cpu_class() == expected


def test_the_fingerprint_names_torch_onnx_runtime_and_the_cores_and_an_upgrade_measures_again(monkeypatch):
    """A measurement is this machine's only while its torch, its ONNX Runtime and its core count stay: after an
    upgrade (either version) or on a bigger machine the fingerprint differs and no measurement of it is found."""
    from importlib import metadata

    version, cores = metadata.version, tables.cpu_count()
    here = plan.fingerprint()
    assert f"torch {version('torch')}" in here and f"onnxruntime {version('onnxruntime')}" in here
    assert f"| {cores} cores |" in here
    measure.save({"u2netp": {"torch_s": 1.0, "onnx_s": 2.0, "ratio": 0.5}})
    assert plan.own_row("u2netp") is not None
    for package in ("torch", "onnxruntime"):
        monkeypatch.setattr(metadata, "version", lambda name, p=package: "99.0" if name == p else version(name))
        assert plan.fingerprint() != here and plan.own_row("u2netp") is None, package
        monkeypatch.setattr(metadata, "version", version)
    monkeypatch.setattr(tables, "cpu_count", lambda: cores + 14)
    assert plan.fingerprint() != here and plan.own_row("u2netp") is None
    monkeypatch.setattr(tables, "cpu_count", lambda: cores)
    assert plan.fingerprint() == here and plan.own_row("u2netp") is not None


@pytest.mark.slow
@pytest.mark.needs_data
@pytest.mark.parametrize("slower, engine", [("torch", "onnx"), ("onnx", "torch")])
def test_a_machine_the_shipped_table_covers_measures_on_first_use_and_takes_what_it_measured(
    shared, monkeypatch, capsys, slower, engine
):
    """The shipped row (ONNX Runtime for u2netp on this CPU's class, or the evidence where none) is only the choice until
    this machine measured: its first load measures both engines once, and the engine it measured faster runs. The
    figures are steered by real CPU time: one engine's calls spend 5 times their own CPU time."""
    from mattekit import engines

    monkeypatch.delenv("MATTEKIT_MEASURE_ENGINES")
    monkeypatch.setenv("MATTEKIT_CPU_CLASS", "x86_64-avx2")  # a class the shipped table has a u2netp row for
    assert plan.shipped_row("u2netp")[0]["ratio"] > plan.MARGIN  # which says ONNX Runtime
    made = {"torch": engines.build_torch, "onnx": engines.onnx_engine}[slower]

    def burning(*a, **k):
        engine = made(*a, **k)
        call = engine.__call__

        class Slower(type(engine)):
            def __call__(self, x):
                start = time.thread_time()
                out = call(x)
                until = time.thread_time() + 4 * (time.thread_time() - start)  # 5 times its CPU time in all
                while time.thread_time() < until:
                    pass
                return out

        engine.__class__ = Slower
        return engine

    monkeypatch.setattr(engines, {"torch": "build_torch", "onnx": "onnx_engine"}[slower], burning)
    chosen = runtime.ModelCache().plan(catalog.load().get("u2netp"), "cpu", shared / "weights" / "u2netp.onnx")
    row = plan.own_row("u2netp")[0]
    assert "measuring torch and ONNX Runtime for u2netp" in capsys.readouterr().err
    assert (row["ratio"] > 1) == (slower == "torch") and plan.winner(row) == engine, row
    assert chosen.engine == engine and "on first use here" in chosen.why("engine"), chosen.why("engine")


def test_the_shipped_table_decides_for_a_measured_model_and_the_evidence_for_others(monkeypatch):
    """The shipped table decides on its CPU classes; a model no table has runs on ONNX Runtime (the evidence: it won 15
    of 16 rows) where the measurements cover its kind of net, torch elsewhere; hidden, the table decides nothing."""
    shipped = json.loads(plan.SHIPPED.read_text())
    assert "x86_64-avx2" in shipped and "u2netp" in shipped["x86_64-avx2"]
    for cpu, rows in shipped.items():
        for model, row in rows.items():
            catalog.load().get(model)  # every measured model is a catalog model
            assert row["ratio"] == pytest.approx(row["torch_s"] / row["onnx_s"], rel=0.01), (cpu, model)
    won = sum(row["ratio"] > 1 for rows in shipped.values() for row in rows.values())  # ONNX Runtime faster
    assert won >= 15, "the evidence the unmeasured rule follows"
    monkeypatch.setenv("MATTEKIT_CPU_CLASS", "x86_64-avx2")
    u2netp = catalog.load().get("u2netp")
    assert decide(u2netp, "cpu").engine == plan.winner(shipped["x86_64-avx2"]["u2netp"]) == "onnx"
    assert "shipped for x86_64-avx2" in decide(u2netp, "cpu").why("engine")
    assert decide(catalog.load().get("birefnet-general"), "cpu").engine == "torch"  # a kind of net nobody measured
    assert decide(catalog.load().get("realesr-animevideov3"), "cpu").engine == "torch"
    monkeypatch.setenv("MATTEKIT_CPU_CLASS", "x86_64-avx512")  # a class nobody measured: the evidence
    assert (decide(u2netp, "cpu").engine, decide(u2netp, "cpu").why("engine")) == ("onnx", plan.EVIDENCE)
    monkeypatch.setenv("MATTEKIT_CPU_CLASS", "x86_64-avx2")
    monkeypatch.setenv("MATTEKIT_ENGINE_TABLE", "hidden")
    assert plan.measured("u2netp") is None and decide(u2netp, "cpu").why("engine") == plan.EVIDENCE
    assert decide(u2netp, "cpu", "torch").engine == "torch"  # asked for: no table overrides it


def test_this_machines_measurement_wins_and_a_small_margin_keeps_torch(monkeypatch):
    """A measurement saved for this machine (under its fingerprint) decides before the shipped table; ONNX Runtime
    from 5 % faster; another fingerprint (another CPU, another torch) does not see it."""
    monkeypatch.setenv("MATTEKIT_CPU_CLASS", "x86_64-avx2")
    u2netp = catalog.load().get("u2netp")
    measure.save({"u2netp": {"torch_s": 1.0, "onnx_s": 1.0, "ratio": plan.MARGIN - 0.01}})
    assert plan.measured("u2netp")[1] == "this machine" and decide(u2netp, "cpu").engine == "torch"
    measure.save({"u2netp": {"torch_s": 2.0, "onnx_s": 1.0, "ratio": 2.0}})
    assert decide(u2netp, "cpu").engine == "onnx"
    # bf16 asked for: ONNX Runtime runs fp32 only here, so auto gives torch whatever the table says
    assert decide(u2netp, "cpu", precision="bf16").engine == "torch"
    monkeypatch.setenv("MATTEKIT_CPU_CLASS", "x86_64-avx512")  # another fingerprint: not this measurement
    assert plan.measured("u2netp") is None
    assert "x86_64-avx512" in plan.fingerprint() and "torch" in plan.fingerprint()
    monkeypatch.setenv("MATTEKIT_CPU_CLASS", "x86_64-avx2")
    plan.own_table_path().write_text("not json")  # a damaged table is no table: the shipped one decides
    assert plan.measured("u2netp")[1] == "shipped for x86_64-avx2"


def _own_exports() -> None:
    """This test's own ONNX export cache (the session's shared one may hold u2netp's exports already)."""
    import os
    from pathlib import Path

    exports = Path(os.environ["MATTEKIT_HOME"]) / "weights" / "onnx"
    exports.unlink()
    exports.mkdir()


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
@pytest.mark.needs_data
def test_an_unmeasured_machine_measures_once_on_first_use_and_keeps_it(shared, monkeypatch, capsys):
    """With the table hidden (a machine nobody measured), the first load of u2netp times both engines on its real
    weights, says so in a line with its cost, and keeps the figures under the machine's fingerprint: the next loads,
    in this cache or a new one, plan from them without measuring again; each request is planned once."""
    monkeypatch.delenv("MATTEKIT_MEASURE_ENGINES")  # a first use measures
    monkeypatch.setenv("MATTEKIT_ENGINE_TABLE", "hidden")
    monkeypatch.setattr(measure, "BUDGET_S", 1e3)  # its usual 320 x 320 input on a loaded machine too
    _own_exports()
    measured, decided = [], []
    real_measure, real_decide = runtime.measure_engines, runtime.decide
    monkeypatch.setattr(runtime, "measure_engines", lambda *a, **k: measured.append(a) or real_measure(*a, **k))
    monkeypatch.setattr(runtime, "decide", lambda *a, **k: decided.append(a) or real_decide(*a, **k))
    weights = shared / "weights" / "u2netp.onnx"
    cache = runtime.ModelCache()
    first = cache.get(model_choice("u2netp", "segment"), "cpu", weights)
    err = capsys.readouterr().err
    assert len(measured) == 1 and "measuring torch and ONNX Runtime for u2netp" in err
    assert "measured u2netp's engines in " in err and " that its first use takes anyway." in err
    assert err.count("exporting u2netp to ONNX") == 1  # its 320 x 320 export is the one its ONNX engine runs
    row = json.loads(plan.own_table_path().read_text())[plan.fingerprint()]["u2netp"]
    assert row["torch_s"] > 0 and row["onnx_s"] > 0 and row["input"] == [320, 320] and row["export_kept"]
    assert row["cost_s"] > 0 and 0 <= row["load_s"] <= row["cost_s"]  # load_s is rounded to 0.01 s: 0 on a fast machine
    assert first.plan.engine == plan.winner(row) and "on first use here" in first.plan.why("engine")
    assert first.backend.startswith(first.plan.engine)
    for _ in range(3):
        assert cache.get(model_choice("u2netp", "segment"), "cpu", weights) is first
    assert len(decided) == 1  # the decision is made once per load, not per call
    again = runtime.ModelCache().get(model_choice("u2netp", "segment"), "cpu", weights)
    assert len(measured) == 1 and "(this machine)" in again.plan.why("engine")
    assert "measuring" not in capsys.readouterr().err


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
@pytest.mark.needs_data
def test_a_model_whose_input_follows_the_photo_is_measured_at_a_size_it_takes(shared, monkeypatch):
    """MODNet (sides of multiples of 32, its export dynamic) on an unmeasured machine: the first load measures it on a
    shrunk input it accepts (its 512 x 672 became 279 x 366 and its export failed before) and loads on the winner."""
    monkeypatch.delenv("MATTEKIT_MEASURE_ENGINES")  # a first use measures
    monkeypatch.setenv("MATTEKIT_ENGINE_TABLE", "hidden")
    weights = shared / "weights" / "modnet_photographic_portrait_matting.onnx"
    predictor = runtime.ModelCache().get(model_choice("modnet-portrait", "matte"), "cpu", weights)
    row = json.loads(plan.own_table_path().read_text())[plan.fingerprint()]["modnet-portrait"]
    assert all(v % 32 == 0 for v in row["input"]) and row["input"][0] * row["input"][1] <= measure.MEASURE_PIXELS
    assert predictor.plan.engine == plan.winner(row) and "on first use here" in predictor.plan.why("engine")


def test_the_first_use_measurement_stops_timing_at_its_budget(monkeypatch):
    """The timed calls stop when one more turn would pass the measurement's budget: with none left, only the three
    calls every measurement makes (ONNX Runtime's warm-up, torch's, ONNX Runtime's); with time to spare, a fast net
    gets its four turns. The least of each engine's calls is what is kept."""
    made = []
    calls = {name: (lambda name=name: made.append(name)) for name in ("torch", "onnx")}
    monkeypatch.setattr(measure, "BUDGET_S", 0.0)
    seconds = measure._timed_calls(calls)
    assert made == ["onnx", "torch", "onnx"] and len(seconds["torch"]) == 1 and len(seconds["onnx"]) == 2
    made.clear()
    monkeypatch.setattr(measure, "BUDGET_S", 1e9)
    seconds = measure._timed_calls(calls)
    assert made.count("torch") == 4 and len(seconds["torch"]) == 4


def test_a_net_too_slow_for_the_budget_is_measured_on_a_smaller_input(monkeypatch):
    """The timed input shrinks (sides of multiples of 32) where three calls at the warm call's CPU seconds a pixel
    would pass the budget: a 1024 x 1024 net at 10 us a pixel is timed at 288 x 288 (0.83 s a call); a fast one at
    the usual 320 x 320 cap, and a small one at its own size."""
    monkeypatch.setattr(measure, "BUDGET_S", 3.0)
    assert measure._measured_size(1024, 1024, 1e-5) == (288, 288)
    assert measure._measured_size(1024, 1024, 1e-8) == (320, 320)
    assert measure._measured_size(224, 224, 1e-8) == (224, 224)
    assert measure._measured_size(1024, 1024, 1.0) == (32, 32)


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
@pytest.mark.needs_data
def test_a_net_larger_than_the_measurement_gets_its_engine_export_from_the_measurements(shared, monkeypatch, capsys):
    """A fixed-size net larger than the measurement's input (IS-Net's 1024 x 1024; here u2netp's 320 x 320 against a
    160 x 160 measurement) is measured on a dynamic export, and its ONNX engine's static export is made from that one,
    not traced again: one export on first use, whose answer is a fresh static export's."""
    monkeypatch.setenv("MATTEKIT_ENGINE_TABLE", "hidden")
    monkeypatch.setattr(measure, "MEASURE_PIXELS", 160 * 160)
    _own_exports()
    from mattekit import engines
    from mattekit.engines import export_recipe, load_net
    from mattekit.engines.measure import measure_engines
    from mattekit.engines.onnx import OnnxEngine, export_onnx

    entry, weights = catalog.load().get("u2netp"), shared / "weights" / "u2netp.onnx"
    row = measure_engines(entry, weights)
    assert row["input"] == [160, 160] and row["export_kept"]
    assert capsys.readouterr().err.count("exporting u2netp to ONNX") == 1
    made = export_recipe(entry, weights)
    kept = engines.onnx_engine(lambda: pytest.fail("its export exists: no net is loaded"), label="u2netp", **made)
    assert kept.path.is_file() and "exporting" not in capsys.readouterr().err
    fresh = export_onnx(load_net(entry, weights), kept.path.with_name("fresh.onnx"), made["index"], (320, 320), False)
    x = np.random.default_rng(1).random((1, 3, 320, 320), dtype=np.float32)
    traced = OnnxEngine(lambda: None, made["index"], fresh, example=(320, 320), dynamic_size=False)
    assert np.abs(kept(x) - traced(x)).max() < 1e-5


@pytest.mark.needs_data
def test_requests_that_plan_alike_share_one_model_and_the_owner_says_the_notices(shared, monkeypatch):
    """The model cache is keyed by plan: ``auto`` and an explicit engine that plan alike load once. Notices are said
    by whoever owns the cache (its ``say``), never by the runtime itself."""
    monkeypatch.setenv("MATTEKIT_CPU_CLASS", "x86_64-avx2")
    weights = shared / "weights" / "u2netp.onnx"
    said = []
    cache = runtime.ModelCache(say=said.append)
    auto = cache.get(model_choice("u2netp", "segment"), "cpu", weights)
    assert (
        auto.plan.engine == "onnx"
        and cache.get(model_choice("u2netp", "segment"), "cpu", weights, backend="onnx") is auto
    )
    assert cache.get(model_choice("u2netp", "segment"), "cpu", weights, backend="torch") is not auto
    assert len(cache.loaded()) == 2
    runtime.forget_notices()
    silent = runtime.ModelCache()  # no owner to say anything
    rvm = catalog.load().get("rvm-people")
    assert rvm.notice  # the GPL notice
    silent.get(model_choice("rvm-people", "matte"), "cpu", shared / "weights" / "rvm_mobilenetv3_fp32.onnx")
    cache.get(model_choice("rvm-people", "matte"), "cpu", shared / "weights" / "rvm_mobilenetv3_fp32.onnx")
    assert any(rvm.notice in sentence for sentence in said)


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
@pytest.mark.needs_data
def test_the_onnx_engine_auto_picks_keeps_the_answer_on_real_weights(shared, monkeypatch):
    """u2netp's real weights on a real photo: the engine ``auto`` runs here gives the torch engine's prediction."""
    monkeypatch.setenv("MATTEKIT_CPU_CLASS", "x86_64-avx2")
    entry = catalog.load().get("u2netp")
    weights = shared / "weights" / "u2netp.onnx"
    auto = Predictor(entry, decide(entry, "cpu", weights_path=weights))
    assert auto.plan.engine == "onnx" and auto.backend.startswith("onnx"), auto.backend  # e.g. onnx-cpu-fp32
    photo = next(iter(sorted((shared / "data" / "grabcut50" / "im").iterdir())))
    image = np.asarray(Image.open(photo).convert("RGB"), np.float32) / 255
    x = auto.prepare(image)  # a numpy array: the ONNX engine runs without torch
    reference = Predictor(entry, decide(entry, "cpu", "torch", weights_path=weights))
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
    code = main(
        ["bench", "engines", "--model", f"sinet-portrait={shared / 'weights' / 'SINet.pth'}", "--repeat", "1", "--save"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "CPU class test-class" in out and "sinet-portrait" in out and "saved for this machine" in out
    row = json.loads(plan.own_table_path().read_text())[plan.fingerprint()]["sinet-portrait"]
    assert row["torch_s"] > 0 and row["onnx_s"] > 0 and row["max_diff"] < 1e-4
    assert decide(catalog.load().get("sinet-portrait"), "cpu").engine == plan.winner(row)


@pytest.mark.needs_data
def test_doctor_measure_times_the_models_here_and_shows_their_plans(shared, capsys, monkeypatch):
    """``doctor --measure`` measures each model whose weights are here (SINet, from the mirror), keeps the figures,
    and prints every model's plan with its reason; with the table hidden, an unmeasured model says so."""
    monkeypatch.setenv("MATTEKIT_ENGINE_TABLE", "hidden")
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    assert main(["doctor", "--task", "segment"]) == 0
    out = capsys.readouterr().out
    assert "hidden ($MATTEKIT_ENGINE_TABLE=hidden)" in out and plan.EVIDENCE in out and plan.fingerprint() in out
    monkeypatch.setattr(
        catalog.Catalog,
        "availability",
        lambda self, entry: "in mirror" if entry.name == "sinet-portrait" else "missing",
    )
    assert main(["doctor", "--task", "segment", "--measure"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("sinet-portrait "))
    assert "measured (this machine)" in line, line
    assert "measured sinet-portrait at 224x224" in out and out.count("measured ") >= 2


def test_an_engine_asked_by_name_that_the_model_does_not_run_on_is_refused_up_front(monkeypatch):
    """Issue 68's note, issue 81: onnx asked for depth-anything-v2-small ended inside ONNX Runtime ("broadcast an axis
    1370 by 2036") at any photo size but its export's; the catalog pins it to torch, and an engine asked by name
    (ModelCache.get(backend=...), bench --backend) is now one sentence before any weights are read, not a silent
    torch run. $MATTEKIT_BACKEND, a preference for every model of a session, leaves it on torch and says why."""
    from mattekit.errors import MattekitError

    entry = catalog.load().get("depth-anything-v2-small")
    with pytest.raises(MattekitError) as refused:
        decide(entry, "cpu", "onnx")
    assert str(refused.value) == (
        "depth-anything-v2-small runs on torch only (it cannot be exported for another engine "
        "at every photo size); leave the backend at auto or torch."
    )
    with pytest.raises(MattekitError):
        runtime.ModelCache().get(
            ModelChoice(entry.name, entry), device="cpu", backend="onnx"
        )  # before its weights are looked for
    assert decide(entry, "cpu", "torch").engine == "torch"
    monkeypatch.setenv("MATTEKIT_BACKEND", "onnx")
    chosen = decide(entry, "cpu")
    assert chosen.engine == "torch" and dict(chosen.reasons)["engine"] == "the catalog: this model runs on torch only"


def test_a_model_without_its_weights_says_so_before_any_measuring(shared, monkeypatch, capsys, tmp_path):
    """A first use whose model has no weights here (u2net: neither cached nor in the mirror) gives its one sentence
    and exit 2, and says nothing of measuring engines it never measured."""
    monkeypatch.delenv("MATTEKIT_MEASURE_ENGINES")  # a first use measures
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(photo)
    assert main(["remove", str(photo), "-o", str(tmp_path / "out.png"), "--model", "u2net"]) == 2
    err = capsys.readouterr().err
    assert "the weights of u2net cannot be had here" in err and "measuring" not in err
    assert not (tmp_path / "out.png").exists()
