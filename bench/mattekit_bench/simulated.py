"""A simulated GPU, the bench's and the tests' double (no production module knows of it): an engine holding "the
device" a set time per image of each batch without the GIL (the calling thread sleeps in a lock, as a CUDA stream's
kernels let the host run) and returning the net's output shapes, so that the host side (decode, input preparation,
the finish, encoding) is measured on a machine without a GPU, with the device's busy share (time held over wall time).

``bench speed --simulate-device MS`` injects it with :func:`install` (models planned by :func:`deciding`: a CUDA
GPU's plan, :func:`gpu_plan`, the network's tensors on the CPU; loaded by :func:`predictor`) into its tool process, and
into a whole command run as ``python -m mattekit_bench.simulated MS REPORT COMMAND...`` (``python -m mattekit
COMMAND...``, its :func:`figures` written to REPORT at exit). The finish a GPU runs on the model's device (1 MP and
up) is held, not computed (:class:`HeldFinish`): each device step holds one image's time and returns its input (the
upsampled mask, the solve's starting alpha, the photo's colours); the host's work around them is real, their
transfers are not simulated. The output for each input shape (found by a forward on torch's meta device and kept in
the cache's ``simulated-shapes.json``: that forward cost 1.5 s of CPU) holds a soft ellipse, logits +8 inside and -8
outside with a ramp between, so that a finish works along an edge as on a real mask.
"""

from __future__ import annotations

import atexit
import json
import runpy
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from mattekit import runtime
from mattekit.engines import load_net, recipe_for
from mattekit.engines.plan import BACKENDS, Plan, asked, decide, placed
from mattekit.matting.levels import result_array

_HELD = threading.Lock()  # the one simulated device of this process
_TALLY = threading.Lock()
_FIGURES = {"held_s": 0.0, "batches": 0, "images": 0, "finish_steps": 0, "first_s": None, "last_s": None}
_PREDICTOR = runtime.Predictor  # the real one, which :func:`install` replaces


def figures() -> dict:
    """What the device did in this process: held_s (seconds held), batches, images (padding included), finish_steps
    (the finish's device steps held: :class:`HeldFinish`), and first_s / last_s (perf_counter seconds at the first
    hold's start and the last one's end; None before any)."""
    with _TALLY:
        return dict(_FIGURES)


def reset() -> None:
    """Start the figures afresh (a bench's or a test's run of its own)."""
    with _TALLY:
        _FIGURES.update(held_s=0.0, batches=0, images=0, finish_steps=0, first_s=None, last_s=None)


def _hold(ms: float, images: int) -> None:
    """Hold the device ``ms`` milliseconds (the calling thread sleeps in its lock: no CPU time, the GIL let go) and
    count it: a network batch of ``images`` images, or with 0 a finish step."""
    with _HELD:  # the device: one batch or step at a time
        start = time.perf_counter()
        if ms > 0:
            time.sleep(ms / 1000.0)
        end = time.perf_counter()
    with _TALLY:
        _FIGURES["held_s"] += end - start
        _FIGURES["batches" if images else "finish_steps"] += 1
        _FIGURES["images"] += images
        _FIGURES["first_s"] = start if _FIGURES["first_s"] is None else min(_FIGURES["first_s"], start)
        _FIGURES["last_s"] = end if _FIGURES["last_s"] is None else max(_FIGURES["last_s"], end)


def write_report(path: str | Path) -> None:
    """:func:`figures` and ``exit_s`` (perf_counter seconds now) as JSON in ``path``."""
    Path(path).write_text(json.dumps(dict(figures(), exit_s=time.perf_counter())), encoding="utf-8")


@dataclass(frozen=True)
class HeldFinish:
    """The simulated GPU's finish device (a :func:`gpu_plan`'s ``finish``; a real GPU's is
    :class:`mattekit.finish.device.OnDevice`): each device step holds the device ``ms`` milliseconds (one image's
    network) and returns its input unchanged (see the module)."""

    ms: float

    def __str__(self) -> str:
        return f"held {self.ms:g} ms a step, not computed"

    def refine_band(self, image, mask, *steps) -> bool:
        """``mask`` stays the upsampled prediction."""
        _hold(self.ms, 0)
        return True

    def solve(self, image, fg, unknown, prior, weight, x0, *steps) -> np.ndarray:
        """The starting alpha ``x0`` itself, unsolved (h x w float32)."""
        _hold(self.ms, 0)
        return np.asarray(x0, dtype=np.float32)

    def foreground(self, image, alpha, *, out=None, **sweeps) -> np.ndarray:
        """The photo's own colours, unsolved (H x W x 3; in ``out`` where given)."""
        _hold(self.ms, 0)
        return result_array(image, out)[..., :3]


