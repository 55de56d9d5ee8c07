"""The local worker (``mattekit serve``): an HTTP server on loopback that keeps models warm.

Host adapters (GIMP, Blender) are thin clients (:mod:`mattekit.client`) of this process.

Security: binds 127.0.0.1 by default on a random free port; a random token is written with
the URL to a per-user state file (0600, see :func:`mattekit.client.state_path`) and every
request must carry it (``Authorization: Bearer TOKEN``), else 401.

API (all JSON unless noted; errors are ``{"error": {"code", "message"}}`` with a 4xx/5xx status):

    GET    /v1/health              {"ok", "version", "api", "pid", "uptime", "operations"}
    GET    /v1/operations          each operation's inputs and options
    GET    /v1/models              the catalog, with which weights are cached / loaded
    POST   /v1/run/OP              synchronous image job: raw pixels in, raw pixels out
    POST   /v1/jobs/OP             asynchronous job -> 202 {"id", "state"}
    GET    /v1/jobs/ID             {"id", "state", "progress", "message", "error"}
    GET    /v1/jobs/ID/result      raw pixels of a finished job (409 while it runs)
    DELETE /v1/jobs/ID             cancel
    POST   /v1/shutdown            finish the running job and exit

Pixels: the ``X-Mattekit-Meta`` request header holds ``{"inputs": [{"width", "height",
"channels", "dtype"}...], "options": {...}, "output_dtype": optional}``; the body is the
inputs' bytes back to back (row-major, channels interleaved, little-endian; dtype "u8", "u16"
or "f32"). Results come back the same way (``{"outputs": [...]}`` in the response header),
in the first input's dtype unless ``output_dtype`` says otherwise.

Each operation maps to one core task function (the table :data:`OPERATIONS`); jobs run one
at a time on a compute thread, so a model is loaded once however many clients ask.
"""
from __future__ import annotations

import hmac
import http.server
import importlib
import importlib.util
import json
import os
import queue
import secrets
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import __version__, client
from .errors import MattekitError

API_VERSION = 1
DTYPES = {"u8": (np.dtype("<u1"), 255.0), "u16": (np.dtype("<u2"), 65535.0), "f32": (np.dtype("<f4"), 1.0)}
MAX_SIDE = 1 << 16
DEFAULT_MAX_REQUEST = 1 << 30  # bytes: a 16k x 16k RGBA 8-bit image
DEFAULT_IDLE_TIMEOUT = 900.0  # seconds
KEEP_FINISHED = 600.0  # seconds a finished asynchronous job's result is kept if nobody fetches it
MAX_JOBS = 64  # asynchronous jobs held at once (queued, running and finished)


