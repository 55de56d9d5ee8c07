"""The torch engines: :class:`TorchEngine` on CUDA, MPS or the CPU in bf16, :class:`FastCPUEngine` in fp32.

An engine is called with an N x C x h x w float32 CPU tensor and returns the prediction element
of the net's output (the catalog's ``output.index``, before any activation) on its device.

- :class:`TorchEngine` - the net on CUDA / MPS in fp16, bf16 or fp32 (CUDA: channels-last memory,
  cuDNN's heuristic kernel choice, fp32 without TF32, pinned host memory with non-blocking copies), or
  on the CPU in bf16: the BatchNorm-folded net channels-last (oneDNN's direct convolutions use the
  CPU's bf16 dot products) with the 3x3 convolutions of deep, small layers as Winograd F(2x2, 3x3) products
  and depthwise convolutions in NCHW (:class:`~mattekit.engines.cpu_graph.DepthwiseNCHW`).
  On CUDA each input shape then runs the fastest of eager, CUDA-graph replay and (asked for) torch.compile, by
  measurement (:class:`mattekit.engines.compiled.Compiled`, ``$MATTEKIT_COMPILE``).
- :class:`FastCPUEngine` - fp32 on the CPU through the fx-optimised graph of ``cpu_graph``: folded
  BatchNorm, fast 2x2 max-pools, NNPACK Winograd 3x3 convolutions on single-threaded calls. Same
  numbers as eager PyTorch to ~1e-6.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .compiled import Compiled, cache_folder
from .cpu_graph import depthwise_in_nchw, fold_batchnorm, optimise_for_cpu, route_bf16_convs


def dtype_named(name: str) -> torch.dtype:
    """The torch dtype of a precision name ("fp32", "fp16", "bf16")."""
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def dtype_name(dtype) -> str:
    """The precision name ("fp32", "fp16", "bf16") of a torch dtype."""
    return {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}[str(dtype).replace("torch.", "")]


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


# ----------------------------------------------------------------------------------- engines


class TorchEngine:
    """The net on ``device`` in ``dtype`` (CUDA: channels-last, cuDNN heuristics, no TF32, pinned input;
    CPU bf16: channels-last with Winograd F(2x2, 3x3) on deep layers). ``compile``: the mode of
    :class:`Compiled` on CUDA (:data:`mattekit.engines.plan.COMPILE_MODES`; off elsewhere); ``label`` / ``recipe``:
    the model's name and (net, kwargs), which name its compiled artefacts."""

    concurrent = True

    def __init__(
        self,
        net: nn.Module,
        device: torch.device,
        dtype: torch.dtype,
        index: tuple = (),
        compile: str = "off",
        label: str | None = None,
        recipe: dict | None = None,
    ):
        self.device, self.dtype, self.index, self.device_type = device, dtype, tuple(index), device.type
        self.channels_last = device.type == "cuda" or (device.type == "cpu" and dtype is torch.bfloat16)
        self.module = fold_batchnorm(Selected(net, index))  # in fp32, before any rounding to half precision
        winograd = device.type == "cpu" and dtype is torch.bfloat16 and route_bf16_convs(self.module)
        self.net = net.to(device=device, dtype=dtype)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if device.type == "cpu" and dtype is torch.bfloat16:
            depthwise_in_nchw(self.module)
        if device.type == "cuda":
            # cuDNN's heuristics, not benchmark mode: benchmarked plans are cached per thread, so every new
            # pipeline worker benchmarked every convolution again (H100, u2netp: 2.4-5.1 s against 0.13-0.16 s).
            # These flags are process-wide; a per-call torch.backends.cudnn.flags() context would set and
            # restore the same globals from every worker thread at once, so they are set once, here.
            torch.backends.cudnn.benchmark = False
            if dtype is torch.float32:  # fp32 means fp32 (TF32: 1e-4 to 7e-4 relative error, fp32: 1e-6)
                torch.backends.cudnn.allow_tf32 = False
        self.name = f"torch-{device.type}-{dtype_name(dtype)}" + ("-winograd" if winograd else "")
        self.compiled = self._compiled(compile if device.type == "cuda" else "off", label or type(net).__name__, recipe)

    def _compiled(self, mode: str, label: str, recipe: dict | None):
        """The :class:`Compiled` runner of this engine's mode, None for ``off``."""
        if mode == "off":
            return None
        folder = None
        if mode == "inductor":
            recipe = dict(recipe or {}, dtype=str(self.dtype))
            folder = cache_folder(torch.cuda.get_device_name(self.device), label, recipe)
        run = lambda x: self.module.forward(
            x.contiguous(memory_format=torch.channels_last) if self.channels_last else x
        )
        return Compiled(self._forward, self.device, mode, label, folder, compilable=run)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        # forward, not __call__: an fx graph's __call__ prints its generated code to stderr on any error,
        # and a CUDA out-of-memory error is expected here (the pipeline halves the batch and goes on)
        return self.module.forward(x)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda" and x.device.type == "cpu" and not x.is_pinned():
            x = x.pin_memory()
        x = x.to(self.device, non_blocking=True).to(self.dtype)
        return self._forward(x) if self.compiled is None else self.compiled(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """The net on ``x`` (on the device, in the engine's dtype), eager."""
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


class FastCPUEngine:
    """fp32 CPU inference through the fx-optimised graph of ``cpu_graph.optimise_for_cpu``."""

    concurrent = True

    def __init__(self, net: nn.Module, index: tuple = ()):
        self.device, self.dtype, self.device_type = torch.device("cpu"), torch.float32, "cpu"
        self.net = net.to(device=self.device, dtype=self.dtype)
        self.module, self.name = optimise_for_cpu(Selected(self.net, index))

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.to("cpu", torch.float32))
