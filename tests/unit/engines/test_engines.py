"""The torch engines give PyTorch's numbers (the fx/Winograd CPU engine against eager PyTorch for every
segmentation and super-resolution net, tolerance 1e-4 times the output's magnitude), the policy picks
devices, backends and precisions as documented, and none of it needs onnxruntime."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from conformance_checks import assert_close
from engine_nets import NETS, atol, load_net, reference

from mattekit import catalog, engines
from mattekit.engines import policy
from mattekit.engines.plan import decide
from mattekit.engines.cpu_graph import max_pool_2x2
from mattekit.engines.torch_engine import select_output
from mattekit.engines.cpu_graph import winograd_f2, winograd_f2_weights
from mattekit.errors import MattekitError


@pytest.fixture
def nnpack_calls(monkeypatch):
    """Counts NNPACK convolutions, to prove the Winograd path really ran."""
    calls = []
    real = torch._nnpack_spatial_convolution

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "_nnpack_spatial_convolution", counting)
    return calls


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.slow) if n == "u2net" else n  # U2NETP: its code
        for n in NETS
    ],
)  # at a fifth of the cost
@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_fast_cpu_engine_matches_eager(name, golden, shared, nnpack_calls):
    net, index, xs, _ = load_net(name, golden, shared)
    refs = reference(net, index, xs)
    torch.set_num_threads(1)  # single-threaded calls take the Winograd path
    engine = engines.build_torch(net, "cpu", "fp32", index)
    assert engine.name == ("torch-cpu-winograd" if policy.nnpack_available() else "torch-cpu-fused")
    errors = {}
    for x, ref in zip(xs, refs):
        errors[tuple(x.shape[2:])] = assert_close(engine(x), ref, atol(ref), f"{name} fast {tuple(x.shape)}")
        with torch.no_grad():  # BatchNorm was folded into the net in place: the eager net still agrees
            assert_close(engines.select_output(engine.net(x), index), ref, atol(ref), f"{name} folded eager")
    torch.set_num_threads(2)  # multi-threaded calls take torch's own kernels, same numbers
    assert_close(engine(xs[0]), refs[0], atol(refs[0]), f"{name} fast, 2 threads")
    if policy.nnpack_available() and name not in ("csnet", "sinet", "extremec3"):  # no big dense 3x3 convs there
        assert nnpack_calls, "the Winograd path never ran"
    print(name, engine.name, {k: f"{v:.1e}" for k, v in errors.items()})


@pytest.mark.parametrize("name", ["u2netp", pytest.param("u2net", marks=pytest.mark.slow)])
def test_bf16_on_cpu_stays_close(name, golden, shared):
    """bf16 on the CPU (U^2-Net's deep layers through Winograd F(2x2, 3x3); emulated where the CPU has no
    native bf16): with stand-in weights masks move by well under 1% (real weights:
    tests/conformance/test_fidelity.py)."""
    net, index, xs, _ = load_net(name, golden, shared)
    refs = reference(net, index, xs)
    engine = engines.build_torch(net, "cpu", "bf16", index)
    assert engine.dtype is torch.bfloat16
    assert engine.name == "torch-cpu-bf16-winograd"  # the decoders' 128+ channel convolutions were routed

    def norm(t):
        return (t - t.min()) / (t.max() - t.min())

    for x, ref in zip(xs, refs):  # a square and an odd-sized input
        assert (norm(engine(x).float()) - norm(ref)).abs().mean().item() < 0.01


def test_bf16_on_cpu_runs_depthwise_convolutions_in_nchw():
    """The CPU bf16 engine runs every depthwise convolution on NCHW memory, its weight in NCHW's own strides (a
    C x 1 x 1 x k weight's strides otherwise read as channels-last): oneDNN's channels-last bf16 depthwise kernel hung
    in its code generation on ExtremeC3's 1x15 convolutions on an AVX-512 BF16 CPU. ExtremeC3 at 224 then runs, and
    stays close to fp32 (seeded weights)."""
    from mattekit import nets
    from mattekit.engines.cpu_graph import DepthwiseNCHW

    torch.manual_seed(0)
    entry = catalog.load().get("extremec3-portrait")
    net = nets.build(entry.net, **entry.kwargs).eval()
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        ref = select_output(net(x), entry.output.index)
    engine = engines.build_torch(net, "cpu", "bf16", entry.output.index)
    wrapped = [m for m in engine.module.modules() if isinstance(m, DepthwiseNCHW)]
    depthwise = [m for m in engine.module.modules() if isinstance(m, torch.nn.Conv2d) and 1 < m.groups == m.in_channels]
    assert wrapped and len(wrapped) == len(depthwise)
    assert all(m.conv.weight.stride() == torch.empty(m.conv.weight.shape).stride() for m in wrapped)
    got = engine(x).float()
    assert got.shape == ref.shape and (got - ref).abs().mean() < 0.05 * ref.abs().mean() + 1e-3


@pytest.mark.parametrize(
    "n,c,k,h,w,bias",
    [(1, 256, 64, 20, 20, True), (2, 128, 32, 7, 9, False), (1, 512, 16, 1, 1, True), (1, 130, 8, 6, 5, True)],
)
def test_winograd_f2_is_a_bf16_convolution(n, c, k, h, w, bias):
    """Winograd F(2x2, 3x3) in bf16 against the fp32 convolution: mean error within 3x (worst within 4x) that of
    oneDNN's direct bf16 kernel on the same rounded inputs, at even, odd and 1-pixel sizes, batched, with and
    without bias."""
    g = torch.Generator().manual_seed(n * c + h)
    x = torch.randn(n, c, h, w, generator=g).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(k, c, 3, 3, generator=g) / (9 * c) ** 0.5
    b = torch.randn(k, generator=g) if bias else None
    ref = F.conv2d(x.float(), weight, b, padding=1)
    direct = F.conv2d(x, weight.to(torch.bfloat16), None if b is None else b.to(torch.bfloat16), padding=1)
    got = winograd_f2(x, winograd_f2_weights(weight), b)
    assert (
        got.shape == ref.shape and got.dtype is torch.bfloat16 and got.is_contiguous(memory_format=torch.channels_last)
    )
    err, direct_err = (got.float() - ref).abs(), (direct.float() - ref).abs()
    assert err.mean() <= 3 * direct_err.mean() + 1e-4, (err.mean(), direct_err.mean())
    assert err.max() <= 4 * direct_err.max() + 1e-3, (err.max(), direct_err.max())


@pytest.mark.parametrize("h,w", [(8, 8), (7, 9), (1, 1), (6, 5)])
@pytest.mark.parametrize("ceil", [True, False])
def test_max_pool_2x2_is_exact(h, w, ceil):
    x = torch.randn(2, 3, h, w)
    if not ceil and (h < 2 or w < 2):
        return
    assert torch.equal(max_pool_2x2(x, ceil), F.max_pool2d(x, 2, 2, ceil_mode=ceil))


# ----------------------------------------------------------------------------------- policy


def test_auto_device_is_usable_and_explicit_missing_devices_fail_loudly():
    assert engines.select_device("auto").type in ("cpu", "cuda", "mps")
    assert engines.select_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(MattekitError, match="no usable CUDA GPU"):
            engines.select_device("cuda")
    with pytest.raises(MattekitError, match="not a device|not supported"):
        engines.select_device("tpu")


def test_auto_precision_follows_the_catalog_and_the_cpu(monkeypatch):
    """auto: bf16 on the CPU only for nets marked cpu_bf16 and only with native bf16; onnx stays fp32."""
    import dataclasses

    native = policy.native_cpu_bf16()
    marked = dataclasses.replace(catalog.load().get("isnet-general-use"), cpu_bf16=True)
    plain = catalog.load().get("isnet-general-use")
    assert decide(marked, "cpu").precision == ("bf16" if native else "fp32")
    assert decide(plain, "cpu").precision == "fp32"
    if policy.onnx_available():
        assert decide(marked, "cpu", "onnx").precision == "fp32"
        with pytest.raises(MattekitError, match="fp32 only"):
            decide(marked, "cpu", "onnx", "bf16")
    monkeypatch.setenv("MATTEKIT_PRECISION", "fp32")
    assert decide(marked, "cpu").precision == "fp32"
    monkeypatch.delenv("MATTEKIT_PRECISION")
    assert (
        decide(plain, "cpu", precision="bf16").precision == "bf16"
    )  # asked for: runs everywhere (emulated if need be)


def test_auto_never_picks_a_precision_the_catalog_has_not_measured(monkeypatch):
    """On a CPU with native bf16 and on a GPU, ``auto`` lowers the precision only for catalog models whose
    real-weight figures allowed it: bf16 on the CPU none today (u2netp's cost 2.5 IoU points on a user's photos; IS-Net's,
    native, kept all of grabcut50 within the bounds but moved a DAVIS frame by 3e-3); fp16 on CUDA IS-Net's, and the
    BiRefNets with the authors' weights, whose own reference runs fp16 on the GPU (not rembg's ONNX files)."""
    monkeypatch.setattr(policy, "native_cpu_bf16", lambda: True)
    for entry in catalog.load().models.values():
        assert decide(entry, "cpu", "torch").precision == ("bf16" if entry.cpu_bf16 else "fp32"), entry.name
    assert not catalog.load().get("u2netp").cpu_bf16 and not catalog.load().get("isnet-general-use").cpu_bf16
    # fp16 on CUDA where real-weight figures allowed it (tests/conformance/test_fidelity.py): IS-Net, not u2netp; and
    # where the model's own reference runs fp16 on the GPU (BiRefNet's notebook and inference.py)
    assert [name for name, entry in catalog.load().models.items() if entry.half] == [
        "isnet-general-use",
        "birefnet-general",
        "birefnet-general-lite",
        "birefnet-matting",
        "birefnet-hr",
        "birefnet-hr-matting",
        "birefnet-dynamic",
    ]


@pytest.mark.parametrize("native", ["1", "0"])
def test_a_model_marked_cpu_bf16_runs_in_bf16_on_torch_where_the_cpu_has_it(monkeypatch, native):
    """``auto`` on a CPU with native bf16 (claimed, so every machine takes the path): a model marked cpu_bf16 (IS-Net
    marked so here) runs in bf16 on torch, whatever the fp32 engine table says (ONNX Runtime runs fp32 only); without
    native bf16 it runs in fp32 on the engine measured or, unmeasured, ONNX Runtime; u2netp stays fp32 either way; an
    asked backend or precision wins."""
    import dataclasses

    from mattekit.engines import plan

    monkeypatch.setenv("MATTEKIT_CPU_BF16", native)
    isnet = dataclasses.replace(catalog.load().get("isnet-general-use"), cpu_bf16=True)
    u2netp = catalog.load().get("u2netp")
    found = plan.measured("isnet-general-use")
    fp32_engine = plan.winner(found[0]) if found else "onnx"
    if not policy.onnx_available():
        fp32_engine = "torch"
    want = ("torch", "bf16") if native == "1" else (fp32_engine, "fp32")
    assert (decide(isnet, "cpu").engine, decide(isnet, "cpu").precision) == want
    assert decide(u2netp, "cpu").precision == "fp32"
    made = decide(isnet, "cpu", precision="fp32")
    assert (made.engine, made.precision) == (fp32_engine, "fp32")
    if policy.onnx_available():
        made = decide(isnet, "cpu", backend="onnx")
        assert (made.engine, made.precision) == ("onnx", "fp32")


def test_choices_are_checked(monkeypatch):
    u2netp = catalog.load().get("u2netp")
    with pytest.raises(MattekitError, match="Backend 'tensorrt' is unknown"):
        decide(u2netp, "cpu", "tensorrt")
    with pytest.raises(MattekitError, match="not supported on the CPU"):
        decide(u2netp, "cpu", precision="fp16")
    with pytest.raises(MattekitError, match="Precision 'fp8' is unknown"):
        decide(u2netp, "cpu", precision="fp8")
    assert decide(u2netp, "cpu").precision == "fp32"
    monkeypatch.setattr(policy, "select_device", lambda name: torch.device("cuda"))  # a GPU, as far as the plan sees
    monkeypatch.setattr(policy, "gpu_possible", lambda: True)
    with pytest.raises(MattekitError, match="CPU only"):
        decide(u2netp, "cuda", "onnx")
    on_gpu = decide(u2netp, "auto")
    assert (on_gpu.device, on_gpu.engine, on_gpu.precision) == ("cuda", "torch", "fp32")  # half: never measured
    half = decide(dataclasses_replace(u2netp, half=True), "auto")
    assert half.precision == "fp16" and "catalog" in half.why("precision")


def dataclasses_replace(entry, **changes):
    import dataclasses

    return dataclasses.replace(entry, **changes)


def test_without_onnxruntime_the_onnx_backend_is_one_sentence_and_auto_is_torch(monkeypatch):
    """onnxruntime missing (blocked in sys.modules, as an uninstalled package looks to importlib)."""
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    u2netp = catalog.load().get("u2netp")
    assert not policy.onnx_available()
    with pytest.raises(MattekitError, match=r"needs onnxruntime and onnx: pip install 'mattekit\[onnx\]'"):
        decide(u2netp, "cpu", "onnx")
    made = decide(u2netp, "cpu")
    assert made.engine == "torch" and made.why("engine") == "ONNX Runtime is not installed"
    monkeypatch.setenv("MATTEKIT_BACKEND", "onnx")
    with pytest.raises(MattekitError, match="needs onnxruntime"):
        decide(u2netp, "cpu")


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_torch_engines_never_import_onnx(tmp_path):
    """Making and running a CPU engine (fp32 and bf16) imports neither onnxruntime nor onnx."""
    code = """
import sys, torch
from mattekit import catalog, engines
from mattekit.nets import build
for precision in ["fp32", "bf16"]:
    net = build("u2net:U2NETP", in_ch=3, out_ch=1).eval()
    engine = engines.build_torch(net, "cpu", precision, (0,))
    assert engine.name.startswith("torch-cpu"), engine.name
    assert engine(torch.rand(1, 3, 64, 64)).shape == (1, 1, 64, 64)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("onnxruntime", "onnx")))
"""
    env = dict(os.environ, MATTEKIT_HOME=str(tmp_path), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_available_memory_on_the_cpu_is_at_most_the_machine_total():
    free = policy.available_memory(torch.device("cpu"))
    assert isinstance(free, int) and free > 0
    try:
        with open("/proc/meminfo") as f:
            total = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))
    except OSError:
        pytest.skip("no /proc/meminfo here to compare with")
    assert free <= total
