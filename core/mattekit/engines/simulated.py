"""A simulated GPU: an engine that holds "the device" for a set time per image of each batch without holding the
GIL (as a CUDA stream's kernels do: the calling thread sleeps in a lock) and returns the net's output shapes, so that
the host side (decode, input preparation, the finish, encoding) can be measured on a machine without a GPU, and
whether it keeps a GPU busy: the busy fraction is the time the device was held over the wall time.

``$MATTEKIT_SIMULATE_DEVICE=MS`` (milliseconds per image, >= 0; ``bench speed --simulate-device MS`` sets it) makes
:func:`mattekit.engines.plan.decide` plan the model as it plans one on CUDA (device "cuda", precision, compile mode,
two workers, batches of 8 of one shape, readers and writers of a GPU, the finish and roto's temporal filter on the
model's device) with the device simulated; :func:`mattekit.engines.create` then builds :class:`SimulatedDevice`. Its
``device_type`` says "cuda".

The finish a GPU's plan runs on the model's device (photos of 1 MP and up: :func:`mattekit.finish.device.device_of`)
is held, not computed: the plan names torch's meta device (:data:`FINISH_DEVICE`) for it, and each of its three
device steps (the refinement's band, the edge matte's solve, the foreground colours) asks :func:`held_finish`, which
holds the device as long as one image's network and says to skip the step; the step then returns its input
unchanged: the upsampled mask stays the refined mask, the solve's starting alpha (the colour evidence) is its answer,
the photo's own colours are the foreground. Real: everything on the host around them (decode, input preparation,
the upsampling, the edge matte's trimap, colour evidence and carrying to full size, the cut-out's assembly,
encoding). Not simulated: the device steps' transfers to and from the device (their host copies). Roto's temporal
filter on "the model's device" is computed by torch's CPU kernels.

The output: the net's selected output for the input's shape (found by a forward on torch's meta device: no
arithmetic, no weights; remembered in the cache's ``simulated-shapes.json``, as that forward cost 1.5 s of CPU, half
of a simulated command's start-up), holding a soft ellipse, the same for every image (logits +8 inside, -8 outside, a
ramp between): a finish then works along a subject's edge as it does on a real mask. ``$MATTEKIT_SIMULATE_REPORT``
names a JSON file the process writes its figures to at exit (:func:`figures`): the bench reads a whole command's there.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from pathlib import Path
from typing import Callable

from ..errors import MattekitError

VARIABLE = "MATTEKIT_SIMULATE_DEVICE"
REPORT = "MATTEKIT_SIMULATE_REPORT"

_HELD = threading.Lock()  # the one simulated device of this process
_TALLY = threading.Lock()
_FIGURES = {"held_s": 0.0, "batches": 0, "images": 0, "finish_steps": 0, "first_s": None, "last_s": None}
FINISH_DEVICE = "meta"  # the finish's device in a simulated GPU's plan: held (:func:`held_finish`), never computed on


def asked() -> float | None:
    """Milliseconds per image that ``$MATTEKIT_SIMULATE_DEVICE`` asks for, None where unset or empty; a value that
    is not a number >= 0: one sentence."""
    text = os.environ.get(VARIABLE, "").strip()
    if not text:
        return None
    try:
        ms = float(text)
    except ValueError:
        ms = -1.0
    if not ms >= 0 or ms == float("inf"):
        raise MattekitError(f"{VARIABLE}={text} is not a number of milliseconds per image (0 or more).")
    return ms


def figures() -> dict:
    """What the device did in this process: held_s (seconds held), batches, images (padding included), finish_steps
    (the finish's device steps held: :func:`held_finish`), and first_s / last_s (perf_counter seconds at the first hold's start and the last one's end; None before any)."""
    with _TALLY:
        return dict(_FIGURES)


def reset() -> None:
    """Start the figures afresh (a bench's or a test's run of its own)."""
    with _TALLY:
        _FIGURES.update(held_s=0.0, batches=0, images=0, finish_steps=0, first_s=None, last_s=None)


def held_finish(device) -> bool:
    """Whether ``device`` (a torch device, or None) is a simulated GPU's finish device (:data:`FINISH_DEVICE`); if so
    the device is first held as long as one image's network (``$MATTEKIT_SIMULATE_DEVICE`` ms) and the step counted:
    the caller then skips its torch work and returns its input unchanged (see the module)."""
    if device is None or device.type != FINISH_DEVICE:
        return False
    _hold(asked() or 0.0, 0)
    return True


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


def _write_report() -> None:
    path = os.environ.get(REPORT)
    if path:
        got = figures()
        got["exit_s"] = time.perf_counter()
        Path(path).write_text(json.dumps(got), encoding="utf-8")


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
        self.device, self.device_type, self.dtype = torch.device("cuda"), "cuda", torch.float32
        self.name = f"simulated-cuda-{self.ms:g}ms"
        self.outputs: dict[tuple, torch.Tensor] = {}  # input's C x h x w -> one image's output (1 x ...)
        self.shaping = threading.Lock()
        if os.environ.get(REPORT):
            atexit.register(_write_report)

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

        from .. import nets
        from .torch_engine import select_output

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
    from ..errors import WeightsError
    from ..weights.cache import read_record

    try:
        return read_record(SHAPES, "")
    except WeightsError:
        return {}


def _record_shape(key: str, shape: tuple) -> None:
    """Remember ``shape`` under ``key`` in the cache's record (nothing where the cache cannot be written)."""
    from ..fsutil import atomic_write, exclusive_lock
    from ..weights.cache import cache_dir

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
