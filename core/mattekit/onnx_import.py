"""ONNX releases as weights: map an ONNX file's trained parameters onto the project's own module.

Exported graphs keep every convolution (batch norm folded into it) and any linear layer, in
the order the exporting forward pass ran them. :func:`import_state_dict` runs the module once
on a small dummy input with forward hooks, lists its convolutions, linear layers and batch
norms in execution order, and pairs them with the graph's Conv / Gemm / MatMul /
BatchNormalization nodes in topological order, checking each pair's structure (weight shape,
stride, padding, dilation, groups). A batch norm that directly consumes a convolution's output
and has no node of its own was folded: it becomes an identity (weight 1, bias 0, mean 0,
var 1 - eps), or carries the folded bias when its convolution has none. Float16 initializers
become float32. Only the ``onnx`` package is needed for this; it is imported lazily.

Running an ONNX file through ONNX Runtime as it is (for files whose architecture has no module here) is
:class:`mattekit.engines.onnx.OnnxRunner`'s job.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from .errors import MattekitError

TRACE_SIZE = 64  # side of the dummy input the module is traced with (pixels)


@dataclass
class _Call:
    """One forward call of a Conv2d / Linear / BatchNorm2d module while tracing."""

    name: str
    module: nn.Module
    after_conv: _Call | None = None  # for a batch norm: the conv call whose output it consumed


@dataclass
class _Node:
    """One parametric node of the ONNX graph, its parameters as float32 arrays."""

    name: str
    op: str
    params: list[np.ndarray | None]
    attrs: dict


def _module_calls(net: nn.Module, trace: Callable) -> list[_Call]:
    """The net's Conv2d / Linear / BatchNorm2d calls in execution order on a dummy input, run as
    ``trace(net, x)`` does (x: 1 x 3 x TRACE_SIZE x TRACE_SIZE in [0, 1])."""
    names = {id(m): n for n, m in net.named_modules()}
    calls: list[_Call] = []
    conv_outputs: dict[int, _Call] = {}
    keep: list[torch.Tensor] = []  # holds traced outputs alive so their ids stay unique

    def hook(module, inputs, output):
        call = _Call(names[id(module)], module)
        if isinstance(module, nn.BatchNorm2d):
            call.after_conv = conv_outputs.get(id(inputs[0]))
        elif isinstance(module, nn.Conv2d):
            conv_outputs[id(output)] = call
            keep.append(output)
        calls.append(call)

    handles = [
        m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d))
    ]
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            trace(net, torch.rand(1, 3, TRACE_SIZE, TRACE_SIZE))
    finally:
        for h in handles:
            h.remove()
        net.train(was_training)
    return calls


def _graph_nodes(path: Path) -> list[_Node]:
    """The graph's Conv, Gemm/MatMul (with a constant weight) and BatchNormalization nodes, in order."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise MattekitError(
            "Reading ONNX weights needs the onnx package, a base dependency of mattekit: pip install 'onnx>=1.14'."
        ) from None
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, ValueError, OSError...
        raise MattekitError(f"{path.name} is not a readable ONNX file ({type(exc).__name__}).") from None
    graph = model.graph
    consts = {t.name: t for t in graph.initializer}
    consts.update(
        {n.output[0]: a.t for n in graph.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"}
    )
    aliases = {n.output[0]: n.input[0] for n in graph.node if n.op_type in ("Identity", "Cast") and n.input}

    def const(name: str) -> np.ndarray | None:
        while name not in consts and name in aliases:
            name = aliases[name]
        return numpy_helper.to_array(consts[name]).astype(np.float32) if name in consts else None

    nodes = []
    for n in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        params = [const(i) if i else None for i in n.input[1:]]
        if n.op_type in ("Conv", "BatchNormalization") or (n.op_type in ("Gemm", "MatMul") and params[0] is not None):
            nodes.append(_Node(n.name or n.output[0], n.op_type, params, attrs))
    return nodes


def _conv_structure(weight_shape, stride, padding, dilation, groups) -> str:
    out_ch, in_ch, kh, kw = weight_shape
    return (
        f"{in_ch * groups}->{out_ch} channels, kernel {kh}x{kw}, stride {tuple(stride)}, "
        f"padding {tuple(padding)}, dilation {tuple(dilation)}, groups {groups}"
    )


def _node_structure(node: _Node) -> str:
    if node.op == "Conv":
        pads = list(node.attrs.get("pads", [0, 0, 0, 0]))
        padding = pads[:2] if pads[:2] == pads[2:] else pads
        return _conv_structure(
            node.params[0].shape,
            node.attrs.get("strides", [1, 1]),
            padding,
            node.attrs.get("dilations", [1, 1]),
            node.attrs.get("group", 1),
        )
    if node.op == "BatchNormalization":
        return f"batch norm on {node.params[0].shape[0]} channels"
    return f"linear layer, weight {tuple(_linear_weight(node).shape)} (out x in)"


def _module_structure(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        return _conv_structure(module.weight.shape, module.stride, module.padding, module.dilation, module.groups)
    if isinstance(module, nn.BatchNorm2d):
        return f"batch norm on {module.num_features} channels"
    return f"linear layer, weight {tuple(module.weight.shape)} (out x in)"


def _linear_weight(node: _Node) -> np.ndarray:
    """A Gemm/MatMul node's weight as nn.Linear stores it (out x in)."""
    w = node.params[0]
    transposed = node.op == "Gemm" and node.attrs.get("transB", 0)
    return w if transposed else w.T


def unmapped_layer(net: nn.Module) -> str | None:
    """The first (by name) layer of ``net`` with parameters that :func:`import_state_dict` cannot map
    (anything but Conv2d, Linear and BatchNorm2d: LayerNorm, Swin's position tables...), or None.
    Looks at the modules only, so a net built on the meta device will do."""
    unsupported = sorted(
        n
        for n, m in net.named_modules()
        if not list(m.children())
        and any(True for _ in m.parameters(recurse=False))
        and not isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d))
    )
    return unsupported[0] if unsupported else None


