"""The ONNX engine gives PyTorch's numbers for every segmentation and super-resolution net (tolerance 1e-4
times the output's magnitude), exports once per weights and recipe, atomically, and agrees with the torch
engine through the runtime. Skipped where onnxruntime is not installed."""

from __future__ import annotations

import pytest
import torch
from conformance_checks import assert_close
from engine_nets import NETS, atol, load_net, reference

from mattekit.engines import threads
from mattekit.engines.plan import decide
from mattekit import engines, runtime
from mattekit.predictor import Predictor
from mattekit.engines import onnx as onnx_engine
from mattekit.errors import MattekitError
from mattekit.options import model_choice

onnxruntime = pytest.importorskip("onnxruntime")

QUICK_EXPORT = "u2netp"  # the one net the quick subset exports: the others take 3-40 s each on a 2-core machine


@pytest.mark.parametrize("name", [n if n == QUICK_EXPORT else pytest.param(n, marks=pytest.mark.slow) for n in NETS])
def test_onnx_engine_matches_eager(name, golden, shared):
    net, index, xs, size = load_net(name, golden, shared)
    xs = [x for x in xs if size is None or tuple(x.shape[2:]) == size]  # a static graph takes its own size only
    refs = reference(net, index, xs)
    engine = engines.onnx_engine(
        lambda: net, index=index, example=size or (32, 32), dynamic_size=size is None, threads=2
    )
    assert engine.path.is_file() and engine.path.parent.name == "onnx"
    errors = {}
    for x, ref in zip(xs, refs):
        errors[tuple(x.shape[2:])] = assert_close(engine(x), ref, atol(ref), f"{name} onnx {tuple(x.shape)}")
    batch = torch.cat([xs[0], xs[0].flip(3)])  # two images in one call
    out = engine(batch)
    assert out.shape[0] == 2
    assert_close(out[:1], refs[0], atol(refs[0]), f"{name} onnx batch")
    print(name, {k: f"{v:.1e}" for k, v in errors.items()})


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_onnx_export_is_cached_by_weights(golden, shared, monkeypatch, tmp_path):
    monkeypatch.setenv("MATTEKIT_HOME", str(tmp_path))  # an export folder of its own (not the session's shared one)
    net, index, _, size = load_net("extremec3", golden, shared)
    path = onnx_engine.onnx_path(net, index, recipe={"size": list(size)})
    assert path == onnx_engine.onnx_path(net, index, recipe={"size": list(size)})
    first = engines.onnx_engine(lambda: net, index=index, example=size, dynamic_size=False)
    stamp = first.path.stat().st_mtime_ns
    assert sorted(p.name for p in first.path.parent.iterdir()) == [first.path.name]  # no temporaries left

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the cache holds the export")

    monkeypatch.setattr(onnx_engine, "export_onnx", no_export)
    again = engines.onnx_engine(lambda: net, index=index, example=size, dynamic_size=False)
    assert again.path == first.path and again.path.stat().st_mtime_ns == stamp
    with torch.no_grad():
        next(net.parameters()).add_(0.01)
    assert onnx_engine.onnx_path(net, index, recipe={"size": list(size)}) != path  # other weights, other file


def test_onnx_cache_name_follows_the_weights_file(tmp_path, golden, shared):
    """With a weights file the export is named by the file's sha256: same bytes, same name; other bytes, other name."""
    net, index, _, _ = load_net("extremec3", golden, shared)
    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    a.write_bytes(b"weights one")
    b.write_bytes(b"weights two")
    assert onnx_engine.onnx_path(net, index, a) != onnx_engine.onnx_path(net, index, b)
    b.write_bytes(b"weights one")
    assert onnx_engine.onnx_path(net, index, a) == onnx_engine.onnx_path(net, index, b)


def test_a_net_that_cannot_export_is_one_sentence_and_leaves_no_file(tmp_path):
    class Unexportable(torch.nn.Module):
        def forward(self, x):  # ONNX has no eigenvalue operator
            return torch.linalg.eigvalsh(x[0, 0]).reshape(1, 1, 1, -1)

    target = tmp_path / "onnx" / "unexportable.onnx"
    with pytest.raises(MattekitError, match="cannot be exported to ONNX .*; use the torch backend"):
        onnx_engine.export_onnx(Unexportable(), target, example=(8, 8))
    assert list(target.parent.iterdir()) == []


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_predictor_backends_agree(shared, golden, monkeypatch):
    """Through the runtime: the same catalog model with both backends gives the same probabilities."""
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    cache = runtime.ModelCache()
    torch_pred = cache.get(model_choice("extremec3-portrait", "segment"), "cpu", backend="torch")
    onnx_pred = cache.get(model_choice("extremec3-portrait", "segment"), "cpu", backend="onnx")
    assert torch_pred is not onnx_pred and onnx_pred.backend == "onnx-cpu-fp32"
    x = golden("extremec3_real").tensor("input_0")  # as prepared from a real portrait
    assert_close(onnx_pred(x), torch_pred(x), 1e-4, "predictor onnx vs torch")
    monkeypatch.setenv("MATTEKIT_BACKEND", "onnx")
    assert cache.get(model_choice("extremec3-portrait", "segment"), "cpu") is onnx_pred


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_a_cached_export_builds_no_module(shared, monkeypatch):
    """Loading a model whose ONNX export is cached builds no torch module and reads no weights into torch (the
    first load builds it once, to export); the predictions are the first load's, and ``net`` is built on demand."""
    import numpy as np

    from mattekit import catalog

    entry = catalog.load().get("u2netp", ("segment",))  # (conftest's home: the session's exports, made once)
    weights = shared / "weights" / "u2netp.onnx"
    first = Predictor(entry, decide(entry, "cpu", "onnx", "fp32", weights, loading=True))
    x = first.prepare(np.random.default_rng(0).random((200, 300, 3), dtype=np.float32))
    built = []
    real = engines.load_net
    monkeypatch.setattr(engines, "load_net", lambda entry, path: built.append(path) or real(entry, path))
    again = Predictor(entry, decide(entry, "cpu", "onnx", "fp32", weights, loading=True))
    assert again.engine.path == first.engine.path and built == []
    assert np.array_equal(again(x), first(x))
    assert isinstance(again.net, torch.nn.Module) and built == [weights]