def gpu_plan(plan: Plan, entry, ms: float) -> Plan:
    """``plan`` (catalog ``entry``'s, on the CPU) as a CUDA GPU's plan is made (:func:`mattekit.engines.plan.decide`:
    torch, fp16 where the catalog allows it, compile mode auto, a GPU's layout: :func:`mattekit.engines.plan.placed`)
    on a simulated GPU of ``ms`` milliseconds an image: its finish :class:`HeldFinish`, roto's temporal filter on
    torch's CPU device."""
    why = f"a simulated GPU: {ms:g} ms an image, on the CPU (mattekit_bench.simulated)"
    reasons = dict(plan.reasons, device=why, engine=why, precision=why, compile=why, release=why)
    precision = "fp16" if entry.half else "fp32"
    on_gpu = replace(plan, device="cuda", engine="torch", precision=precision, compile="auto", as_is=False)
    gpu = placed(replace(on_gpu, reasons=tuple(reasons.items())), entry)
    reasons = dict(gpu.reasons, finish=why + ", held, not computed (1 MP and up)", temporal=why + ", torch's CPU")
    return replace(gpu, finish=HeldFinish(float(ms)), temporal="cpu", reasons=tuple(reasons.items()))


def deciding(ms: float) -> Callable[..., Plan]:
    """:func:`mattekit.engines.plan.decide` (the same arguments) on a machine whose GPU is simulated at ``ms``
    milliseconds an image: the model asked on ``auto`` or ``cuda`` and not on the onnx backend gets
    :func:`gpu_plan`, any other the real plan."""

    def planned(entry, device="auto", backend="auto", precision="auto", weights_path=None, loading=False):
        name = str(device or "auto").lower()
        if name not in ("auto", "cuda") or asked(backend, "MATTEKIT_BACKEND", BACKENDS, "Backend") == "onnx":
            return decide(entry, device, backend, precision, weights_path, loading)
        return gpu_plan(decide(entry, "cpu", "torch", "fp32", weights_path), entry, ms)

    return planned


def predictor(entry, plan: Plan) -> runtime.Predictor:
    """The loaded model ``plan`` names for catalog ``entry``: on the simulated GPU (:class:`SimulatedPredictor`) for
    a :func:`gpu_plan`, else a real :class:`mattekit.runtime.Predictor`."""
    if isinstance(plan.finish, HeldFinish):
        return SimulatedPredictor(entry, plan)
    return _PREDICTOR(entry, plan)


class SimulatedPredictor(_PREDICTOR):
    """A :class:`mattekit.runtime.Predictor` on the simulated GPU of ``plan`` (a :func:`gpu_plan`): its engine a
    :class:`SimulatedDevice` for the catalog's net (the weights file looked for as a real load does, the net built
    only where the meta device cannot trace its shapes). A call gives the prediction a real predictor gives for that
    engine's output, activated as a GPU activates it, on the device with the net: once per input shape, not on the
    host at every batch (IS-Net's 1024 x 1024 sigmoid: about 12 ms of host CPU an image)."""

    def __init__(self, entry, plan: Plan):
        made = recipe_for(entry, plan.weights or None)
        engine = SimulatedDevice(plan.finish.ms, made.spec, made.index, lambda: load_net(entry, made.weights))
        super().__init__(entry, plan, built=(engine, made.weights))

    def __call__(self, x):
        import torch

        if not isinstance(x, torch.Tensor):
            return self(torch.from_numpy(x)).numpy()
        with torch.inference_mode():
            return self.engine(x, self._activate)


def install(ms: float, report: str | Path | None = None) -> None:
    """Plan and load every model of this process on a simulated GPU of ``ms`` milliseconds an image (:func:`deciding`
    and :func:`predictor` in :mod:`mattekit.runtime`'s place); with ``report``, :func:`write_report` there at exit."""
    runtime.decide, runtime.Predictor = deciding(ms), predictor
    if report:
        atexit.register(write_report, report)


def main(argv: list[str]) -> None:
    """``python -m mattekit_bench.simulated MS REPORT COMMAND...``: ``python -m mattekit COMMAND...`` on a simulated
    GPU of MS milliseconds an image (:func:`install`), its figures in the JSON file REPORT at exit."""
    ms, report, *command = argv
    install(float(ms), report)
    sys.argv = ["mattekit", *command]
    runpy.run_module("mattekit", run_name="__main__", alter_sys=True)