def import_state_dict(
    path: str | Path, net: nn.Module, model_name: str | None = None, trace: Callable | None = None
) -> OrderedDict[str, torch.Tensor]:
    """The state dict of ``net`` with every parameter taken from the ONNX file at ``path``.

    Keys and shapes are ``net.state_dict()``'s (``strict=True`` loading works); tensors are
    float32. Layers that the exported forward pass never ran (heads left out of the export, e.g.
    MODNet's training-only semantic and detail outputs) get zeros, so loading stays deterministic.
    A graph that does not fit ``net`` raises a MattekitError naming the first layer that differs.
    ``trace``: (net, x) -> the forward call the release was exported with (the net family's
    ``Family.trace``, :class:`mattekit.nets.Family`); None: ``net(x)``.
    """
    path = Path(path)
    label = model_name or type(net).__name__
    unsupported = unmapped_layer(net)
    if unsupported:
        raise MattekitError(f"Model '{label}' has layers the ONNX importer cannot map ({unsupported}).")
    nodes = _graph_nodes(path)
    calls = _module_calls(net, trace or (lambda module, x: module(x)))

    def mismatch(what: str) -> MattekitError:
        return MattekitError(f"ONNX file {path.name} does not fit model '{label}': {what}.")

    return _in_state_dict_order(net, _graph_values(nodes, calls, mismatch))


def _graph_values(
    nodes: list[_Node], calls: list[_Call], mismatch: Callable[[str], MattekitError]
) -> dict[str, torch.Tensor]:
    """The graph's parameters, as float32 tensors keyed ``module name + "." + parameter``: the ``calls`` (the
    module's parametric layers in execution order) paired in turn with the graph's ``nodes``, folded batch
    norms made identities (or given their convolution's bias). ``mismatch(what)``: the error raised for the
    first pair that does not fit."""
    values: dict[str, torch.Tensor] = {}  # module name + "." + parameter -> tensor
    folded_bias: dict[int, np.ndarray] = {}  # id(conv call) -> ONNX bias that belongs to its folded batch norm

    def put(module_name: str, key: str, array: np.ndarray) -> None:
        values[f"{module_name}.{key}" if module_name else key] = torch.from_numpy(np.ascontiguousarray(array))

    k = 0  # next ONNX node
    for call in calls:
        m = call.module
        node = nodes[k] if k < len(nodes) else None
        if isinstance(m, nn.BatchNorm2d):
            params, used = _batch_norm(call, node, folded_bias, mismatch)
            for key, array in params.items():
                put(call.name, key, array)
            k += used
            continue
        _check_layer(call, node, k, len(nodes), mismatch)
        weight = node.params[0] if isinstance(m, nn.Conv2d) else _linear_weight(node)
        bias = node.params[1] if len(node.params) > 1 else None
        put(call.name, "weight", weight)
        if bias is not None and m.bias is None:
            folded_bias[id(call)] = bias  # belongs to the batch norm that follows (checked there)
        elif m.bias is not None:
            put(call.name, "bias", bias if bias is not None else np.zeros(m.bias.shape, np.float32))
        k += 1
    if k < len(nodes):
        raise mismatch(
            f"the graph has {len(nodes) - k} more parametric layers than the model runs "
            f"(first: '{nodes[k].name}', {_node_structure(nodes[k])})"
        )
    if folded_bias:
        raise mismatch("a convolution without bias in the model has a bias in the graph and no batch norm after it")
    return values