class RequestError(Exception):
    """A request the worker refuses: an HTTP status, a short code and one sentence."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Cancelled(Exception):
    """Raised inside a running job when it has been cancelled."""


# ---------------------------------------------------------------- operations

@dataclass(frozen=True)
class Option:
    """One option of an operation: its type, default and (optionally) the allowed values or the least one."""

    kind: type
    default: Any
    choices: tuple | None = None
    help: str = ""
    minimum: float | None = None

    def check(self, name: str, value: Any) -> Any:
        if value is None and self.default is None:
            return None
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.kind) or (self.kind is int and isinstance(value, bool)):
            raise RequestError(400, "bad_option", f"Option '{name}' must be a {self.kind.__name__}, not {value!r}.")
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise RequestError(400, "bad_option", f"Option '{name}' must be one of {allowed}, not {value!r}.")
        if self.minimum is not None and value < self.minimum:
            raise RequestError(400, "bad_option", f"Option '{name}' must be at least {self.minimum}, not {value!r}.")
        return value

    def describe(self) -> dict:
        out = {"type": self.kind.__name__, "default": self.default, "help": self.help}
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.minimum is not None:
            out["minimum"] = self.minimum
        return out


Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Input:
    """A pixel input of an operation: its name, the channel counts it takes, whether it may be left out."""

    name: str
    channels: tuple[int, ...]
    optional: bool = False


@dataclass(frozen=True)
class Operation:
    """A worker operation: pixel inputs, typed options, and ``run(inputs, options, progress)``.

    ``run`` receives the inputs as float32 H x W x C arrays in [0,1] (straight alpha, sRGB; an
    optional input left out is None) and returns a list of H x W [x C] arrays. It calls one core
    task function; ``progress(fraction, message)`` raises :class:`Cancelled` once the job is cancelled.
    """

    name: str
    summary: str
    inputs: tuple[Input, ...]
    options: dict[str, Option]
    run: Callable[[list, dict, Progress], list]
    task: str = ""  # the catalog task of its models
    module: str = ""  # the core task module it calls (mattekit.tasks.<module>), imported at start-up

    def describe(self) -> dict:
        return {"name": self.name, "summary": self.summary, "task": self.task,
                "inputs": [{"name": i.name, "channels": list(i.channels), "optional": i.optional} for i in self.inputs],
                "options": {k: o.describe() for k, o in self.options.items()}}


OPERATIONS: dict[str, Operation] = {}


def register(op: Operation) -> Operation:
    OPERATIONS[op.name] = op
    return op


_DEVICE = Option(str, "auto", help="auto, cpu, cuda, cuda:N or mps")


def _remove(inputs, options, progress):
    from .tasks import segment

    image = inputs[0]
    progress(0.05, "Finding the subject")
    seg = segment.SegmentOptions(model=options["model"], device=options["device"], refine=options["refine"])
    return [segment.remove_background(image, seg, output=options["output"])]


register(Operation(
    "remove", "Cut the subject out: its alpha (output=mask) or the RGBA cut-out (output=rgba).",
    (Input("image", (3, 4)),),
    {"model": Option(str, None, help="segment model from the catalog (default: the catalog's)"),
     "refine": Option(bool, True, help="edge-aware upsampling of the mask"),
     "output": Option(str, "mask", ("mask", "rgba")),
     "device": _DEVICE},
    _remove, task="segment", module="segment"))


def _cutout(inputs, options, progress):
    from .tasks import segment

    image, alpha = inputs
    background = options["background"]
    if options["output"] == "composite":
        from . import ops

        try:
            background = ops.parse_colour(background)
        except ValueError:
            raise MattekitError(f"The background colour {background!r} is not understood; use #rrggbb or r,g,b.") from None
    return [segment.cutout(image, alpha[..., 0], output=options["output"], background=background,
                           crop_margin=options["crop_margin"])]


register(Operation(
    "cutout", "Apply a given alpha to an image: RGBA, the alpha itself, or a composite over a colour (no model).",
    (Input("image", (3, 4)), Input("alpha", (1,))),
    {"output": Option(str, "rgba", ("rgba", "mask", "composite")),
     "background": Option(str, "#ffffff", help="composite background colour"),
     "crop_margin": Option(float, None, help="crop to the subject's box grown by this fraction")},
    _cutout, module="segment"))


def _upscale(inputs, options, progress):
    from .tasks import upscale

    progress(0.02, "Upscaling")

    def tiles(done: int, total: int) -> None:
        progress(0.02 + 0.96 * done / max(total, 1), f"Upscaling: tile {done} of {total}")

    opts = upscale.UpscaleOptions(model=options["model"], device=options["device"], scale=options["scale"],
                                  strength=options["strength"], tile=options["tile"], alpha=options["alpha"])
    return [upscale.upscale(inputs[0], opts, progress=tiles)]


def _bokeh(inputs, options, progress):
    from .tasks import bokeh

    image, subject = inputs
    progress(0.02, "Rendering depth of field")
    focus = None
    if options["focus_x"] is not None and options["focus_y"] is not None:
        focus = (options["focus_x"], options["focus_y"])
        if not (0 <= focus[0] < image.shape[1] and 0 <= focus[1] < image.shape[0]):
            raise MattekitError(f"The focus point ({focus[0]:g}, {focus[1]:g}) lies outside the "
                                f"{image.shape[1]} x {image.shape[0]} image.")
    opts = bokeh.BokehOptions(focus=focus, strength=options["strength"], highlight_gain=options["highlight_gain"],
                              blades=options["blades"], rotation=options["rotation"], mask_only=options["mask_only"],
                              depth_model=options["depth_model"], segment_model=options["segment_model"],
                              device=options["device"])
    return [bokeh.bokeh(image, opts, mask=None if subject is None else subject[..., 0])]


def task_available(module: str) -> bool:
    """Whether ``mattekit.tasks.<module>`` exists in this build (found without importing torch)."""
    return importlib.util.find_spec(f"{__package__}.tasks.{module}") is not None


if task_available("upscale"):
    register(Operation(
        "upscale", "Super-resolution: the image (grey, RGB, with or without alpha) at scale x its size.",
        (Input("image", (1, 2, 3, 4)),),
        {"model": Option(str, None, help="upscale model from the catalog (default: the catalog's)"),
         "scale": Option(float, None, help="output/input size ratio (default: the model's factor)"),
         "strength": Option(float, 1.0, help="1 = network only, 0 = bicubic"),
         "tile": Option(int, None, help="tile side in input pixels (default: from free memory)"),
         "alpha": Option(str, "model", ("model", "bicubic")),
         "device": _DEVICE},
        _upscale, task="upscale", module="upscale"))

if task_available("bokeh"):
    register(Operation(
        "bokeh", "Depth of field: a lens blur keeping the subject (or the focus point) sharp.",
        (Input("image", (3, 4)), Input("subject", (1,), optional=True)),
        {"strength": Option(float, 1.0, help="blur scale (2.8 / f-number)"),
         "mask_only": Option(bool, False, help="no depth model: the subject is sharp, the rest far"),
         "focus_x": Option(float, None), "focus_y": Option(float, None),
         "highlight_gain": Option(float, 2.0), "blades": Option(int, 0), "rotation": Option(float, 0.0),
         "depth_model": Option(str, None), "segment_model": Option(str, None),
         "device": _DEVICE},
        _bokeh, task="depth", module="bokeh"))


def _matte(inputs, options, progress):
    """Refine Edges: matting of the edge of an existing mask (a layer mask or a selection).

    The mask (H x W x 1 in [0,1]) becomes a trimap: sure subject (>= 0.9), sure background
    (<= 0.1) and an unknown band of ``band`` px on each side of the edge (None: from the image
    size), where :func:`mattekit.tasks.matte.alpha_from_mask` solves for a soft alpha that
    follows the colours (hair, fur, motion blur). output=alpha gives that alpha (H x W x 1);
    output=rgba the cut-out with decontaminated colours (a transparent image stays transparent).

    A mask without both a sure-subject and a sure-background part (all white, all black, all
    grey) has no edge to refine: that is an error rather than the mask handed back unchanged,
    so that a user who ran Refine Edges on the wrong mask learns why nothing happened.
    """
    from .matting.trimap import BG_AT, FG_AT
    from .tasks import matte

    image, mask = inputs
    mask = mask[..., 0]
    missing = [name for name, part in (("white (subject)", mask >= FG_AT), ("black (background)", mask <= BG_AT))
               if not part.any()]
    if missing:
        raise MattekitError(f"The mask has no edge to refine: it needs both a white (subject) and a black "
                            f"(background) part, and it has no {' or '.join(missing)} part.")
    progress(0.05, "Refining edges")
    band = options["band"]
    if band is not None:
        band = min(band, max(mask.shape))  # a wider band covers all of the image anyway
    opts = matte.MatteOptions(band=band, iterations=options["iterations"])
    alpha = matte.alpha_from_mask(image, mask, opts)
    if options["output"] == "alpha":
        return [alpha]
    progress(0.7, "Decontaminating colours")
    return [matte.cutout(image, alpha)]


if task_available("matte"):
    register(Operation(
        "matte", "Refine Edges: the edge of a given mask matted into a soft alpha (output=alpha) or an RGBA cut-out.",
        (Input("image", (3, 4)), Input("mask", (1,))),
        {"band": Option(int, None, minimum=0,
                        help="half-width in px of the edge band to refine (default: from the image size)"),
         "iterations": Option(int, 20, minimum=1, help="solver iterations"),
         "output": Option(str, "alpha", ("alpha", "rgba"))},
        _matte, module="matte"))


def _roto(inputs, options, progress):  # frame sequences travel as paths: the worker reads and writes the files
    from . import jobs

    return jobs.run_operation(options, progress)


register(Operation(
    "roto", "Matte every frame of a plate (pattern, folder or movie) into a matte sequence; resumable. No pixel inputs.",
    (),
    {"plate": Option(str, "", help="frame pattern (name.####.exr), numbered frame, folder or movie"),
     "output": Option(str, "", help="matte pattern (out/matte.####.png) or folder"),
     "frames": Option(str, None, help="frame range, e.g. 1001-1100; default: all"),
     "model": Option(str, None, help="segment model from the catalog (default: the catalog's)"),
     "temporal": Option(bool, True, help="temporal consistency"), "radius": Option(int, None),
     "refine": Option(bool, True), "bit_depth": Option(int, 16, (8, 16, 32)),
     "rgba": Option(str, None, help="also write the cut-out to this pattern"),
     "fg": Option(str, None, help="also write the decontaminated foreground to this pattern"),
     "skip_missing": Option(bool, False), "overwrite": Option(bool, False), "device": _DEVICE},
    _roto, task="segment"))


# ---------------------------------------------------------------- pixels in and out

def _int(meta: dict, key: str, low: int, high: int) -> int:
    value = meta.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise RequestError(400, "bad_meta", f"Input '{key}' must be an integer from {low} to {high}, not {value!r}.")
    return value


def decode_inputs(op: Operation, metas: Any, body: bytes) -> list:
    """Raw bytes -> float32 H x W x C arrays in [0,1] (None for optional inputs left out)."""
    required = sum(not i.optional for i in op.inputs)
    if not isinstance(metas, list) or not required <= len(metas) <= len(op.inputs):
        names = ", ".join(i.name + (" (optional)" if i.optional else "") for i in op.inputs)
        raise RequestError(400, "bad_meta", f"Operation '{op.name}' takes these inputs: {names}.")
    arrays, offset = [], 0
    for spec, meta in zip(op.inputs, metas):
        if not isinstance(meta, dict):
            raise RequestError(400, "bad_meta", f"Input '{spec.name}' must be described by an object.")
        width, height = _int(meta, "width", 1, MAX_SIDE), _int(meta, "height", 1, MAX_SIDE)
        channels = _int(meta, "channels", 1, 4)
        if meta.get("dtype") not in DTYPES:
            raise RequestError(400, "bad_meta", f"Input '{spec.name}' has dtype {meta.get('dtype')!r}; use u8, u16 or f32.")
        dtype, scale = DTYPES[meta["dtype"]]
        size = width * height * channels * dtype.itemsize
        if offset + size > len(body):
            raise RequestError(400, "bad_body", f"The body holds {len(body)} bytes, fewer than the inputs described.")
        pixels = np.frombuffer(body, dtype, width * height * channels, offset).reshape(height, width, channels)
        offset += size
        if scale != 1.0:
            pixels = pixels.astype(np.float32) / np.float32(scale)
        else:
            pixels = np.clip(np.nan_to_num(pixels.astype(np.float32)), 0.0, 1.0)
        if channels in (1, 2) and channels not in spec.channels and 3 in spec.channels:
            pixels = np.concatenate([np.repeat(pixels[..., :1], 3, axis=2), pixels[..., 1:]], axis=2)
        if pixels.shape[2] not in spec.channels:
            allowed = " or ".join(map(str, spec.channels))
            raise RequestError(400, "bad_meta", f"Input '{spec.name}' must have {allowed} channel(s), not {channels}.")
        arrays.append(pixels)
    if offset != len(body):
        raise RequestError(400, "bad_body", f"The body holds {len(body)} bytes but the inputs describe {offset}.")
    for spec, array in zip(op.inputs[1:], arrays[1:]):
        if array.shape[:2] != arrays[0].shape[:2]:
            (h, w), (h0, w0) = array.shape[:2], arrays[0].shape[:2]
            raise RequestError(400, "bad_meta", f"Input '{spec.name}' is {w} x {h} pixels but '{op.inputs[0].name}' "
                               f"is {w0} x {h0}; all inputs of one request must have the same size.")
    return arrays + [None] * (len(op.inputs) - len(arrays))


def encode_outputs(arrays: list[np.ndarray], dtype: str) -> tuple[list[dict], bytes]:
    """Float arrays (H x W or H x W x C, [0,1]) -> output metas and their bytes back to back."""
    np_dtype, scale = DTYPES[dtype]
    metas, chunks = [], []
    for array in arrays:
        array = np.asarray(array, np.float32)
        if array.ndim == 2:
            array = array[..., None]
        if scale != 1.0:
            array = np.rint(np.clip(array, 0.0, 1.0) * np.float32(scale))
        chunks.append(np.ascontiguousarray(array, np_dtype).tobytes())
        metas.append({"width": int(array.shape[1]), "height": int(array.shape[0]),
                      "channels": int(array.shape[2]), "dtype": dtype})
    return metas, b"".join(chunks)


# ---------------------------------------------------------------- jobs

@dataclass
class Job:
    """One request for an operation, run on the compute thread."""

    op: Operation
    inputs: list
    options: dict
    output_dtype: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: str = "queued"  # queued | running | done | failed | cancelled
    progress: float = 0.0
    message: str = "Waiting"
    error: dict | None = None
    result: tuple | None = None  # (metas, bytes)
    finished_at: float | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    done_event: threading.Event = field(default_factory=threading.Event)

    def report(self, fraction: float, message: str = "") -> None:
        """The progress callback handed to the task: also the place where a cancel takes effect."""
        if self.cancel_event.is_set():
            raise Cancelled()
        self.progress = float(min(max(fraction, 0.0), 1.0))
        if message:
            self.message = message

    def status(self) -> dict:
        return {"id": self.id, "operation": self.op.name, "state": self.state, "progress": round(self.progress, 4),
                "message": self.message, "error": self.error}


class WorkerServer:
    """The worker: an HTTP server, a job table and compute thread(s), an idle watchdog."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT, max_request: int = DEFAULT_MAX_REQUEST,
                 state_file: str | None = None, operations: dict[str, Operation] | None = None,
                 compute_threads: int = 1, threads: int | None = None, log: Callable[[str], None] | None = None):
        self.token = token or secrets.token_urlsafe(32)
        self.idle_timeout = idle_timeout if idle_timeout and idle_timeout > 0 else None
        self.max_request = int(max_request)
        self.state_file = state_file
        self.operations = dict(OPERATIONS if operations is None else operations)
        self.torch_threads = threads
        self.log = log or (lambda text: print(f"mattekit worker: {text}", file=sys.stderr, flush=True))
        self.started = time.time()
        self.last_activity = time.monotonic()
        self.active_requests = 0
        self.lock = threading.Lock()
        self.jobs: dict[str, Job] = {}
        self.queue: queue.Queue = queue.Queue()
        self.stopping = threading.Event()
        self.stopped = threading.Event()
        self.httpd = _Server((host, port), _Handler)
        self.httpd.worker = self
        self.host, self.port = self.httpd.server_address[:2]
        self.url = f"http://{_url_host(self.host)}:{self.port}"
        self.threads = [threading.Thread(target=self._compute, name=f"mattekit-compute-{i}", daemon=True)
                        for i in range(max(1, compute_threads))]

    # -- life cycle
    def _start(self) -> None:
        for thread in self.threads:
            thread.start()
        if self.state_file:
            write_state(self.state_file, {"url": self.url, "token": self.token, "pid": os.getpid(),
                                          "version": __version__, "api": API_VERSION})
        threading.Thread(target=self._warm_up, name="mattekit-warm-up", daemon=True).start()
        if self.idle_timeout:
            threading.Thread(target=self._watch_idle, name="mattekit-idle", daemon=True).start()

    def serve_forever(self, _started: bool = False) -> None:
        """Serve until shutdown (a request, a signal via :meth:`stop`, or the idle timeout)."""
        if not _started:
            self._start()
        try:
            self.httpd.serve_forever(poll_interval=0.2)
        finally:
            self._finish()

    def start_background(self) -> "WorkerServer":
        """Serve on a daemon thread (tests, embedding); the state file exists when this returns."""
        self._start()
        threading.Thread(target=self.serve_forever, args=(True,), name="mattekit-http", daemon=True).start()
        return self

    def stop(self, reason: str = "shutdown requested", wait: bool = False) -> None:
        """Stop accepting requests, cancel queued jobs, let the running one finish; safe from any thread."""
        if not self.stopping.is_set():
            self.stopping.set()
            self.log(f"stopping ({reason})")
            threading.Thread(target=self.httpd.shutdown, daemon=True).start()
        if wait:
            self.stopped.wait(60)

    def _finish(self, grace: float = 30.0) -> None:
        self.stopping.set()
        with self.lock:
            for job in self.jobs.values():
                if job.state == "queued":
                    self._end(job, "cancelled", message="The worker is shutting down")
        for _ in self.threads:
            self.queue.put(None)
        deadline = time.monotonic() + grace
        for thread in self.threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))
        self.httpd.server_close()
        if self.state_file:
            remove_state(self.state_file, self.token)
        self.stopped.set()

    def _warm_up(self) -> None:
        """Import the task modules (and torch) while the first client is still connecting."""
        for module in sorted({op.module for op in self.operations.values() if op.module}):
            try:
                importlib.import_module(f"{__package__}.tasks.{module}")
            except Exception:  # the job that needs it will report the problem
                self.log(f"cannot import mattekit.tasks.{module}:\n" + traceback.format_exc())

    def _watch_idle(self) -> None:
        step = min(1.0, self.idle_timeout / 4)
        while not self.stopping.wait(step):
            with self.lock:
                busy = self.active_requests or any(j.state in ("queued", "running") for j in self.jobs.values())
            if not busy and time.monotonic() - self.last_activity > self.idle_timeout:
                self.stop(f"idle for {self.idle_timeout:g} s")
                return

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    # -- jobs
    def submit(self, op: Operation, inputs: list, options: dict, output_dtype: str, keep: bool) -> Job:
        job = Job(op, inputs, options, output_dtype)
        with self.lock:
            if self.stopping.is_set():
                raise RequestError(503, "stopping", "The worker is shutting down.")
            if keep:
                self._prune()
                if len(self.jobs) >= MAX_JOBS:
                    raise RequestError(429, "busy", f"The worker already holds {MAX_JOBS} jobs; fetch or cancel some first.")
                self.jobs[job.id] = job
        self.queue.put(job)
        return job

    def _prune(self) -> None:
        now = time.monotonic()
        for job_id in [j.id for j in self.jobs.values() if j.finished_at and now - j.finished_at > KEEP_FINISHED]:
            del self.jobs[job_id]

    def cancel(self, job: Job) -> None:
        with self.lock:
            job.cancel_event.set()
            if job.state == "queued":
                self._end(job, "cancelled", message="Cancelled")

    def _end(self, job: Job, state: str, message: str = "", error: dict | None = None, result=None) -> None:
        job.state, job.error, job.result = state, error, result
        job.message = message or job.message
        job.inputs = []  # free the pixels now
        job.finished_at = time.monotonic()
        job.done_event.set()

    def _compute(self) -> None:
        if self.torch_threads:
            from . import runtime  # torch's thread setting is per calling thread: make it here

            runtime.set_threads(self.torch_threads)
        while True:
            job = self.queue.get()
            if job is None:
                return
            with self.lock:
                if job.state != "queued":
                    continue
                job.state, job.message = "running", f"Running {job.op.name}"
            try:
                outputs = job.op.run(job.inputs, job.options, job.report)
                if job.cancel_event.is_set():
                    raise Cancelled()
                result = encode_outputs(outputs, job.output_dtype)
                job.progress = 1.0
                with self.lock:
                    self._end(job, "done", message="Done", result=result)
            except Cancelled:
                with self.lock:
                    self._end(job, "cancelled", message="Cancelled")
            except MattekitError as exc:
                with self.lock:
                    self._end(job, "failed", message=str(exc), error={"code": "task_failed", "message": str(exc)})
            except MemoryError:
                msg = "The worker ran out of memory; try a smaller image or another device."
                with self.lock:
                    self._end(job, "failed", message=msg, error={"code": "out_of_memory", "message": msg})
            except Exception as exc:  # a bug: keep serving, tell the client, log the traceback
                self.log("job failed:\n" + traceback.format_exc())
                msg = f"The {job.op.name} operation failed ({type(exc).__name__}: {str(exc)[:200]})."
                with self.lock:
                    self._end(job, "failed", message=msg, error={"code": "internal", "message": msg})
            finally:
                self.touch()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, address, handler):
        if ":" in address[0]:
            import socket
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = f"mattekit/{__version__}"
    protocol_version = "HTTP/1.0"

    # -- plumbing
    @property
    def worker(self) -> WorkerServer:
        return self.server.worker

    def log_message(self, format, *args):  # noqa: A002 - quiet: requests are not worth a line each
        pass

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: dict, headers: dict | None = None) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), "application/json", headers)

    def _error(self, status: int, code: str, message: str) -> None:
        headers = {"WWW-Authenticate": 'Bearer realm="mattekit"'} if status == 401 else None
        self._json(status, {"error": {"code": code, "message": message}}, headers)

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.worker.token.encode())

    def _drain(self, limit: int = 1 << 20) -> None:
        """Read a small unread body before answering an error, so the client gets to read the answer."""
        if getattr(self, "_consumed", False):
            return
        self._consumed = True
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        if 0 < length <= limit:
            self.rfile.read(length)

    def _length(self) -> int:
        """The announced body length, refused (411/413) before anything is read when missing or too large."""
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError(411, "length_required", "The request must say its Content-Length.")
        try:
            length = int(length)
            if length < 0:
                raise ValueError
        except ValueError:
            raise RequestError(400, "bad_length", "The Content-Length header is not a number.") from None
        if length > self.worker.max_request:
            self._consumed = True
            self.close_connection = True
            if length <= self.worker.max_request + (64 << 20):  # drain, so the client reads our answer
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            raise RequestError(413, "too_large", f"The request holds {length} bytes; this worker accepts at most "
                               f"{self.worker.max_request} (mattekit serve --max-request-mb).")
        return length

    def _body(self) -> bytes:
        length = self._length()
        self._consumed = True
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            raise RequestError(400, "short_body", "The request ended before its Content-Length.")
        return body

    def _dispatch(self, method: str) -> None:
        worker = self.worker
        activity = False  # only authorised work keeps the worker alive, not health checks or strangers
        with worker.lock:
            worker.active_requests += 1
        try:
            if not self._authorised():
                raise RequestError(401, "unauthorised", "A valid worker token is required.")
            path = self.path.split("?", 1)[0].rstrip("/")
            parts = path.split("/")[1:]
            activity = parts[1:2] != ["health"]
            if len(parts) < 2 or parts[0] != f"v{API_VERSION}":
                raise RequestError(404, "not_found", f"There is no {path or '/'} here; the API lives under /v{API_VERSION}/.")
            handler = _ROUTES.get((method, parts[1], len(parts)))
            if handler is None:
                other_method = any(p == parts[1] and n == len(parts) for _, p, n in _ROUTES)
                raise RequestError(405 if other_method else 404, "not_found", f"{method} {path} is not part of the API.")
            handler(self, parts[2:])
        except RequestError as exc:
            self._drain()
            self._error(exc.status, exc.code, exc.message)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # never let a bug kill the connection without an answer
            worker.log("request failed:\n" + traceback.format_exc())
            try:
                self._error(500, "internal", f"Internal error ({type(exc).__name__}).")
            except OSError:
                pass
        finally:
            with worker.lock:
                worker.active_requests -= 1
            if activity:
                worker.touch()

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PUT(self):
        self._dispatch("PUT")

    # -- endpoints
    def ep_health(self, _args):
        w = self.worker
        self._json(200, {"ok": True, "version": __version__, "api": API_VERSION, "pid": os.getpid(),
                         "uptime": round(time.time() - w.started, 3), "operations": sorted(w.operations),
                         "idle_timeout": w.idle_timeout, "max_request": w.max_request})

    def ep_operations(self, _args):
        self._json(200, {"operations": [op.describe() for op in self.worker.operations.values()]})

    def ep_models(self, _args):
        from . import catalog, runtime, weights

        cat = catalog.load()
        loaded = {key[0] for key in list(runtime._PREDICTORS)}
        defaults = set(cat.defaults.values())
        models = [{"name": m.name, "task": m.task, "description": m.description, "licence": m.licence,
                   "notice": m.notice, "default": m.name in defaults, "cached": weights.is_cached(m.weights),
                   "loaded": m.name in loaded} for m in cat.models.values()]
        self._json(200, {"models": models})

    def _parse_job(self, args) -> tuple[Operation, list, dict, str]:
        if len(args) != 1:
            raise RequestError(404, "not_found", "Name one operation, as in /v1/run/remove.")
        op = self.worker.operations.get(args[0])
        if op is None:
            raise RequestError(404, "unknown_operation", f"Unknown operation '{args[0]}'; this worker offers: "
                               f"{', '.join(sorted(self.worker.operations))}.")
        self._length()
        raw = self.headers.get(client.META_HEADER)
        if raw is None:
            raise RequestError(400, "bad_meta", f"The {client.META_HEADER} header describing the pixels is missing.")
        try:
            meta = json.loads(raw)
        except ValueError:
            raise RequestError(400, "bad_meta", f"The {client.META_HEADER} header is not valid JSON.") from None
        if not isinstance(meta, dict):
            raise RequestError(400, "bad_meta", f"The {client.META_HEADER} header must be a JSON object.")
        body = self._body()
        options = meta.get("options") or {}
        if not isinstance(options, dict):
            raise RequestError(400, "bad_option", "Options must be a JSON object.")
        unknown = sorted(set(options) - set(op.options))
        if unknown:
            raise RequestError(400, "bad_option", f"Operation '{op.name}' has no option(s) {', '.join(unknown)}; "
                               f"it knows {', '.join(op.options) or 'none'}.")
        checked = {name: spec.check(name, options.get(name, spec.default)) for name, spec in op.options.items()}
        inputs = decode_inputs(op, meta.get("inputs"), body)
        first = meta["inputs"][0]["dtype"] if meta["inputs"] else "f32"  # "roto" takes no pixels
        output_dtype = meta.get("output_dtype") or first
        if output_dtype not in DTYPES:
            raise RequestError(400, "bad_meta", f"output_dtype {output_dtype!r} is not one of u8, u16, f32.")
        return op, inputs, checked, output_dtype

    def _send_result(self, job: Job) -> None:
        metas, data = job.result
        self._send(200, data, "application/octet-stream", {client.META_HEADER: json.dumps({"outputs": metas})})

    def ep_run(self, args):
        op, inputs, options, output_dtype = self._parse_job(args)
        job = self.worker.submit(op, inputs, options, output_dtype, keep=False)
        del inputs
        job.done_event.wait()
        if job.state == "done":
            self._send_result(job)
        elif job.state == "cancelled":
            self._error(409, "cancelled", "The job was cancelled.")
        else:
            self._error(422 if job.error["code"] == "task_failed" else 500, job.error["code"], job.error["message"])

    def ep_submit_job(self, args):
        op, inputs, options, output_dtype = self._parse_job(args)
        job = self.worker.submit(op, inputs, options, output_dtype, keep=True)
        self._json(202, job.status(), {"Location": f"/v{API_VERSION}/jobs/{job.id}"})

    def _job(self, job_id: str) -> Job:
        with self.worker.lock:
            job = self.worker.jobs.get(job_id)
        if job is None:
            raise RequestError(404, "unknown_job", f"There is no job {job_id!r} (finished jobs are kept until fetched).")
        return job

    def ep_list_jobs(self, _args):
        with self.worker.lock:
            jobs = [j.status() for j in self.worker.jobs.values()]
        self._json(200, {"jobs": jobs})

    def ep_job_status(self, args):
        self._json(200, self._job(args[0]).status())

    def ep_job_result(self, args):
        if len(args) != 2 or args[1] != "result":
            raise RequestError(404, "not_found", "Use /v1/jobs/ID or /v1/jobs/ID/result.")
        job = self._job(args[0])
        if job.state in ("queued", "running"):
            raise RequestError(409, "not_finished", f"Job {job.id} is {job.state} ({job.progress:.0%}).")
        if job.state == "cancelled":
            raise RequestError(409, "cancelled", "The job was cancelled.")
        if job.state == "failed":
            raise RequestError(422 if job.error["code"] == "task_failed" else 500, job.error["code"], job.error["message"])
        self._send_result(job)
        with self.worker.lock:  # fetched: forget it
            self.worker.jobs.pop(job.id, None)

    def ep_cancel_job(self, args):
        job = self._job(args[0])
        self.worker.cancel(job)
        self._json(200, job.status())

    def ep_shutdown(self, _args):
        self._json(200, {"ok": True, "message": "The worker is shutting down."})
        self.worker.stop("asked by a client")


