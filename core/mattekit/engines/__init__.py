"""Inference engines: how a loaded net runs on its device (the ``backend`` of a Predictor).

An engine is called with an N x C x h x w float32 CPU tensor and returns the prediction element of
the net's output (the catalog's ``output.index``, before any activation) on its device; it has
``name``, ``device``, ``dtype`` and ``net``. :func:`create` picks one:

=================  ==========================================================  =====================
backend/device     engine                                                      module
=================  ==========================================================  =====================
torch, CUDA/MPS    the net in fp16/bf16 where the catalog allows, else fp32      ``torch_engine``
torch, CPU fp32    fx graph: folded BatchNorm, fast pools, NNPACK Winograd       ``cpu_graph``, ``winograd``
torch, CPU bf16    folded, channels-last, Winograd F(2x2, 3x3) on deep layers    ``cpu_graph``, ``winograd``
onnx, CPU          ONNX export (cached) run by ONNX Runtime in fp32              ``onnx``
an .onnx release   the file as it is, by ONNX Runtime on the CPU (no module)     ``onnx``
=================  ==========================================================  =====================

``policy`` turns ``auto`` (and ``$MATTEKIT_BACKEND`` / ``$MATTEKIT_PRECISION``) into a backend and a
dtype: torch, except on a CPU without NNPACK where ONNX Runtime (if installed) beats oneDNN's direct
convolutions; bf16 on CPUs with native bf16 for catalog models marked ``cpu_bf16``.

Throughput on CPU comes from several single-threaded calls in parallel threads (``mattekit.pipeline``);
one call alone uses the calling thread's torch thread count (ONNX Runtime: a session of that many threads;
an .onnx release: the count when its session was made).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from .policy import available_memory, engine_precision, resolve_backend, resolve_precision, select_device
from .torch_engine import FastCPUEngine, TorchEngine, pinned_stack, select_output, to_host, worker_stream

__all__ = ["create", "from_onnx_file", "parallel_calls", "available_memory", "engine_precision", "resolve_backend", "resolve_precision",
           "select_device",
           "pinned_stack", "select_output", "to_host", "worker_stream"]


def create(load: Callable[[], nn.Module], device: torch.device, *, backend: str | None = "auto", precision: str | None = "auto",
           index: tuple = (), half_ok: bool = True, cpu_bf16_ok: bool = False, weights_path: str | Path | None = None,
           recipe: dict | None = None, example: tuple[int, int] = (64, 64), dynamic_size: bool = True,
           threads: int | None = None, label: str | None = None):
    """The engine running the net ``load()`` makes (an eval-mode fp32 CPU module with its weights, converted in
    place) on ``device``. The ONNX engine calls ``load`` only when its cached export is missing (or for ``net``):
    a run whose export exists builds no module and reads no weights into torch.

    index: the prediction's path in the net's return value. half_ok / cpu_bf16_ok: fp16 on CUDA /
    bf16 on the CPU is accurate for this net (``auto`` precision then uses it).
    weights_path / recipe: identify the ONNX export (weights' sha256; net name and kwargs).
    example: an input height and width the net accepts; dynamic_size: inputs of other sizes will come
    (both for the ONNX export, which is static in height and width otherwise).
    threads: ONNX Runtime intra-op threads (default: torch's thread count now).
    label: the model's name where its ONNX export is shown (the catalog's).
    """
    name = resolve_backend(backend, device, precision=precision)
    dtype = engine_precision(name, precision, device, half_ok, cpu_bf16_ok)
    if name == "onnx":
        from .onnx import OnnxEngine, onnx_path

        recipe = dict(recipe or {}, size=None if dynamic_size else list(example))
        net = None if weights_path is not None and "net" in recipe else load()  # else the path needs the module
        path = onnx_path(net, index, weights_path, recipe)
        return OnnxEngine(load if net is None else (lambda: net), index, path, example=example,
                          dynamic_size=dynamic_size, threads=threads, label=label)
    if device.type == "cpu" and dtype is torch.float32:
        return FastCPUEngine(load(), index)
    return TorchEngine(load(), device, dtype, index)


def from_onnx_file(path: str | Path, threads: int | None = None):
    """The engine running an ONNX file as it is (ONNX Runtime, CPU): for a release whose layers cannot be
    mapped onto the project's module. Without ONNX Runtime, one sentence naming ``mattekit[onnx]``."""
    from .onnx import OnnxFileEngine

    return OnnxFileEngine(path, threads)


def parallel_calls(predictor) -> bool:
    """Whether ``predictor``'s engine is best run as several one-thread calls at once (:func:`mattekit.pipeline.plan`):
    an engine running each call with the calling thread's thread count on a fixed input of at most
    :data:`mattekit.onnx_import.SHRINK_ABOVE` pixels (a small net: one call keeps two cores only partly busy, and its
    scratch memory is small enough to hold once per worker)."""
    from ..onnx_import import SHRINK_ABOVE

    size = getattr(getattr(getattr(predictor, "entry", None), "input", None), "size", None)
    return (getattr(getattr(predictor, "engine", None), "parallel_calls", False) and size is not None
            and size[0] * size[1] <= SHRINK_ABOVE)