def _batch_norm(call: _Call, node: _Node | None, folded_bias: dict, mismatch) -> tuple[dict[str, np.ndarray], bool]:
    """The parameters of the batch norm ``call`` ({name: array}) and whether it took ``node`` (the graph's next
    node): the node's where it is that batch norm, else an identity that keeps the bias ONNX folded into the
    convolution before it (popped from ``folded_bias``); with neither, ``mismatch``'s error."""
    m = call.module
    if node is not None and node.op == "BatchNormalization" and node.params[0].shape[0] == m.num_features:
        scale, bias, mean, var = node.params[:4]
        return {"weight": scale, "bias": bias, "running_mean": mean, "running_var": var}, True
    if call.after_conv is None:
        raise mismatch(
            f"its batch norm '{call.name}' does not follow a convolution and has no "
            f"BatchNormalization node (next node: {node.name if node else 'none'})"
        )
    c = m.num_features
    bias = folded_bias.pop(id(call.after_conv), np.zeros(c, np.float32))
    identity = {
        "weight": np.ones(c, np.float32),
        "bias": bias,
        "running_mean": np.zeros(c, np.float32),
        "running_var": np.full(c, 1.0 - m.eps, np.float32),
    }
    return identity, False


def _check_layer(call: _Call, node: _Node | None, k: int, count: int, mismatch) -> None:
    """``mismatch``'s error where the convolution or linear layer ``call`` has no graph node left (``count`` in all)
    or ``node`` (the ``k``-th, from 0) is not one of its op and shape."""
    m = call.module
    expected_op = "Conv" if isinstance(m, nn.Conv2d) else ("Gemm", "MatMul")
    if node is None:
        raise mismatch(
            f"the graph has {count} parametric layers, the model runs more "
            f"(first unmatched: '{call.name}', {_module_structure(m)})"
        )
    fits = node.op in expected_op
    if fits and isinstance(m, nn.Conv2d):
        fits = _node_structure(node) == _module_structure(m)
    elif fits:
        fits = _linear_weight(node).shape == tuple(m.weight.shape)
    if not fits:
        raise mismatch(
            f"layer #{k + 1} of the graph, '{node.name}' ({node.op}: {_node_structure(node)}), "
            f"does not match the model's '{call.name}' ({_module_structure(m)})"
        )


def _in_state_dict_order(net: nn.Module, values: dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """``net.state_dict()``'s keys, each with its tensor from ``values`` (keyed by the first name of a shared
    module) in the key's dtype and shape; floating tensors absent from ``values`` are zeros."""
    state = OrderedDict()
    aliases = {}
    for name, module in net.named_modules(remove_duplicate=False):
        aliases.setdefault(id(module), name)
    for key, tensor in net.state_dict().items():
        owner, _, leaf = key.rpartition(".")
        canonical = _canonical(net, owner, aliases)
        found = values.get(f"{canonical}.{leaf}" if canonical else leaf)
        if found is not None:
            state[key] = found.to(tensor.dtype).reshape(tensor.shape)
        else:  # not in the graph; integer buffers (num_batches_tracked) keep their value
            state[key] = torch.zeros_like(tensor) if tensor.is_floating_point() else tensor.clone()
    return state


def _canonical(net: nn.Module, module_name: str, first_names: dict[int, str]) -> str:
    """The name ``named_modules()`` gives the module that ``module_name`` refers to (shared modules)."""
    module = net.get_submodule(module_name) if module_name else net
    return first_names[id(module)]