_ROUTES = {
    ("GET", "health", 2): _Handler.ep_health,
    ("GET", "operations", 2): _Handler.ep_operations,
    ("GET", "models", 2): _Handler.ep_models,
    ("POST", "run", 3): _Handler.ep_run,
    ("POST", "jobs", 3): _Handler.ep_submit_job,
    ("GET", "jobs", 2): _Handler.ep_list_jobs,
    ("GET", "jobs", 3): _Handler.ep_job_status,
    ("GET", "jobs", 4): _Handler.ep_job_result,
    ("DELETE", "jobs", 3): _Handler.ep_cancel_job,
    ("POST", "shutdown", 2): _Handler.ep_shutdown,
}


# ---------------------------------------------------------------- the state file

def write_state(path: str, record: dict) -> None:
    """Write the worker's state record atomically, readable by its owner only (0600)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    if os.path.exists(tmp):
        os.remove(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
        os.write(fd, json.dumps(record, indent=1).encode("utf-8"))
    finally:
        os.close(fd)
    os.replace(tmp, path)


def remove_state(path: str, token: str) -> None:
    """Remove the state file if it still describes this worker (a newer worker may own it now)."""
    state = client.read_state(path)
    if state is not None and state.get("token") == token:
        try:
            os.remove(path)
        except OSError:
            pass
