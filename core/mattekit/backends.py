"""Inference engines: how a loaded net runs on its device (the ``backend`` of a Predictor).

An engine is called with an N x C x h x w float32 CPU tensor and returns the prediction element
of the net's output (the catalog's ``output.index``, before any activation) on its device.

``torch`` on CUDA / MPS
    The net in fp16 (or bf16) where the catalog marks it accurate, else fp32; on CUDA also
    channels-last memory, cuDNN autotuning and pinned host memory with non-blocking copies.
    Batches run as given; ``mattekit.pipeline`` feeds batches and gives each worker its own stream.
``torch`` on CPU, fp32
    An fx rewrite of the net's graph in fp32 that shares its weights: BatchNorm folded into the
    convolution before it (in place), 2x2/stride-2 max-pools as two strided maxima (PyTorch's NCHW
    pooling kernel is about 10x slower), and, in single-threaded calls, 3x3 convolutions through
    NNPACK's Winograd kernels where they beat oneDNN's direct ones (about 2x on U^2-Net's layers).
    Same numbers as eager PyTorch to ~1e-6. Nets fx cannot trace run eagerly.
``torch`` on CPU, bf16
    The BatchNorm-folded net in bfloat16, channels-last (oneDNN's direct convolutions use the CPU's
    bf16 dot products), with the 3x3 convolutions of deep, small layers as Winograd F(2x2, 3x3)
    products (2.25x fewer multiplications; 1.2-1.8x faster there on AVX-512 BF16). The default on
    CPUs with native bf16 (AVX-512 BF16, AMX) for catalog models marked ``cpu_bf16`` (their masks
    were measured against fp32's); opt-in elsewhere with ``precision="bf16"``.
``onnx``
    The net exported once to ONNX, cached in ``<weights cache>/onnx`` under the weights' sha256 and a
    digest of the export recipe, run by ONNX Runtime on the CPU (fp32, all graph optimisations).

``auto`` is torch, except on a CPU without NNPACK where ONNX Runtime (if installed) is faster than
oneDNN's direct convolutions. ``$MATTEKIT_BACKEND`` and ``$MATTEKIT_PRECISION`` override ``auto``.

Throughput on CPU comes from several single-threaded calls in parallel threads (``mattekit.pipeline``);
one call alone uses the calling thread's torch thread count (ONNX Runtime: the count when the session
was made).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import io
import json
import os
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import MattekitError

BACKENDS = ("auto", "torch", "onnx")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
ONNX_OPSET = 17
EXPORT_VERSION = 1  # bump when the export recipe changes; older cached exports are then ignored
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_SHORT = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


# ----------------------------------------------------------------------------------- choosing

def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def winograd_available() -> bool:
    """NNPACK is compiled into this torch and initialises on this CPU (also initialises it)."""
    try:
        return bool(torch._nnpack_available())
    except (AttributeError, RuntimeError):
        return False


@functools.lru_cache(maxsize=1)
def native_cpu_bf16() -> bool:
    """The CPU computes bf16 dot products in hardware (AVX-512 BF16 or AMX): bf16 is then fast.

    Read from /proc/cpuinfo on Linux; elsewhere oneDNN's own bf16 check (which also accepts AVX-512
    CPUs that only emulate bf16).
    """
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_backend(backend: str | None, device: torch.device) -> str:
    """``auto`` (or ``$MATTEKIT_BACKEND``) -> "torch" or "onnx"; a backend that cannot run here is an error."""
    name = (backend or "auto").lower()
    if name == "auto":
        name = os.environ.get("MATTEKIT_BACKEND", "auto").lower() or "auto"
    if name not in BACKENDS:
        raise MattekitError(f"Backend '{name}' is unknown; use auto, torch or onnx.")
    if name == "auto":  # measured: fx+Winograd torch beats ONNX Runtime on CPU; ONNX Runtime beats plain oneDNN
        cpu_onnx = device.type == "cpu" and not winograd_available() and onnx_available()
        return "onnx" if cpu_onnx else "torch"
    if name == "onnx":
        if device.type != "cpu":
            raise MattekitError(f"The onnx backend runs on the CPU only, not on {device.type}; use --device cpu or the torch backend.")
        if not onnx_available():
            raise MattekitError("The onnx backend needs onnxruntime and onnx: pip install 'mattekit[onnx]'.")
    return name


def _precision_name(precision: str | None) -> str:
    """``precision`` (``auto``: ``$MATTEKIT_PRECISION`` when set) checked against PRECISIONS."""
    name = (precision or "auto").lower()
    if name == "auto":
        name = os.environ.get("MATTEKIT_PRECISION", "auto").lower() or "auto"
    if name not in PRECISIONS:
        raise MattekitError(f"Precision '{name}' is unknown; use auto, fp32, fp16 or bf16.")
    return name


def resolve_precision(precision: str | None, device: torch.device, half_ok: bool = True,
                      cpu_bf16_ok: bool = False) -> torch.dtype:
    """``auto`` (or ``$MATTEKIT_PRECISION``): on CUDA fp16 where the catalog says it is accurate
    (``half_ok``), on CPUs with native bf16 bf16 where the catalog says so (``cpu_bf16_ok``), else fp32.

    bf16 on the CPU: 1.35-1.6x faster than the fp32 Winograd path with native bf16 (U^2-Net, U^2-Net-P,
    IS-Net), masks moving by 0.2-0.7% of their range (models/catalog.toml); slow without native bf16.
    """
    name = _precision_name(precision)
    if name == "auto":
        if device.type == "cuda":
            return torch.float16 if half_ok else torch.float32
        return torch.bfloat16 if device.type == "cpu" and cpu_bf16_ok and native_cpu_bf16() else torch.float32
    dtype = _DTYPES[name]
    if device.type == "cpu" and dtype is torch.float16:
        raise MattekitError("fp16 is not supported on the CPU; use fp32 or bf16.")
    if device.type == "cpu" and dtype is torch.bfloat16 and not native_cpu_bf16():
        raise MattekitError("This CPU has no native bf16 arithmetic (AVX-512 BF16 or AMX), so bf16 would be slow; use fp32.")
    if device.type == "cuda" and dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise MattekitError("This GPU has no bf16 support; use fp16 or fp32.")
    return dtype


def engine_precision(backend: str, precision: str | None, device: torch.device, half_ok: bool = True,
                     cpu_bf16_ok: bool = False) -> torch.dtype:
    """The dtype a resolved ``backend`` runs in: :func:`resolve_precision`'s, except that the onnx
    backend runs in fp32 only (``auto`` gives fp32 there, an explicit fp16/bf16 is an error)."""
    if backend != "onnx":
        return resolve_precision(precision, device, half_ok, cpu_bf16_ok)
    if _precision_name(precision) not in ("auto", "fp32"):
        raise MattekitError("The onnx backend runs in fp32 only; leave --precision at auto or fp32.")
    return torch.float32


def create(net: nn.Module, device: torch.device, *, backend: str | None = "auto", precision: str | None = "auto",
           index: tuple = (), half_ok: bool = True, cpu_bf16_ok: bool = False, weights_path: str | Path | None = None,
           recipe: dict | None = None, example: tuple[int, int] = (64, 64), dynamic_size: bool = True,
           threads: int | None = None):
    """The engine running ``net`` (an eval-mode fp32 CPU module, converted in place) on ``device``.

    index: the prediction's path in the net's return value. half_ok / cpu_bf16_ok: fp16 on CUDA /
    bf16 on the CPU is accurate for this net (``auto`` precision then uses it).
    weights_path / recipe: identify the ONNX export (weights' sha256; net name and kwargs).
    example: an input height and width the net accepts; dynamic_size: inputs of other sizes will come
    (both for the ONNX export, which is static in height and width otherwise).
    threads: ONNX Runtime intra-op threads (default: torch's thread count now).
    """
    name = resolve_backend(backend, device)
    dtype = engine_precision(name, precision, device, half_ok, cpu_bf16_ok)
    if name == "onnx":
        recipe = dict(recipe or {}, size=None if dynamic_size else list(example))
        path = onnx_path(net, index, weights_path, recipe)
        return OnnxEngine(net, index, path, example=example, dynamic_size=dynamic_size, threads=threads)
    if device.type == "cpu" and dtype is torch.float32:
        return FastCPUEngine(net, index)
    return TorchEngine(net, device, dtype, index)


# ----------------------------------------------------------------------------------- helpers

def select_output(out, index: tuple):
    """The element at path ``index`` of a net's (nested tuple/list) return value."""
    for i in index:
        out = out[i]
    return out


class Selected(nn.Module):
    """``net`` with its return value narrowed to the element at ``index``: N x C x h x w."""

    def __init__(self, net: nn.Module, index: tuple = ()):
        super().__init__()
        self.net = net
        self.index = tuple(index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return select_output(self.net(x), self.index)


def to_host(t: torch.Tensor) -> torch.Tensor:
    """``t`` on the CPU; from CUDA through pinned memory with a non-blocking copy on the current stream."""
    if t.device.type == "cpu":
        return t
    if t.device.type != "cuda":
        return t.cpu()
    host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    host.copy_(t, non_blocking=True)
    torch.cuda.current_stream(t.device).synchronize()
    return host


def worker_stream(device: torch.device):
    """A context giving the calling thread its own CUDA stream (copies and kernels of parallel
    workers then overlap); a no-op elsewhere."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    return torch.cuda.stream(torch.cuda.Stream(device))


def pinned_stack(tensors: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """Concatenate 1 x C x h x w tensors into one batch, in pinned memory when it goes to CUDA."""
    if len(tensors) == 1 and device.type != "cuda":
        return tensors[0]
    shape = (sum(t.shape[0] for t in tensors),) + tuple(tensors[0].shape[1:])
    out = torch.empty(shape, dtype=tensors[0].dtype, pin_memory=device.type == "cuda")
    return torch.cat(tensors, out=out)


# ----------------------------------------------------------------------------------- torch (GPU)

class TorchEngine:
    """The net as it is, on ``device`` in ``dtype`` (CUDA: channels-last, cuDNN autotuning, pinned input)."""

    concurrent = True

    def __init__(self, net: nn.Module, device: torch.device, dtype: torch.dtype, index: tuple = ()):
        self.device, self.dtype, self.index = device, dtype, tuple(index)
        self.channels_last = device.type == "cuda" or (device.type == "cpu" and dtype is torch.bfloat16)
        self.module = fold_batchnorm(Selected(net, index))  # in fp32, before any rounding to half precision
        winograd = device.type == "cpu" and dtype is torch.bfloat16 and _swap_convs_bf16(self.module)
        self.net = net.to(device=device, dtype=dtype)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input sizes: pick the fastest kernels once
        self.name = f"torch-{device.type}-{_SHORT[dtype]}" + ("-winograd" if winograd else "")

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.module(x)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda" and x.device.type == "cpu" and not x.is_pinned():
            x = x.pin_memory()
        x = x.to(self.device, non_blocking=True).to(self.dtype)
        if not self.channels_last:
            return self._run(x)
        try:
            return self._run(x)
        except RuntimeError as exc:  # a net that views its features as contiguous: run it NCHW from now on
            if "stride" not in str(exc) and "view" not in str(exc) and "contiguous" not in str(exc):
                raise
            self.channels_last = False
            self.net.to(memory_format=torch.contiguous_format)
            return self._run(x.contiguous())


# ----------------------------------------------------------------------------------- torch (CPU)

class FastCPUEngine:
    """fp32 CPU inference through an fx-optimised graph (see the module docstring)."""

    concurrent = True

    def __init__(self, net: nn.Module, index: tuple = ()):
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self.net = net.to(device=self.device, dtype=self.dtype)
        self.module, self.name = optimise_for_cpu(Selected(self.net, index))

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.to("cpu", torch.float32))


def _trace(module: nn.Module) -> torch.fx.GraphModule | None:
    try:
        return torch.fx.symbolic_trace(module)
    except Exception:  # control flow on shapes and the like: fx cannot trace it, it runs eagerly
        return None


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` as an fx graph with its BatchNorms folded into the convs before them (in place), or as it is."""
    gm = _trace(module)
    if gm is None:
        return module
    _fold_batchnorm(gm, module)
    gm.graph.lint()
    gm.recompile()
    return gm


def optimise_for_cpu(module: nn.Module) -> tuple[nn.Module, str]:
    """(optimised module, engine name). BatchNorm is folded into ``module``'s own convs in place."""
    gm = _trace(module)
    if gm is None:
        return module, "torch-cpu-fp32"
    _fold_batchnorm(gm, module)
    _swap_pools(gm)
    winograd = winograd_available()
    if winograd:
        _swap_convs(gm)
    gm.graph.lint()
    gm.recompile()
    return gm, "torch-cpu-winograd" if winograd else "torch-cpu-fused"


def _module_uses(gm: torch.fx.GraphModule) -> dict[int, int]:
    """How many graph nodes call each module object (by identity, so aliases count together)."""
    uses: dict[int, int] = {}
    for n in gm.graph.nodes:
        if n.op == "call_module":
            key = id(gm.get_submodule(n.target))
            uses[key] = uses.get(key, 0) + 1
    return uses


def _fold_batchnorm(gm: torch.fx.GraphModule, root: nn.Module) -> None:
    """Fold every eval BatchNorm2d that only follows a Conv2d used once into that conv's weights.

    The conv is updated in place (it is shared by ``root`` and ``gm``); the BatchNorm becomes an
    Identity in ``root`` and disappears from ``gm``'s graph, so both stay correct.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    uses = _module_uses(gm)
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not node.args or not isinstance(node.args[0], torch.fx.Node):
            continue
        bn = gm.get_submodule(node.target)
        prev = node.args[0]
        if not isinstance(bn, nn.BatchNorm2d) or prev.op != "call_module" or len(prev.users) != 1:
            continue
        conv = gm.get_submodule(prev.target)
        if (type(conv) is not nn.Conv2d or bn.training or bn.running_mean is None
                or uses[id(conv)] != 1 or uses[id(bn)] != 1):
            continue
        with torch.no_grad():
            weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var,
                                                bn.eps, bn.weight, bn.bias)
        conv.weight, conv.bias = weight, bias
        parent, _, name = node.target.rpartition(".")
        setattr(root.get_submodule(parent) if parent else root, name, nn.Identity())
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)


def max_pool_2x2(x: torch.Tensor, ceil_mode: bool) -> torch.Tensor:
    """``F.max_pool2d(x, 2, 2, ceil_mode=ceil_mode)`` as two strided maxima (exactly equal, ~10x faster)."""
    h, w = x.shape[-2:]
    if ceil_mode and (h % 2 or w % 2):
        x = F.pad(x, (0, w % 2, 0, h % 2), value=float("-inf"))
    elif not ceil_mode:
        x = x[..., : h - h % 2, : w - w % 2]
    rows = torch.maximum(x[..., 0::2, :], x[..., 1::2, :])
    return torch.maximum(rows[..., 0::2], rows[..., 1::2])


def _pool_signature(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """F.max_pool2d's parameters, to read a traced call's arguments by name."""


def _is_2x2(kernel, stride, padding, dilation, return_indices) -> bool:
    two = lambda v: v in (2, (2, 2), [2, 2])  # noqa: E731
    return (two(kernel) and (stride is None or two(stride)) and padding in (0, (0, 0), [0, 0])
            and dilation in (1, (1, 1), [1, 1]) and not return_indices)


def _swap_pools(gm: torch.fx.GraphModule) -> None:
    """Replace 2x2/stride-2 max-pools (functional or module) by :func:`max_pool_2x2`."""
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target in (F.max_pool2d, torch.max_pool2d):
            try:
                p = inspect.signature(_pool_signature).bind(*node.args, **node.kwargs).arguments
            except TypeError:
                continue
            source, ceil = p["input"], p.get("ceil_mode", False)
            if not _is_2x2(p["kernel_size"], p.get("stride"), p.get("padding", 0), p.get("dilation", 1),
                           p.get("return_indices", False)):
                continue
        elif node.op == "call_module" and isinstance(gm.get_submodule(node.target), nn.MaxPool2d):
            m = gm.get_submodule(node.target)
            if not _is_2x2(m.kernel_size, m.stride, m.padding, m.dilation, m.return_indices):
                continue
            source, ceil = node.args[0], m.ceil_mode
        else:
            continue
        if not isinstance(ceil, bool):
            continue
        with gm.graph.inserting_after(node):
            fast = gm.graph.call_function(max_pool_2x2, (source, ceil))
        node.replace_all_uses_with(fast)
        gm.graph.erase_node(node)


WINOGRAD_WORKSPACE = 24 << 20  # bytes of NNPACK workspace one band of rows may need (it is kept per thread)


def conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 3x3, stride-1, padding-1 convolution: NNPACK's Winograd kernel when this call runs on one
    thread (NNPACK's own pool is then single-threaded too) and the layer is big enough to gain
    (measured per layer shape on AVX-512 and AVX2 CPUs), else torch's own kernel.

    NNPACK's transformed tiles take about 7 bytes x (in + out channels) per pixel, in a workspace
    each thread keeps; large layers therefore run in bands of rows, which bounds it.
    """
    n, c, h, w = x.shape
    if not (c >= 16 and x.dtype == torch.float32 and torch.get_num_threads() == 1
            and (h * w >= 1600 or (h * w >= 400 and c * weight.shape[0] >= 16384))):
        return F.conv2d(x, weight, bias, padding=1)
    try:
        return _winograd(x, weight, bias)
    except RuntimeError:  # NNPACK refused this shape: the direct kernel gives the same numbers
        return F.conv2d(x, weight, bias, padding=1)


def _winograd(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    n, c, h, w = x.shape
    rows = max(6, WINOGRAD_WORKSPACE // (7 * (c + weight.shape[0]) * w) // 6 * 6)
    out = []
    for i in range(n):
        for top in range(0, h, rows):
            bottom = min(h, top + rows)
            if top == 0 and bottom == h:
                band = x[i : i + 1].contiguous()
                out.append(torch._nnpack_spatial_convolution(band, weight, bias, [1, 1]))
                continue
            # the band with one row of context on each side, zeros at the image's own top/bottom edge
            band = F.pad(x[i : i + 1, :, max(0, top - 1) : min(h, bottom + 1)], (0, 0, int(top == 0), int(bottom == h)))
            out.append(torch._nnpack_spatial_convolution(band, weight, bias, [0, 1]))
    if len(out) == 1:
        return out[0]
    if n == 1:
        return torch.cat(out, dim=2)
    per = len(out) // n
    return torch.cat([torch.cat(out[i * per : (i + 1) * per], dim=2) for i in range(n)])


def _swap_convs(gm: torch.fx.GraphModule) -> None:
    """Route plain 3x3/stride-1/padding-1 convolutions through :func:`conv3x3`."""
    for node in list(gm.graph.nodes):
        if node.op != "call_module":
            continue
        m = gm.get_submodule(node.target)
        if not _plain_3x3(m):
            continue
        with gm.graph.inserting_before(node):
            weight = gm.graph.get_attr(f"{node.target}.weight")
            bias = gm.graph.get_attr(f"{node.target}.bias") if m.bias is not None else None
            fast = gm.graph.call_function(conv3x3, (node.args[0], weight, bias))
        node.replace_all_uses_with(fast)
        gm.graph.erase_node(node)


def _plain_3x3(m: nn.Module) -> bool:
    """``m`` is a 3x3, stride-1, padding-1, undilated, ungrouped, zero-padded Conv2d."""
    return (type(m) is nn.Conv2d and m.kernel_size == (3, 3) and m.stride == (1, 1) and m.dilation == (1, 1)
            and m.padding == (1, 1) and m.groups == 1 and m.padding_mode == "zeros")


# Winograd F(2x2, 3x3): an output tile y (2 x 2) = A^T [(G w G^T) * (B^T d B)] A for an input tile d (4 x 4).
_WINOGRAD_G = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def winograd_f2_weights(weight: torch.Tensor) -> torch.Tensor:
    """K x C x 3 x 3 kernels -> their 16 Winograd F(2x2, 3x3) components, 16 x C x K bfloat16
    (component a * 4 + b of G w G^T), computed in fp32 (G's entries are 0, 1 and 1/2)."""
    g = _WINOGRAD_G.to(weight.device)
    u = torch.einsum("ai,kcij,bj->abck", g, weight.detach().float(), g)
    return u.reshape(16, weight.shape[1], weight.shape[0]).to(torch.bfloat16).contiguous()


def winograd_f2(x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """3x3/stride-1/padding-1 convolution of ``x`` (N x C x H x W bf16, channels-last) with kernels
    ``u`` (from :func:`winograd_f2_weights`): Winograd F(2x2, 3x3), the 16 products as one batched bf16
    matrix product (fp32 accumulation), the output transform in fp32. N x K x H x W bf16, channels-last;
    errors 1.3-2.5x those of oneDNN's direct bf16 convolution
    (the products are rounded to bf16 before the output transform sums them)."""
    n, c, h, w = x.shape
    th, tw = (h + 1) // 2, (w + 1) // 2
    p = F.pad(x, (1, 1 + w % 2, 1, 1 + h % 2)).permute(0, 2, 3, 1)  # N x (2th+2) x (2tw+2) x C, a view
    rows = [p[:, i : i + 2 * th : 2] for i in range(4)]  # row i of every tile
    rows = (rows[0] - rows[2], rows[1] + rows[2], rows[2] - rows[1], rows[1] - rows[3])  # B^T d
    v = x.new_empty((4, 4, n, th, tw, c))
    for a, r in enumerate(rows):  # (B^T d) B, column by column
        cols = [r[:, :, j : j + 2 * tw : 2] for j in range(4)]
        torch.sub(cols[0], cols[2], out=v[a, 0])
        torch.add(cols[1], cols[2], out=v[a, 1])
        torch.sub(cols[2], cols[1], out=v[a, 2])
        torch.sub(cols[1], cols[3], out=v[a, 3])
    m = torch.bmm(v.view(16, -1, c), u).view(4, 4, n, th, tw, -1).float()
    out = m.new_empty((n, th, 2, tw, 2, m.shape[-1]))
    for i, s in enumerate((m[0] + m[1] + m[2], m[1] - m[2] - m[3])):  # A^T m, then (A^T m) A
        torch.add(s[0] + s[1], s[2], out=out[:, :, i, :, 0])
        torch.sub(s[1] - s[2], s[3], out=out[:, :, i, :, 1])
    out = out.view(n, 2 * th, 2 * tw, -1)[:, :h, :w]
    if bias is not None:
        out = out + bias
    return out.to(torch.bfloat16).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


def conv3x3_bf16(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, u: torch.Tensor) -> torch.Tensor:
    """A 3x3/stride-1/padding-1 bf16 convolution: :func:`winograd_f2` on deep, small layers (at least
    128 channels and at most 12.5 pixels per channel: measured faster there on AVX-512 BF16), else
    oneDNN's direct kernel."""
    c, h, w = x.shape[1:]
    if x.dtype is torch.bfloat16 and c >= 128 and h * w * 8 <= c * 100:
        return winograd_f2(x, u, bias)
    return F.conv2d(x, weight, bias, padding=1)


def _swap_convs_bf16(gm: nn.Module) -> bool:
    """Route the plain 3x3 convolutions of the fx graph ``gm`` through :func:`conv3x3_bf16`, with their
    Winograd kernels as buffers of ``gm``; whether any was routed (False when ``gm`` is no graph)."""
    if not isinstance(gm, torch.fx.GraphModule):
        return False
    swapped = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not _plain_3x3(gm.get_submodule(node.target)):
            continue
        m = gm.get_submodule(node.target)
        if m.in_channels < 128:  # never takes the Winograd path: no kernels to keep
            continue
        name = f"_winograd_{swapped}"
        gm.register_buffer(name, winograd_f2_weights(m.weight), persistent=False)
        with gm.graph.inserting_before(node):
            args = (node.args[0], gm.graph.get_attr(f"{node.target}.weight"),
                    gm.graph.get_attr(f"{node.target}.bias") if m.bias is not None else None, gm.graph.get_attr(name))
            fast = gm.graph.call_function(conv3x3_bf16, args)
        node.replace_all_uses_with(fast)
        gm.graph.erase_node(node)
        swapped += 1
    if swapped:
        gm.graph.lint()
        gm.recompile()
    return bool(swapped)


# ----------------------------------------------------------------------------------- ONNX

_DIGESTS: dict[tuple, str] = {}


def _weights_digest(net: nn.Module, weights_path: str | Path | None) -> str:
    """sha256 of the weights file (remembered per path, size and mtime), else of the state dict."""
    if weights_path is not None:
        path = Path(weights_path)
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key not in _DIGESTS:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            _DIGESTS[key] = h.hexdigest()
        return _DIGESTS[key]
    h = hashlib.sha256()
    for name, t in net.state_dict().items():
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def onnx_path(net: nn.Module, index: tuple = (), weights_path: str | Path | None = None,
              recipe: dict | None = None) -> Path:
    """Where the ONNX export of ``net`` (with these weights and this output) is cached."""
    from .weights import cache_dir

    recipe = dict(recipe or {})
    recipe.setdefault("net", f"{type(net).__module__}.{type(net).__qualname__}")
    recipe.update(index=list(index), opset=ONNX_OPSET, export=EXPORT_VERSION,
                  torch=torch.__version__.split("+")[0].rsplit(".", 1)[0])
    tag = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:10]
    label = str(recipe.get("net", "model")).split(":")[-1].split(".")[-1].lower()
    return cache_dir() / "onnx" / f"{label}-{_weights_digest(net, weights_path)[:16]}-{tag}.onnx"


def export_onnx(net: nn.Module, path: str | Path, index: tuple = (), example: tuple[int, int] = (64, 64),
                dynamic_size: bool = True) -> Path:
    """Export ``Selected(net, index)`` (fp32, CPU) to ``path`` atomically.

    With ``dynamic_size`` the batch size, height and width stay dynamic; otherwise the graph is
    static at 1 x 3 x ``example`` (shape-dependent pooling, as in SINet, only exports that way).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")
    module = Selected(net, index).eval()
    x = torch.rand((1, 3) + tuple(example), generator=torch.Generator().manual_seed(0))
    args = dict(opset_version=ONNX_OPSET, input_names=["input"], output_names=["prediction"])
    if dynamic_size:
        args["dynamic_axes"] = {"input": {0: "n", 2: "h", 3: "w"}, "prediction": {0: "n", 2: "oh", 3: "ow"}}
    chatter = io.StringIO()
    try:
        with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(module, (x,), str(tmp), dynamo=False, **args)
            except TypeError:  # torch < 2.5 has only the TorchScript exporter and no `dynamo` argument
                torch.onnx.export(module, (x,), str(tmp), **args)
        os.replace(tmp, path)
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise MattekitError(f"{type(net).__name__} cannot be exported to ONNX ({reason}); use the torch backend.") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


class OnnxEngine:
    """The net exported to ONNX (once, cached) and run by ONNX Runtime on the CPU in fp32."""

    concurrent = True  # InferenceSession.run is thread-safe

    def __init__(self, net: nn.Module, index: tuple, path: str | Path, *, example: tuple[int, int] = (64, 64),
                 dynamic_size: bool = True, threads: int | None = None):
        import onnxruntime as ort

        self.device, self.dtype, self.name, self.path = torch.device("cpu"), torch.float32, "onnx-cpu-fp32", Path(path)
        self.net = net.to("cpu", torch.float32)
        if not self.path.is_file():
            print(f"mattekit: exporting {self.path.name} to ONNX once (cached for later runs)...", file=sys.stderr)
            export_onnx(self.net, self.path, index, example, dynamic_size)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.threads = options.intra_op_num_threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # a damaged cache file: export again once
            self.path.unlink(missing_ok=True)
            export_onnx(self.net, self.path, index, example, dynamic_size)
            try:
                self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
            except Exception:
                raise MattekitError(f"ONNX Runtime cannot load the export {self.path.name} ({str(exc).splitlines()[0][:160]}).") from None
        self.input_name = self.session.get_inputs()[0].name
        self.static_batch = not dynamic_size  # a static graph takes one image at a time

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        feed = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        if self.static_batch and feed.shape[0] > 1:
            return torch.cat([self(x[i : i + 1]) for i in range(feed.shape[0])])
        return torch.from_numpy(self.session.run(None, {self.input_name: feed})[0])