class SimulatedDevice:
    """The engine of a simulated GPU (see the module): ``__call__(x)`` with x N x C x h x w (a CPU torch tensor)
    holds the device ``ms_per_image * N`` milliseconds, then returns the net's selected output for that input as a
    float32 CPU tensor (activated, as a GPU's predictor activates it on the device, where asked: :meth:`__call__`).
    ``recipe``: the catalog's net and kwargs; ``index``: the prediction's path in its output; ``load``: builds the net
    with its weights, used only where the meta device cannot trace a shape."""

    concurrent = True
    takes_arrays = False
    net = None

    def __init__(self, ms_per_image: float, recipe: dict, index: tuple = (), load: Callable | None = None):
        import torch

        self.ms, self.recipe, self.index, self.load = float(ms_per_image), recipe, tuple(index), load
        self.device, self.device_type, self.dtype = torch.device("cpu"), "cpu", torch.float32  # its tensors'
        self.name = f"simulated-cuda-{self.ms:g}ms"
        self.outputs: dict[tuple, torch.Tensor] = {}  # input's C x h x w -> one image's output (1 x ...)
        self.shaping = threading.Lock()

    def __call__(self, x, activate: Callable | None = None):
        """The output for ``x``; with ``activate`` (the predictor's activation: a GPU runs it on the device, in the
        net's time) that activation's result, computed once per input shape, not on the host at every call."""
        one = self.output_for(tuple(x.shape[1:]), activate)
        n = int(x.shape[0])
        _hold(self.ms * n, n)
        return one.expand(n, *one.shape[1:]).clone() if n > 1 else one.clone()

    def output_for(self, shape: tuple, activate: Callable | None = None):
        """One image's output (1 x C' x h' x w' float32) for an input of ``shape`` (C x h x w), made once (once
        more with ``activate`` applied)."""
        with self.shaping:
            if shape not in self.outputs:
                self.outputs[shape] = subject(self.output_shape(shape))
            if activate is None:
                return self.outputs[shape]
            if (shape, "activated") not in self.outputs:
                self.outputs[(shape, "activated")] = activate(self.outputs[shape])
            return self.outputs[(shape, "activated")]

    def output_shape(self, shape: tuple) -> tuple:
        """The selected output's shape for one input of ``shape``: the one recorded in the cache
        (:data:`SHAPES`) for this net, its arguments, the output's path and ``shape``, else :meth:`traced` and
        recorded."""
        key = json.dumps([self.recipe.get("net"), self.recipe.get("kwargs", {}), self.index, shape], default=str)
        known = _recorded_shapes().get(key)
        if isinstance(known, list):
            return tuple(known)
        found = self.traced(shape)
        _record_shape(key, found)
        return found

    def traced(self, shape: tuple) -> tuple:
        """The selected output's shape for one input of ``shape``: a forward on the meta device, else (a net that
        needs values) a real one on the CPU with the weights."""
        import torch

        from mattekit import nets
        from mattekit.engines.torch_engine import select_output

        x = torch.zeros((1, *shape), device="meta")
        try:
            with torch.device("meta"), torch.no_grad():
                net = nets.build(self.recipe["net"], **self.recipe.get("kwargs", {})).eval()
                return tuple(select_output(net(x), self.index).shape)
        except Exception:  # noqa: BLE001 - an op the meta device cannot run: the real net, once per shape
            if self.load is None:
                raise
            with torch.inference_mode():
                return tuple(select_output(self.load()(torch.zeros((1, *shape))), self.index).shape)


SHAPES = "simulated-shapes.json"  # the weights cache's record: {net, arguments, output path, input shape: shape}


def _recorded_shapes() -> dict:
    """The output shapes recorded in the cache ({} where none, or where the record cannot be read)."""
    from mattekit.errors import WeightsError
    from mattekit.weights.cache import read_record

    try:
        return read_record(SHAPES, "")
    except WeightsError:
        return {}


def _record_shape(key: str, shape: tuple) -> None:
    """Remember ``shape`` under ``key`` in the cache's record (nothing where the cache cannot be written)."""
    from mattekit.fsutil import atomic_write, exclusive_lock
    from mattekit.weights.cache import cache_dir

    try:
        cache_dir().mkdir(parents=True, exist_ok=True)
        with exclusive_lock(cache_dir() / (SHAPES + ".lock")):  # another process may record another shape now
            data = {**_recorded_shapes(), key: list(shape)}
            atomic_write(cache_dir() / SHAPES, json.dumps(data, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass


def subject(shape: tuple):
    """A float32 tensor of ``shape`` (1 x C x h x w) holding logits of a centred ellipse (half the height, 0.4 of the
    width): +8 inside, -8 outside, a linear ramp over 6 % of the short side between."""
    import torch

    h, w = shape[-2], shape[-1]
    ys = (torch.arange(h, dtype=torch.float32) + 0.5 - h / 2) / (0.25 * h)
    xs = (torch.arange(w, dtype=torch.float32) + 0.5 - w / 2) / (0.2 * w)
    radius = torch.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)  # 1 on the ellipse
    ramp = 0.06 * min(h, w) / (0.2 * min(h, w))  # the ramp's width in radius units
    logits = ((1 - radius) / ramp * 16).clamp(-8, 8)
    return logits.expand(shape).contiguous()


if __name__ == "__main__":
    main(sys.argv[1:])