@pytest.mark.parametrize("cores", [2, 4])
def test_a_small_net_runs_as_one_thread_calls_at_once_with_the_same_answers(shared, monkeypatch, cores):
    """A folder of u2netp (320², ONNX Runtime) is laid out as torch's: one worker per core (up to 4), one thread
    each (emulated core counts), and each worker's calls run a one-thread session (made once, kept) whose answers are
    the two-thread session's, bit for bit; a single image keeps one worker with every thread. IS-Net's 1024² input
    keeps one worker (its scratch memory is held once)."""
    import threading

    import numpy as np

    from mattekit import catalog
    from mattekit.engines import layout as layout_rules
    from mattekit.running import layout as run_layout

    monkeypatch.setattr(run_layout, "cpu_count", lambda: cores)  # (conftest's home: the session's exports, made once)
    monkeypatch.setattr(layout_rules, "cpu_count", lambda: cores)
    entry = catalog.load().get("u2netp", ("segment",))
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the engine's own session: two threads
    try:
        predictor = Predictor(
            entry, decide(entry, "cpu", "onnx", "fp32", shared / "weights" / "u2netp.onnx", loading=True)
        )
    finally:
        torch.set_num_threads(before)
    layout = run_layout.plan(predictor)
    assert (layout["workers"], layout["threads"]) == (min(cores, 4), cores // min(cores, 4))
    assert (run_layout.plan(predictor, workers=1)["workers"], run_layout.plan(predictor, workers=1)["threads"]) == (
        1,
        cores,
    )
    x = predictor.prepare(np.random.default_rng(0).random((200, 300, 3), dtype=np.float32))
    whole, main = predictor.engine.session.run(None, {predictor.engine.input_name: x})[0], predictor(x)
    got = {}

    def one_thread():
        torch.set_num_threads(1)
        got["y"] = predictor(x)

    worker = threading.Thread(target=one_thread)
    try:
        worker.start()
        worker.join()
    finally:
        torch.set_num_threads(before)  # (a thread's setting can become the default for threads made later)
    assert np.array_equal(got["y"], main)
    assert 1 in predictor.engine.sessions and predictor.engine.sessions[2] is predictor.engine.session
    assert np.array_equal(predictor.engine.sessions[1].run(None, {predictor.engine.input_name: x})[0], whole)
    isnet = catalog.load().get("isnet-general-use", ("segment",))
    big = type(
        "Big",
        (),
        {
            "entry": isnet,
            "engine": predictor.engine,
            "device": torch.device("cpu"),
            "plan": decide(isnet, "cpu", "onnx"),
        },
    )()
    assert run_layout.plan(big)["workers"] == cores // threads.default_count()


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_a_damaged_cached_export_is_exported_again_on_first_use(golden, shared, monkeypatch, tmp_path):
    """The first session loads in the background while the engine's maker goes on; a cached export that ONNX
    Runtime cannot load (a disk or copy damaged it) is exported again on the first call, which gives the net's
    numbers, and every later call and thread count uses the good file."""
    monkeypatch.setenv("MATTEKIT_HOME", str(tmp_path))
    net, index, xs, size = load_net("extremec3", golden, shared)
    x = [x for x in xs if tuple(x.shape[2:]) == size][0]
    made = dict(example=size, dynamic_size=False, threads=2)
    first = engines.onnx_engine(lambda: net, index=index, **made)
    first.path.write_bytes(first.path.read_bytes()[:1000])  # cut short
    damaged = engines.onnx_engine(lambda: net, index=index, **made)
    assert damaged.path == first.path and damaged.path.stat().st_size == 1000  # nothing waited for it yet
    ref = reference(net, index, [x])[0]
    assert_close(damaged(x), ref, atol(ref), "extremec3 after a damaged export")
    assert damaged.path.stat().st_size > 1000
    one = damaged.session_for(1).run(None, {damaged.input_name: x.numpy()})[0]
    assert_close(torch.from_numpy(one), ref, atol(ref), "1 thread")
