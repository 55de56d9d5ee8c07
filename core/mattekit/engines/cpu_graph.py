"""torch.fx rewrites of a net's graph for the CPU engines (the weights stay shared with the net), and the Winograd
3x3 convolution kernels they route to.

- :func:`fold_batchnorm` folds each eval BatchNorm2d into the Conv2d before it (in place, so the net
  itself stays correct too);
- :func:`optimise_for_cpu` (fp32) also replaces 2x2/stride-2 max-pools by :func:`max_pool_2x2` (PyTorch's
  NCHW pooling kernel is about 10x slower) and, where NNPACK exists, routes plain 3x3 convolutions
  through :func:`conv3x3`;
- :func:`route_bf16_convs` (bf16) routes the plain 3x3 convolutions of deep layers through
  :func:`conv3x3_bf16` with their transformed kernels kept as buffers;
- :func:`depthwise_in_nchw` (bf16) runs depthwise convolutions on NCHW memory (:class:`DepthwiseNCHW`).

Nets fx cannot trace (control flow on shapes) are returned as they are and run eagerly.

The kernels (3x3, stride 1, padding 1, no groups):

- fp32: :func:`conv3x3` calls NNPACK's Winograd kernel (``torch._nnpack_spatial_convolution``, a private
  torch API) on single-threaded calls where it beats oneDNN's direct kernel, in bands of rows that bound
  NNPACK's per-thread workspace; anything else goes to ``F.conv2d`` with the same numbers (~1e-6).
- bf16: :func:`conv3x3_bf16` runs Winograd F(2x2, 3x3) written here in torch ops (kernels transformed
  once by :func:`winograd_f2_weights`) on deep, small layers, else oneDNN's direct bf16 kernel.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn as nn
import torch.nn.functional as F

from .policy import nnpack_available

WINOGRAD_WORKSPACE = 24 << 20  # bytes of NNPACK workspace one band of rows may need (it is kept per thread)


# ----------------------------------------------------------------------------------- fp32 (NNPACK)


def conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 3x3, stride-1, padding-1 convolution of N x C x H x W fp32 ``x``: NNPACK's Winograd kernel when
    this call runs on one thread (NNPACK's own pool is then single-threaded too) and the layer is big
    enough to gain (measured per layer shape on AVX-512 and AVX2 CPUs), else torch's own kernel.

    NNPACK's transformed tiles take about 7 bytes x (in + out channels) per pixel, in a workspace
    each thread keeps; large layers therefore run in bands of rows, which bounds it.
    """
    n, c, h, w = x.shape
    if not (
        c >= 16
        and x.dtype == torch.float32
        and torch.get_num_threads() == 1
        and (h * w >= 1600 or (h * w >= 400 and c * weight.shape[0] >= 16384))
    ):
        return F.conv2d(x, weight, bias, padding=1)
    try:
        return _nnpack_in_bands(x, weight, bias)
    except RuntimeError:  # NNPACK refused this shape: the direct kernel gives the same numbers
        return F.conv2d(x, weight, bias, padding=1)


def _nnpack_in_bands(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """NNPACK's convolution image by image, in bands of rows of at most WINOGRAD_WORKSPACE bytes each."""
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


# ----------------------------------------------------------------------------------- bf16 (F(2x2, 3x3))

# Winograd F(2x2, 3x3): an output tile y (2 x 2) = A^T [(G w G^T) * (B^T d B)] A for an input tile d (4 x 4).
_WINOGRAD_G = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
BF16_MIN_CHANNELS = 128  # input channels below which conv3x3_bf16 never takes the Winograd path


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
    BF16_MIN_CHANNELS channels and at most 12.5 pixels per channel: measured faster there on AVX-512
    BF16), else oneDNN's direct kernel."""
    c, h, w = x.shape[1:]
    if x.dtype is torch.bfloat16 and c >= BF16_MIN_CHANNELS and h * w * 8 <= c * 100:
        return winograd_f2(x, u, bias)
    return F.conv2d(x, weight, bias, padding=1)


# ----------------------------------------------------------------------------------- graph rewrites


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
    """(optimised fp32 module, engine name). BatchNorm is folded into ``module``'s own convs in place."""
    gm = _trace(module)
    if gm is None:
        return module, "torch-cpu-fp32"
    _fold_batchnorm(gm, module)
    _swap_pools(gm)
    nnpack = nnpack_available()
    if nnpack:
        _swap_convs(gm)
    gm.graph.lint()
    gm.recompile()
    return gm, "torch-cpu-winograd" if nnpack else "torch-cpu-fused"


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
        if (
            type(conv) is not nn.Conv2d
            or bn.training
            or bn.running_mean is None
            or uses[id(conv)] != 1
            or uses[id(bn)] != 1
        ):
            continue
        with torch.no_grad():
            weight, bias = fuse_conv_bn_weights(
                conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
            )
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
    return (
        two(kernel)
        and (stride is None or two(stride))
        and padding in (0, (0, 0), [0, 0])
        and dilation in (1, (1, 1), [1, 1])
        and not return_indices
    )


