"""Every backend gives PyTorch's numbers: the fx/Winograd CPU engine and ONNX Runtime against eager
PyTorch, for every segmentation and super-resolution net (tolerance 1e-4 times the output's magnitude)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close, slow_params

from mattekit import backends, runtime
from mattekit.errors import MattekitError
from mattekit.nets import build
from mattekit.nets.csnet import CSNET_L_X2
from mattekit.weights import load_state_dict_file

onnxruntime = pytest.importorskip("onnxruntime")

# name: (net spec, kwargs, prediction index, conformance folder, inputs from its golden, fixed input size or None).
# Pseudo-weight folders give stand-in weights with random BatchNorm statistics; the *_real folders name
# the real checkpoint (in shared/weights) and hold real, properly scaled inputs.
NETS = {
    "u2net": ("u2net:U2NET", dict(in_ch=3, out_ch=1), (0,), "u2net", ["input", "odd_input"], (128, 128)),
    "u2netp": ("u2net:U2NETP", dict(in_ch=3, out_ch=1), (0,), "u2netp", ["input", "odd_input"], (128, 128)),
    "isnet": ("isnet:ISNetDIS", dict(in_ch=3, out_ch=1), (0, 0), "isnetdis", ["input", "odd_input"], (128, 128)),
    "csnet": ("csnet:CSNet", dict(layer_config=CSNET_L_X2, num_classes=1), (), "csnet_real", ["input_0", "input_1"], (224, 224)),
    "sinet": ("sinet:SINet", dict(classes=2, p=2, q=8, chnn=1), (), "sinet_real", ["input_0", "input_1"], (224, 224)),
    "extremec3": ("extremec3:ExtremeC3Net", dict(classes=1, p=1, q=5), (), "extremec3_real", ["input_0", "input_1"], (224, 224)),
    "srvgg": ("srvgg:SRVGGNetCompact", dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4, act_type="prelu"),
              (), "animevideov3_real", ["input_0", "input_1"], None),
    # RRDBNet x2 (pixel-unshuffle path) with 2 of its 23 blocks: the same code, a tenth of the export time.
    "rrdbnet": ("rrdbnet:RRDBNet", dict(num_in_ch=3, num_out_ch=3, scale=2, num_feat=64, num_block=2, num_grow_ch=32),
                (), "rrdbnet_x2plus", ["input", "input[:, :, 4:, 10:]"], None),
    "rfdn": ("rfdn:RFDN", dict(in_nc=3, nf=50, num_modules=4, out_nc=3, upscale=4), (), "rfdn_real", ["input_0", "input_1"], None),
}


def _net(name, golden, shared):
    """(eval net with weights, prediction index, its inputs, fixed input size or None)."""
    spec, kwargs, index, folder, inputs, size = NETS[name]
    g = golden(folder)
    net = build(spec, **kwargs).eval()
    if "checkpoint" in g.manifest:
        net.load_state_dict(load_state_dict_file(shared / "weights" / g.manifest["checkpoint"]["file"]), strict=True)
    elif name == "rrdbnet":  # fewer blocks than the golden's net: stand-in weights for the keys it has
        net.load_state_dict({k: v for k, v in g.pseudo_state_dict(build(spec, **dict(kwargs, num_block=23))).items()
                             if k in net.state_dict()}, strict=True)
    else:
        net.load_state_dict(g.pseudo_state_dict(net), strict=True)
    xs = [g.tensor(n) if "[" not in n else g.tensor(n.split("[")[0])[:, :, 4:, 10:] for n in inputs]
    return net, index, xs, size


def _reference(net, index, xs):
    with torch.no_grad():
        return [backends.select_output(net(x), index).float() for x in xs]


def _atol(ref: torch.Tensor) -> float:
    return 1e-4 * max(1.0, ref.abs().max().item())


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


@pytest.mark.parametrize("name", slow_params(NETS, ("csnet", "isnet")))  # 45 s each on a busy 2-core machine
def test_fast_cpu_engine_matches_eager(name, golden, shared, nnpack_calls):
    net, index, xs, _ = _net(name, golden, shared)
    refs = _reference(net, index, xs)
    torch.set_num_threads(1)  # single-threaded calls take the Winograd path
    engine = backends.create(net, torch.device("cpu"), backend="torch", index=index)
    assert engine.name == ("torch-cpu-winograd" if backends.winograd_available() else "torch-cpu-fused")
    errors = {}
    for x, ref in zip(xs, refs):
        errors[tuple(x.shape[2:])] = assert_close(engine(x), ref, _atol(ref), f"{name} fast {tuple(x.shape)}")
        with torch.no_grad():  # BatchNorm was folded into the net in place: the eager net still agrees
            assert_close(backends.select_output(engine.net(x), index), ref, _atol(ref), f"{name} folded eager")
    torch.set_num_threads(2)  # multi-threaded calls take torch's own kernels, same numbers
    assert_close(engine(xs[0]), refs[0], _atol(refs[0]), f"{name} fast, 2 threads")
    if backends.winograd_available() and name not in ("csnet", "sinet", "extremec3"):  # no big dense 3x3 convs there
        assert nnpack_calls, "the Winograd path never ran"
    print(name, engine.name, {k: f"{v:.1e}" for k, v in errors.items()})


@pytest.mark.parametrize("name", slow_params(NETS, ("u2net", "csnet", "isnet", "u2netp")))  # 30-70 s to export, busy
def test_onnx_engine_matches_eager(name, golden, shared):
    net, index, xs, size = _net(name, golden, shared)
    xs = [x for x in xs if size is None or tuple(x.shape[2:]) == size]  # a static graph takes its own size only
    refs = _reference(net, index, xs)
    engine = backends.create(net, torch.device("cpu"), backend="onnx", index=index, example=size or (32, 32),
                             dynamic_size=size is None, threads=2)
    assert engine.path.is_file() and engine.path.parent.name == "onnx"
    errors = {}
    for x, ref in zip(xs, refs):
        errors[tuple(x.shape[2:])] = assert_close(engine(x), ref, _atol(ref), f"{name} onnx {tuple(x.shape)}")
    batch = torch.cat([xs[0], xs[0].flip(3)])  # two images in one call
    out = engine(batch)
    assert out.shape[0] == 2
    assert_close(out[:1], refs[0], _atol(refs[0]), f"{name} onnx batch")
    print(name, {k: f"{v:.1e}" for k, v in errors.items()})


def test_onnx_export_is_cached_by_weights(golden, shared, monkeypatch):
    net, index, _, size = _net("extremec3", golden, shared)
    path = backends.onnx_path(net, index, recipe={"size": list(size)})
    assert path == backends.onnx_path(net, index, recipe={"size": list(size)})
    first = backends.create(net, torch.device("cpu"), backend="onnx", index=index, example=size, dynamic_size=False)
    stamp = first.path.stat().st_mtime_ns

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the cache holds the export")

    monkeypatch.setattr(backends, "export_onnx", no_export)
    again = backends.create(net, torch.device("cpu"), backend="onnx", index=index, example=size, dynamic_size=False)
    assert again.path == first.path and again.path.stat().st_mtime_ns == stamp
    with torch.no_grad():
        next(net.parameters()).add_(0.01)
    assert backends.onnx_path(net, index, recipe={"size": list(size)}) != path  # other weights, other file


@pytest.mark.slow
def test_predictor_backends_agree(shared, golden, monkeypatch):
    """Through the runtime: the same catalog model with both backends gives the same probabilities."""
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    torch_pred = runtime.get_predictor("extremec3-portrait", "segment", "cpu", backend="torch")
    onnx_pred = runtime.get_predictor("extremec3-portrait", "segment", "cpu", backend="onnx")
    assert torch_pred is not onnx_pred and onnx_pred.backend == "onnx-cpu-fp32"
    x = golden("extremec3_real").tensor("input_0")  # as prepared from a real portrait
    assert_close(onnx_pred(x), torch_pred(x), 1e-4, "predictor onnx vs torch")
    monkeypatch.setenv("MATTEKIT_BACKEND", "onnx")
    assert runtime.get_predictor("extremec3-portrait", "segment", "cpu") is onnx_pred


bf16_cpu = pytest.mark.skipif(not backends.native_cpu_bf16(), reason="this CPU has no native bf16 (AVX-512 BF16 or AMX)")


@bf16_cpu
@pytest.mark.parametrize("name", ["u2netp", "u2net"])
def test_bf16_on_cpu_stays_close(name, golden, shared):
    """bf16 on the CPU (U^2-Net's deep layers through Winograd F(2x2, 3x3)): masks move by well under 1%."""
    net, index, xs, _ = _net(name, golden, shared)
    refs = _reference(net, index, xs)
    engine = backends.create(net, torch.device("cpu"), backend="torch", precision="bf16", index=index)
    assert engine.dtype is torch.bfloat16
    assert engine.name == "torch-cpu-bf16-winograd"  # the decoders' 128+ channel convolutions were routed

    def norm(t):
        return (t - t.min()) / (t.max() - t.min())

    for x, ref in zip(xs, refs):  # a square and an odd-sized input
        assert (norm(engine(x).float()) - norm(ref)).abs().mean().item() < 0.01


@pytest.mark.parametrize("n,c,k,h,w,bias", [(1, 256, 64, 20, 20, True), (2, 128, 32, 7, 9, False), (1, 512, 16, 1, 1, True),
                                          (1, 130, 8, 6, 5, True)])
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
    got = backends.winograd_f2(x, backends.winograd_f2_weights(weight), b)
    assert got.shape == ref.shape and got.dtype is torch.bfloat16 and got.is_contiguous(memory_format=torch.channels_last)
    err, direct_err = (got.float() - ref).abs(), (direct.float() - ref).abs()
    assert err.mean() <= 3 * direct_err.mean() + 1e-4, (err.mean(), direct_err.mean())
    assert err.max() <= 4 * direct_err.max() + 1e-3, (err.max(), direct_err.max())


def test_auto_precision_follows_the_catalog_and_the_cpu(monkeypatch):
    """auto: bf16 on the CPU only for nets marked cpu_bf16 and only with native bf16; onnx stays fp32."""
    cpu = torch.device("cpu")
    native = backends.native_cpu_bf16()
    assert backends.resolve_precision("auto", cpu, cpu_bf16_ok=True) is (torch.bfloat16 if native else torch.float32)
    assert backends.resolve_precision("auto", cpu, cpu_bf16_ok=False) is torch.float32
    assert backends.engine_precision("onnx", "auto", cpu, cpu_bf16_ok=True) is torch.float32
    with pytest.raises(MattekitError, match="fp32 only"):
        backends.engine_precision("onnx", "bf16", cpu)
    monkeypatch.setenv("MATTEKIT_PRECISION", "fp32")
    assert backends.resolve_precision("auto", cpu, cpu_bf16_ok=True) is torch.float32
    monkeypatch.delenv("MATTEKIT_PRECISION")
    if not native:
        with pytest.raises(MattekitError, match="no native bf16"):
            backends.resolve_precision("bf16", cpu)


@pytest.mark.parametrize("h,w", [(8, 8), (7, 9), (1, 1), (6, 5)])
@pytest.mark.parametrize("ceil", [True, False])
def test_max_pool_2x2_is_exact(h, w, ceil):
    x = torch.randn(2, 3, h, w)
    if not ceil and (h < 2 or w < 2):
        return
    assert torch.equal(backends.max_pool_2x2(x, ceil), F.max_pool2d(x, 2, 2, ceil_mode=ceil))


def test_choices_are_checked():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    with pytest.raises(MattekitError, match="unknown"):
        backends.resolve_backend("tensorrt", cpu)
    with pytest.raises(MattekitError, match="CPU only"):
        backends.resolve_backend("onnx", cuda)
    with pytest.raises(MattekitError, match="not supported on the CPU"):
        backends.resolve_precision("fp16", cpu)
    assert backends.resolve_precision("auto", cpu) is torch.float32
    assert backends.resolve_precision("auto", cuda, half_ok=True) is torch.float16
    assert backends.resolve_precision("auto", cuda, half_ok=False) is torch.float32
    assert backends.resolve_backend("auto", cuda) == "torch"
