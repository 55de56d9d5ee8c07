"""Inference engines: how a loaded net runs on its device (the ``backend`` of a Predictor).

An engine is called with an N x C x h x w float32 CPU tensor and returns the prediction element of
the net's output (the catalog's ``output.index``, before any activation) on its device; the ONNX engines also
take a numpy array and then return one. Each has ``name``, ``device_type`` ("cpu", "cuda", "mps"), ``device``,
``dtype`` and ``net`` (the ONNX engines make their torch objects only when asked). :func:`create` picks one:

=================  ==========================================================  =====================
backend/device     engine                                                      module
=================  ==========================================================  =====================
torch, CUDA/MPS    the net in fp16/bf16 where the catalog allows, else fp32      ``torch_engine``
torch, CPU fp32    fx graph: folded BatchNorm, fast pools, NNPACK Winograd       ``cpu_graph``
torch, CPU bf16    folded, channels-last, Winograd F(2x2, 3x3) on deep layers    ``cpu_graph``
onnx, CPU          ONNX export (cached) run by ONNX Runtime in fp32              ``onnx``
an .onnx release   the file as it is, by ONNX Runtime on the CPU (no module)     ``onnx``
=================  ==========================================================  =====================

:func:`mattekit.engines.plan.decide` makes the :class:`~mattekit.engines.plan.Plan` (device, engine, precision,
threads, and why) once per model load, with the model's files (:class:`~mattekit.engines.files.Recipe`); :func:`build`
builds what it says (the net loaded with its weights, then :func:`create`), deciding nothing.

Throughput on CPU comes from several single-threaded calls in parallel threads (``mattekit.running.pipeline``);
one call alone uses the calling thread's thread count (:mod:`mattekit.engines.threads`; ONNX Runtime: a session of
that many threads; an .onnx release: the count when its session was made). A run whose model runs on ONNX Runtime
(:attr:`mattekit.engines.plan.Plan.engine` "onnx") imports torch only to export the model once.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from .. import nets, weights
from ..catalog import ModelEntry
from ..errors import MattekitError
from .files import Recipe, as_read, onnx_export_path, recipe_for
from .plan import Plan
from .policy import available_memory, select_device

if TYPE_CHECKING:
    import torch.nn as nn

__all__ = [
    "build",
    "load_net",
    "Recipe",
    "recipe_for",
    "create",
    "build_torch",
    "onnx_engine",
    "onnx_export_path",
    "from_onnx_file",
    "available_memory",
    "select_device",
    "stack_inputs",
    "select_output",
    "to_host",
    "worker_stream",
]


# ----------------------------------------------------------------------------------- a catalog model's pieces


def _empty_net(entry: ModelEntry | Recipe, path: Path):
    """``entry``'s net built on the meta device (its layers' random initialisation skipped: BiRefNet's took 1.7 s
    of a 5 s load), or None where its weights could not fill it all: an .onnx release (mapped through a traced net),
    a net holding a non-persistent buffer or a plain tensor attribute made in a constructor."""
    import torch

    if path.suffix.lower() == ".onnx":
        return None
    try:
        with torch.device("meta"):
            net = nets.build(entry.net, **entry.kwargs)
    except Exception:  # noqa: BLE001 - a constructor that reads its own tensors' values: built as before
        return None
    for module in net.modules():  # a tensor no state dict fills: a non-persistent buffer, a plain attribute
        if module._non_persistent_buffers_set:
            return None
        for name, value in vars(module).items():
            if name in ("_parameters", "_buffers", "_modules"):
                continue
            values = (
                value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else (value,)
            )
            if any(isinstance(v, torch.Tensor) for v in values):
                return None
    return net


def load_net(entry: ModelEntry | Recipe, path: Path):
    """``entry``'s net (eval mode, fp32, CPU) with the weights at ``path`` (``entry``: a catalog row or a load's
    :class:`~mattekit.engines.files.Recipe`, whose ``name``, ``net`` and ``kwargs`` it reads); one sentence when they
    do not fit. The checkpoint's tensors (cast to fp32 where they are not) become the parameters themselves: no second
    copy, and no random initialisation where the net can be built empty (:func:`_empty_net`)."""
    import torch

    empty = _empty_net(entry, path)
    net = empty if empty is not None else nets.build(entry.net, **entry.kwargs)
    try:
        state = weights.load_state_dict_file(path, net, nets.family(entry.net).trace)
        fp32 = all(t.dtype is torch.float32 for t in state.values() if t.is_floating_point())
        if empty is not None and not fp32:
            state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        net.load_state_dict(state, strict=True, assign=fp32 or empty is not None)
        del state
    except (RuntimeError, ValueError, OSError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MattekitError(f"Weights file {path.name} does not fit model '{entry.name}' ({first[:160]}).") from None
    return net.eval()


def build(plan: Plan):
    """The engine a load's ``plan`` names (:func:`mattekit.engines.plan.decide` with ``loading``), built from the
    model's files it holds (``plan.recipe``): :func:`mattekit.engines.create`, or, where the plan says the weights
    are an ONNX release run as it is (``plan.as_is``: rembg's BiRefNet files,
    :func:`mattekit.engines.plan.release_as_is`), that file on ONNX Runtime on the CPU."""
    made = plan.recipe
    if made is None:
        raise ValueError("build needs a load's plan (decide(..., loading=True)): only it holds the model's files.")
    if plan.as_is:
        return from_onnx_file(made.weights)
    return create(
        plan,
        lambda: load_net(made, made.weights),
        index=made.index,
        weights_path=made.weights,
        recipe=made.spec,
        example=made.example,
        dynamic_size=made.dynamic_size,
        label=made.name,
    )


# ----------------------------------------------------------------------------------- engines


def create(
    plan: Plan,
    load: Callable[[], nn.Module],
    *,
    index: tuple = (),
    weights_path: str | Path | None = None,
    recipe: dict | None = None,
    example: tuple[int, int] = (64, 64),
    dynamic_size: bool = True,
    threads: int | None = None,
    label: str | None = None,
):
    """The engine ``plan`` names (its engine, device, precision and compile mode) running the net ``load()`` makes (an eval-mode fp32
    CPU module with its weights, converted in place). Decides nothing. The ONNX engine calls ``load`` only when its
    cached export is missing (or for ``net``): a run whose export exists builds no module and reads no weights into torch.

    index: the prediction's path in the net's return value. weights_path / recipe: identify the ONNX export (weights'
    sha256; net name and kwargs). example: an input height and width the net accepts; dynamic_size: inputs of other
    sizes will come (both for the ONNX export, which is static in height and width otherwise). threads: ONNX Runtime
    intra-op threads (default: this thread's count, :func:`mattekit.engines.threads.count`). label: the model's name
    where its ONNX export or compilation is shown (the catalog's).
    """
    if plan.engine == "onnx":
        return onnx_engine(load, index, weights_path, recipe, example, dynamic_size, threads, label)
    return build_torch(load(), plan.device, plan.precision, index, compile=plan.compile, label=label, recipe=recipe)


def build_torch(
    net: nn.Module,
    device: str,
    precision: str,
    index: tuple = (),
    *,
    compile: str = "auto",
    label: str | None = None,
    recipe: dict | None = None,
):
    """The torch engine running ``net`` (eval-mode fp32 CPU module, converted in place) on ``device`` ("cpu", "cuda:1")
    in ``precision`` ("fp32", "fp16", "bf16"): the CPU's fast fp32 graph, else the net cast and moved (on CUDA run
    in the ``compile`` mode the caller decided, the plan's: :class:`mattekit.engines.compiled.Compiled`; label /
    recipe name its compiled artefacts)."""
    import torch

    from .torch_engine import FastCPUEngine, TorchEngine, dtype_named

    if device == "cpu" and precision == "fp32":
        return FastCPUEngine(net, index)
    return TorchEngine(
        net, torch.device(device), dtype_named(precision), index, compile=compile, label=label, recipe=recipe
    )


def onnx_engine(
    load: Callable[[], nn.Module],
    index: tuple = (),
    weights_path: str | Path | None = None,
    recipe: dict | None = None,
    example: tuple[int, int] = (64, 64),
    dynamic_size: bool = True,
    threads: int | None = None,
    label: str | None = None,
):
    """:func:`create`'s ONNX engine (arguments as there): with ``weights_path`` and ``recipe["net"]`` its cached
    export is found without building the net, and a run whose export exists imports no torch; one that exports
    builds the net from the bytes its export is named by (:func:`mattekit.engines.files.as_read`)."""
    from .onnx import OnnxEngine

    net = None if weights_path is not None and "net" in (recipe or {}) else load()  # else the path needs the module
    path = onnx_export_path(index, weights_path, recipe, example, dynamic_size, net)
    if net is None:  # the export is named by the weights' digest: built only from those very bytes
        load = as_read(load, Path(weights_path), weights.file_sha256(weights_path))
    return OnnxEngine(
        load if net is None else (lambda: net),
        index,
        path,
        example=example,
        dynamic_size=dynamic_size,
        threads=threads,
        label=label,
    )


def from_onnx_file(path: str | Path, threads: int | None = None):
    """The engine running an ONNX file as it is (ONNX Runtime, CPU): for a release whose layers cannot be
    mapped onto the project's module. Without ONNX Runtime, one sentence naming ``mattekit[onnx]``."""
    from .onnx import OnnxFileEngine

    return OnnxFileEngine(path, threads)


def select_output(out, index: tuple):
    """The prediction element ``index`` of a net's output (:func:`mattekit.engines.torch_engine.select_output`)."""
    from .torch_engine import select_output as selected

    return selected(out, index)


def stack_inputs(inputs: list, device_type: str):
    """1 x C x h x w inputs (numpy arrays, or torch tensors) as one batch: the one input itself, else
    concatenated (torch tensors bound for CUDA: in pinned memory from torch's cache of such blocks, the copy to the
    device then non-blocking)."""
    if len(inputs) == 1 and device_type != "cuda":
        return inputs[0]
    from .inputs import joined

    if device_type != "cuda":
        return joined(inputs)
    import torch

    shape = (sum(t.shape[0] for t in inputs),) + tuple(inputs[0].shape[1:])
    return torch.cat(inputs, out=torch.empty(shape, dtype=inputs[0].dtype, pin_memory=True))


def to_host(prediction):
    """``prediction`` on the CPU: a numpy array or CPU tensor as it is; from CUDA through pinned memory with a
    non-blocking copy on the current stream."""
    if isinstance(prediction, np.ndarray) or prediction.device.type == "cpu":
        return prediction
    if prediction.device.type != "cuda":
        return prediction.cpu()
    import torch

    host = torch.empty(prediction.shape, dtype=prediction.dtype, pin_memory=True)
    host.copy_(prediction, non_blocking=True)
    torch.cuda.current_stream(prediction.device).synchronize()
    return host


def worker_stream(device: str):
    """A context giving the calling thread its own CUDA stream on ``device`` (a name: "cuda", "cuda:1"; copies and
    kernels of parallel workers then overlap); a no-op on other devices."""
    if not str(device).startswith("cuda"):
        return contextlib.nullcontext()
    import torch

    return torch.cuda.stream(torch.cuda.Stream(torch.device(device)))