def _swap_pools(gm: torch.fx.GraphModule) -> None:
    """Replace 2x2/stride-2 max-pools (functional or module) by :func:`max_pool_2x2`."""
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target in (F.max_pool2d, torch.max_pool2d):
            try:
                p = inspect.signature(_pool_signature).bind(*node.args, **node.kwargs).arguments
            except TypeError:
                continue
            source, ceil = p["input"], p.get("ceil_mode", False)
            if not _is_2x2(
                p["kernel_size"],
                p.get("stride"),
                p.get("padding", 0),
                p.get("dilation", 1),
                p.get("return_indices", False),
            ):
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


def _plain_3x3_nodes(gm: torch.fx.GraphModule):
    """(node, Conv2d) for each graph node calling a plain 3x3 convolution (see :func:`_plain_3x3`)."""
    for node in list(gm.graph.nodes):
        if node.op == "call_module" and _plain_3x3(gm.get_submodule(node.target)):
            yield node, gm.get_submodule(node.target)


def _plain_3x3(m: nn.Module) -> bool:
    """``m`` is a 3x3, stride-1, padding-1, undilated, ungrouped, zero-padded Conv2d."""
    return (
        type(m) is nn.Conv2d
        and m.kernel_size == (3, 3)
        and m.stride == (1, 1)
        and m.dilation == (1, 1)
        and m.padding == (1, 1)
        and m.groups == 1
        and m.padding_mode == "zeros"
    )


def _call_instead(gm: torch.fx.GraphModule, node: torch.fx.Node, fn, *attrs: str | None) -> None:
    """Replace the conv call ``node`` by ``fn(input, *attributes of gm named in attrs (None as None))``."""
    with gm.graph.inserting_before(node):
        args = (node.args[0],) + tuple(None if a is None else gm.graph.get_attr(a) for a in attrs)
        fast = gm.graph.call_function(fn, args)
    node.replace_all_uses_with(fast)
    gm.graph.erase_node(node)


def _swap_convs(gm: torch.fx.GraphModule) -> None:
    """Route plain 3x3/stride-1/padding-1 convolutions through :func:`conv3x3`."""
    for node, m in _plain_3x3_nodes(gm):
        _call_instead(gm, node, conv3x3, f"{node.target}.weight", f"{node.target}.bias" if m.bias is not None else None)


def route_bf16_convs(gm: nn.Module) -> bool:
    """Route the plain 3x3 convolutions of the fx graph ``gm`` through :func:`conv3x3_bf16`, with their
    Winograd kernels as buffers of ``gm``; whether any was routed (False when ``gm`` is no graph)."""
    if not isinstance(gm, torch.fx.GraphModule):
        return False
    swapped = 0
    for node, m in _plain_3x3_nodes(gm):
        if m.in_channels < BF16_MIN_CHANNELS:  # never takes the Winograd path: no kernels to keep
            continue
        name = f"_winograd_{swapped}"
        gm.register_buffer(name, winograd_f2_weights(m.weight), persistent=False)
        _call_instead(
            gm, node, conv3x3_bf16, f"{node.target}.weight", f"{node.target}.bias" if m.bias is not None else None, name
        )
        swapped += 1
    if swapped:
        gm.graph.lint()
        gm.recompile()
    return bool(swapped)


class DepthwiseNCHW(nn.Module):
    """A depthwise ``conv`` (groups == in_channels > 1) run on NCHW memory inside a channels-last bf16 net.

    oneDNN's channels-last bf16 depthwise kernel (brdgmm, on CPUs with AVX-512 BF16) hung in its JIT code
    generation for ExtremeC3's 1x15 convolutions on 112-px-wide maps (minutes and counting on an AMD Zen 4;
    a 1x11 kernel, or the same convolution in NCHW, takes milliseconds)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        # oneDNN follows the weight's layout too, and a C x 1 x 1 x k weight's strides read as channels-last
        # whether or not it was made so: NCHW's own strides, written out
        conv.weight.data = torch.empty(conv.weight.shape, dtype=conv.weight.dtype).copy_(conv.weight.data)
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.contiguous()).contiguous(memory_format=torch.channels_last)


def depthwise_in_nchw(module: nn.Module) -> int:
    """Wrap every depthwise Conv2d of ``module`` (an fx graph or a plain net, already channels-last) in
    :class:`DepthwiseNCHW`, in place; returns how many."""
    found = [
        (parent, name, child)
        for parent in module.modules()
        for name, child in parent.named_children()
        if isinstance(child, nn.Conv2d)
        and child.groups > 1
        and child.groups == child.in_channels
        and not isinstance(parent, DepthwiseNCHW)
    ]
    for parent, name, child in found:
        setattr(parent, name, DepthwiseNCHW(child))
    return len(found)
