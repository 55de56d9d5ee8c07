"""Roto jobs: a plate sequence in, a matte sequence out, resumable, chunkable, distributable.

``RotoJob(RotoSpec(plate, output, ...)).run()`` writes one matte per frame (and optionally an
RGBA cut-out and a decontaminated foreground plate per frame):

- **Atomic writes**: every file is written under a temporary name and renamed into place
  (:func:`mattekit.io.write_image`), so a killed job never leaves a half-written frame.
- **Resumable, verified by content**: after a frame's files are in place, a record with their
  SHA-256 and the job's settings fingerprint is appended to a journal. A re-run treats a frame
  as finished only when a journal record with the same fingerprint matches the bytes on disk;
  anything else is recomputed. Each process appends to its own journal file, so chunks run
  side by side (render-farm tasks, Ray workers) never write the same file.
- **Manifest**: ``<output name>.mattekit.json`` beside the mattes records the plate, the
  settings, the model and the SHA-256 of its weights, and the provenance record
  (:mod:`mattekit.provenance`) that every matte file carries too. A re-run with other settings into the
  same output is refused unless ``overwrite``.
- **Chunks**: with temporal consistency a frame's matte depends only on plate frames within
  ``radius`` of it (see :mod:`mattekit.temporal`), so any split of the frame range - ``frames``,
  :meth:`RotoJob.chunks`, Ray tasks - gives the same bytes as one run. A recurrent model (RVM)
  carries its state from frame to frame instead: each chunk first runs the catalog's ``warmup``
  plate frames before its first frame, so its mattes equal one run's within ``warmup`` frames of
  the shot's start and differ a little after (``mattekit bench roto --chunk`` measures it).
- **Throughput**: frames are decoded, inferred and post-processed through
  :func:`mattekit.pipeline.run_pipeline` (as ``mattekit remove`` runs folders), and handed in
  frame order to the temporal filter and the file writing; the bytes do not depend on the
  number of inference workers.
- **Progress** events with frames/s and ETA; **cancellation** between frames.
- **Hints** (``box``, ``point``, ``exclude``, ``hint_mask`` on keyframes; :mod:`mattekit.tracking`):
  the subject's hint is carried from each keyframe to the next frames along the motion (backward
  before the first keyframe), so a frame's mask depends on the frames between its keyframe and it.
  Those chains run in order in the pipeline's writer (:class:`HintChain`; decoding still runs
  ahead), and from their keyframe whatever frames are asked for: chunks, ``frames`` splits and
  resumed runs (after a kill too) give the same bytes as one run, at the cost of re-running the
  chain from the keyframe before a split's first frame.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import secrets
import time
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__, catalog, pipeline, runtime, temporal, tracking
from .errors import InputError, MattekitError, OutputError
from .fsutil import FilesRead, atomic_write, known_sha256, sha256_file, stale_temporaries
from .tasks.registry import option, options_of
from .io import Picture, write_image
from .io.sequences import FramePattern, chunk_frames, format_frames, open_plate, output_pattern, select_frames
from .matting import estimate_foreground
from . import masks

MANIFEST_SUFFIX = ".mattekit.json"
ROTO_MODEL_TASKS = ("segment", "matte")  # roto mattes with object segmentation or trimap-free (people) matting models
JOURNAL_SUFFIX = ".mattekit-journal"


class Cancelled(MattekitError):
    """The job was cancelled; finished frames stay and a re-run resumes."""

    exit_code = 130


@dataclass
class RotoSpec:
    """Everything that defines a roto job (plain values: it travels to workers as a dict).

    plate: pattern, numbered frame, folder or movie. output: matte pattern (``matte.####.png``)
    or a folder. frames: a range ("1001-1100x2", lists) or None for all. rgba / fg: optional
    patterns for the cut-out (premultiplied in EXR, straight in PNG/TIFF) and the decontaminated
    foreground plate (same alpha convention). temporal: motion-compensated smoothing over
    ``radius`` frames on each side. bit_depth: matte bits (PNG/TIFF 8|16, EXR 16 = half, 32 = float).
    threads: torch threads per inference worker; workers: inference workers (None: chosen by
    :func:`mattekit.pipeline.plan`); neither changes the bytes written at a given ``threads``.
    """

    plate: str = option(MISSING, "frame pattern (name.####.exr), numbered frame, folder of frames or movie", path=True)
    output: str = option(MISSING, "matte pattern such as out/matte.####.png (PNG/TIFF 16-bit, EXR half), or a folder",
                         path=True, writes=True)
    frames: str | None = option(None, "frame range, e.g. 1001-1100, 1001-1100x2, 1001,1005; default: every frame")
    rgba: str | None = option(None, "also write the cut-out to this pattern (EXR premultiplied, PNG/TIFF straight)",
                              path=True, writes=True)
    fg: str | None = option(None, "also write the decontaminated foreground plate with its alpha to this pattern",
                            path=True, writes=True)
    model: str | None = option(None, "people (permissive people matting, Apache-2.0), objects (the default "
                               "segmentation model), or any segment or matte model of `mattekit models list`; default: objects",
                               model=ROTO_MODEL_TASKS)
    weights: str | None = option(None, "use this weights file instead of the catalog's download", path=True,
                                 hosts=("cli", "api"))
    device: str = option("auto", "auto (default), cpu, cuda, cuda:N or mps")
    threads: int | None = option(None, "CPU threads for inference", minimum=1, maximum=1024)
    workers: int | None = option(None, "inference workers (default: chosen for the machine; the files do not depend on it)",
                                 minimum=1, maximum=64)
    refine: bool = option(True, "edge-aware upsampling of the matte (off: plain bilinear)")
    temporal: bool = option(True, "temporal consistency (motion-compensated smoothing across frames)")
    radius: int | None = option(None, "temporal window: frames on each side (default 4; 0 = off)", minimum=0, maximum=32)
    bit_depth: int = option(16, "matte bits: 8/16 for PNG and TIFF, 16 (half) or 32 (float) for EXR",
                            choices=(8, 16, 32), aliases=("--depth",))
    skip_missing: bool = option(False, "process the frames that exist when some are missing")
    box: str | None = option(None, "the subject lies in this box on a keyframe: FRAME:x0,y0,x1,y1 in pixels (x1, y1 "
                             "exclusive; repeatable, one per keyframe); carried to the other frames along the motion",
                             repeat=True, label="Keyframe boxes")
    point: str | None = option(None, "a point on the subject on a keyframe: FRAME:x,y (repeatable): only the parts "
                               "connected to it are kept on that frame", repeat=True, label="Keyframe include points")
    exclude: str | None = option(None, "a point not on the subject on a keyframe: FRAME:x,y (repeatable): the part "
                                 "there is left out on that frame", repeat=True, label="Keyframe exclude points")
    hint_mask: str | None = option(None, "keyframe hint masks: a pattern such as masks/####.png (white = subject, the "
                                   "plate's size and frame numbers); each existing file makes its frame a keyframe",
                                   path=True, label="Keyframe hint masks")
    overwrite: bool = option(False, "recompute every frame, even finished ones or ones made with other settings")

    @classmethod
    def from_dict(cls, values: dict) -> "RotoSpec":
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Progress:
    """One progress event: frames finished (computed or verified) of ``total``."""

    done: int
    total: int
    frame: int | None
    computed: int
    skipped: int
    elapsed: float
    fps: float  # computed frames per second
    eta: float | None  # seconds left

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    def message(self) -> str:
        eta = "" if self.eta is None else f", ETA {_clock(self.eta)}"
        at = "" if self.frame is None else f"frame {self.frame}, "
        return f"{at}{self.done}/{self.total} frames, {self.fps:.2f} frames/s{eta}"


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class Summary:
    """What a run did: frames computed, frames found finished, seconds."""

    frames: list[int]
    computed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def merge(self, other: "Summary") -> None:
        self.computed += other.computed
        self.skipped += other.skipped


# ----------------------------------------------------------------------------------- per-frame mattes

class MatteSource:
    """Mattes of plate frames: the model's alpha through the pipeline, then (optionally) temporal
    smoothing in frame order.

    A segmentation model gives a subject mask, a matting model (``people``) a soft alpha; either is
    upsampled to the frame. A recurrent model (``entry.recurrent``, RobustVideoMatting) carries its
    state from frame to frame: it runs in frame order in the pipeline's ordered stage, and each run of
    consecutive frames first runs the ``entry.warmup`` plate frames before it (see :func:`recurrent_steps`).

    :meth:`run` hands (frame, picture, alpha) to a callback in increasing frame order. With a per-frame
    model a frame's result depends only on the plate frames within the temporal window, whatever frames
    are asked for, and not on the number of inference workers; with a recurrent one it also depends on
    where its run of frames started (it sees the ``warmup`` frames before that start, not the whole shot).
    """

    def __init__(self, plate, entry: catalog.ModelEntry, *, weights: str | None = None, device: str = "auto",
                 refine: bool = True, temporal_options: temporal.TemporalOptions | None = None,
                 workers: int | None = None, threads: int | None = None, keyframes: tracking.Keyframes | None = None):
        self.plate = plate
        self.keyframes = keyframes
        self.entry = entry
        self.predictor = runtime.ModelCache().get(entry, entry.task, device=device, weights_path=weights)
        self.refine = refine
        self.temporal = temporal_options if temporal_options and temporal_options.radius > 0 else None
        self.workers, self.threads = workers, threads

    def run(self, frames: list[int], emit: Callable[[int, Picture | None, np.ndarray], None],
            cancel: Callable[[], bool] | None = None, pictures: bool = False) -> None:
        """Call ``emit(frame, its plate picture if pictures else None, its matte H x W float32 [0,1])``
        for ``frames`` in increasing order.

        Decoding runs ahead in a reader thread, inference, the per-frame matte's upsampling
        (:func:`mattekit.masks.mask_from_prediction`) and what the temporal filter keeps of
        each frame (:meth:`mattekit.temporal.OrderedSmoother.keep`) in the pipeline's workers (a
        recurrent model: in its ordered writer thread); the temporal filter runs in the writer thread,
        in frame order, and ``emit`` (encoding) in a thread of its own, also in frame order, so that
        writing frame t overlaps filtering frame t+1. An error (unreadable frame, unwritable output)
        ends the run after the frames before it, and is raised here; ``cancel()`` is asked before each
        frame and raises :class:`Cancelled`.
        """
        predictor = self.predictor
        recurrent = self.entry.recurrent
        failures: list[MattekitError] = []
        stopped: list[bool] = []

        def emit_unless_cancelled(frame: int, picture: Picture | None, alpha: np.ndarray) -> None:
            if stopped or (cancel is not None and cancel()):
                stopped.append(True)
                return
            try:
                emit(frame, picture, alpha)
            except MattekitError as exc:
                failures.append(exc)
                stopped.append(True)  # nothing more is written after a failed write

        emitter = _Emitter(emit_unless_cancelled)
        stage = temporal.OrderedSmoother(self.temporal, self.plate.frames, frames, emitter.put)
        steps = recurrent_steps(self.plate.frames, stage.frames, self.entry.warmup) if recurrent else stage.frames
        chain = HintChain(self, stage) if self.keyframes is not None else None
        if chain is not None:
            steps = chain.order
        pushed = set(stage.frames)

        def noted(step):  # a user error ends the run: no frame after it can be emitted in order
            def call(*args):
                try:
                    return step(*args)
                except MattekitError as exc:
                    failures.append(exc)
                    raise
            return call

        def read(frame: int) -> tuple:
            picture = self.plate.read(frame)
            return predictor.prepare(picture.pixels), picture

        def upsample(frame: int, picture: Picture, prediction) -> np.ndarray:
            return masks.mask_from_prediction(picture.pixels, prediction, self.refine, soft=self.entry.task == "matte",
                                              upsampling=self.entry.output.upsample)

        def upsample_and_keep(frame: int, picture: Picture, prediction) -> tuple:
            alpha = upsample(frame, picture, prediction)
            return alpha, stage.keep(picture.pixels, alpha)

        carried = {"frame": None, "state": None}  # recurrent: the last frame run and the state after it

        def write(frame: int, picture: Picture, result) -> None:
            if chain is not None:
                for ready, kept, alpha in chain.step(frame, picture):
                    push(ready, kept, alpha)
                return
            if recurrent:
                if carried["frame"] is None:
                    runtime.set_threads(self.threads)  # the writer thread runs the net
                state = carried["state"] if carried["frame"] == frame - 1 else None
                prediction, carried["state"] = predictor.step(result, state)
                carried["frame"] = frame
                if frame not in pushed:  # warm-up only
                    return
                result = upsample(frame, picture, prediction)
            push(frame, picture, result)

        def push(frame: int, picture: Picture, result) -> None:
            alpha, kept = result if isinstance(result, tuple) else (result, None)
            if frame != stage.expects or stopped:  # an earlier frame failed
                return
            stage.push(frame, picture.pixels, alpha, picture if pictures else None, kept=kept)

        if chain is not None or recurrent:  # the net runs in write, in frame order (on each frame's hint with a chain)
            layout = pipeline.plan(predictor, workers=1, threads=1, batch=1, ordered=True)
            infer, post = (lambda x: x), None
        else:
            layout = pipeline.plan(predictor, workers=self.workers, threads=self.threads, ordered=True)
            infer, post = predictor, upsample_and_keep
        try:
            pipeline.run_pipeline(steps, noted(chain.read if chain else read), noted(infer), noted(write),
                                  post=noted(post) if post else None,
                                  cancel=lambda: bool(failures or stopped or emitter.error), **layout)
        finally:
            emitter.close()  # every result handed over is written (or the first failure noted)
        if failures:
            raise failures[0]
        if stopped or not stage.finished:
            raise Cancelled("The roto job was cancelled; run it again to resume.")


class _Emitter:
    """Calls ``emit(*args)`` for each :meth:`put`, in order, in a thread of its own (a queue of a few
    frames between them bounds the memory). After an exception in ``emit`` the rest is dropped and
    :meth:`close` raises it."""

    def __init__(self, emit: Callable, depth: int = 2):
        import queue
        import threading

        self.emit = emit
        self.error: BaseException | None = None
        self.queue: "queue.Queue" = queue.Queue(depth)
        self.thread = threading.Thread(target=self._run, name="mattekit-emit", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (args := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.emit(*args)
                except BaseException as exc:  # noqa: BLE001 - raised by close() in the caller's thread
                    self.error = exc

    def put(self, *args) -> None:
        self.queue.put(args)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


CARRIED_KEEP = 0.5  # a carried hint's whole-frame mask keeping less of its area than this: run on its region


class HintChain:
    """The user's keyframe hints carried through the frames a :class:`MatteSource` run needs
    (:mod:`mattekit.tracking`).

    A frame's hint is its keyframe's own (the net runs on the region it outlines), or the mask of
    the frame before it in its chain moved along the motion. With a carried hint the net runs on
    the whole frame and only what lies near that mask is kept; when that keeps less than
    :data:`CARRIED_KEEP` of the carried mask's area (a more salient subject drew the model away)
    it runs again on the carried mask's region. (Chosen on blackswan, car-shadow and dog, frames
    0-14, csnet-sod, per-frame J: 0.900 whole frame, 0.853 always on the region, 0.902 with no hint;
    this rule then gave temporal J 0.920 / 0.926 against 0.912 / 0.926 without a hint on blackswan
    / car-shadow, 50 / 40 frames. The region alone keeps a less salient subject: see the tests.)
    So the net runs frame after frame in chain order (:attr:`order`: backward
    from the first keyframe for frames before it, then forward), in the pipeline's ordered writer,
    while decoding (and the flow's grey frames) run ahead in the reader. Chains run from their
    keyframe whatever frames are asked for, so any split of the shot gives the same mattes; the
    frames before the first keyframe are held until the frames the filter takes next are known.
    """

    def __init__(self, source: "MatteSource", stage: temporal.OrderedSmoother):
        self.source, self.stage = source, stage
        self.keyframes = source.keyframes
        self.order, self.parent = tracking.schedule(self.keyframes, source.plate.frames, stage.frames)
        self.wanted = set(stage.frames)
        self.users = {frame: 0 for frame in self.order}  # how many frames carry from each
        for parent in self.parent.values():
            if parent is not None:
                self.users[parent] += 1
        self.done: dict[int, tuple] = {}  # frame -> (mask, grey, hint) until the frames carried from it ran
        self.held: dict[int, tuple] = {}  # frame -> (picture, mask) waiting for the filter's order
        self.released = 0  # stage.frames[:released] have been handed on
        self.started = False

    def read(self, frame: int) -> tuple:
        """The pipeline's read: a placeholder input (the net's input depends on the carried hint) and
        (picture, the flow's grey frame)."""
        import torch

        picture = self.source.plate.read(frame)
        return torch.zeros(1), (picture, tracking.grey(picture.pixels))

    def step(self, frame: int, context: tuple) -> list[tuple]:
        """Run the net on ``frame`` with its hint; returns the (frame, picture, mask) now ready, in the
        filter's order."""
        picture, grey = context
        if not self.started:
            runtime.set_threads(self.source.threads)  # the writer thread runs the net
            self.started = True
        height, width = picture.pixels.shape[:2]
        parent = self.parent[frame]
        if parent is None:
            hint = self.keyframes.hint(frame, height, width)
        elif parent not in self.done:  # its chain failed before it: nothing more is written
            return []
        else:
            mask, parent_grey, parent_hint = self.done[parent]
            hint = tracking.carried_hint(mask, parent_grey, grey, parent_hint)
            self.users[parent] -= 1
            if not self.users[parent]:
                del self.done[parent]
        predictor = self.source.predictor
        soft = self.source.entry.task == "matte"
        upsampling = self.source.entry.output.upsample
        mask = None
        if parent is not None:  # a carried hint: the whole frame, only what lies near the carried subject kept
            context = (hint, (0, 0, height, width))
            mask = masks.hinted_mask(picture.pixels, predictor(predictor.prepare(picture.pixels)), self.source.refine,
                                     context, soft=soft, upsampling=upsampling)
            if np.count_nonzero(mask > 0.5) < CARRIED_KEEP * np.count_nonzero(hint.mask > 0.5):
                mask = None  # the model let the subject go (another one is more salient): look at its region
        if mask is None:  # the user's hint, or a carried one the whole frame lost: the model runs on its region
            x, context = masks.hinted_input(predictor, picture.pixels, hint)
            mask = masks.hinted_mask(picture.pixels, predictor(x), self.source.refine, context, soft=soft,
                                     upsampling=upsampling)
        if self.users[frame]:
            self.done[frame] = (mask, grey, hint)
        if frame in self.wanted:
            self.held[frame] = (picture, mask)
        ready = []
        while self.released < len(self.stage.frames) and self.stage.frames[self.released] in self.held:
            ready.append((self.stage.frames[self.released], *self.held.pop(self.stage.frames[self.released])))
            self.released += 1
        return ready


def recurrent_steps(have, needed: list[int], warmup: int) -> list[int]:
    """The frames a recurrent model runs, in order, to give ``needed``: each needed frame and up to
    ``warmup`` plate frames before it (``have``: the plate's frames; history stops at a gap). Between
    two needed frames at most ``warmup`` apart the frames in between run too, so the state is carried;
    it starts afresh wherever the list skips a frame."""
    have = set(have)
    steps: set[int] = set()
    for frame in needed:
        steps.add(frame)
        for back in range(1, warmup + 1):
            if frame - back not in have:
                break
            steps.add(frame - back)
    return sorted(steps)


# ----------------------------------------------------------------------------------- the job

class RotoJob:
    """A roto job on disk: plate, output patterns, manifest, journals. See the module docstring."""

    def __init__(self, spec: RotoSpec):
        self.spec = spec
        self.plate = open_plate(spec.plate)
        self.frames, self.missing = select_frames(self.plate, spec.frames, skip_missing=spec.skip_missing)
        self.alpha_out = output_pattern(spec.output, self.plate)
        self.extra_out = {name: output_pattern(value, self.plate) for name, value in (("rgba", spec.rgba), ("fg", spec.fg)) if value}
        for name, pattern in self.extra_out.items():
            if pattern == self.alpha_out:
                raise OutputError(f"The --{name} pattern must differ from the matte pattern {self.alpha_out}.")
        refuse_overwriting_inputs(spec, self.plate, self.frames, {"output": self.alpha_out, **self.extra_out})
        if spec.bit_depth not in (8, 16, 32) or (spec.bit_depth == 32 and self.alpha_out.suffix.lower() != ".exr"):
            raise OutputError(f"A {spec.bit_depth}-bit matte cannot be written as {self.alpha_out.suffix}: use 8 or 16 (PNG, TIFF) or 16 or 32 (EXR).")
        cat = catalog.load()
        self.entry = cat.get(spec.model, ROTO_MODEL_TASKS) if spec.model else cat.default("segment")
        default = temporal.for_model(self.entry)
        radius = default.radius if spec.radius is None else spec.radius
        self.temporal = dataclasses.replace(default, radius=radius) if spec.temporal and radius > 0 else None
        self.keyframes = keyframes_of(spec, self.plate, self.entry)
        stem = self.alpha_out.prefix.rstrip("._-") or "matte"
        self.manifest_path = self.alpha_out.folder / (stem + MANIFEST_SUFFIX)
        self.journal_dir = self.alpha_out.folder / ("." + stem + JOURNAL_SUFFIX)
        self._weights: Path | None = None
        self._fingerprint: str | None = None
        self._provenance: dict | None = None

    # -- settings and manifest
    def weights_path(self) -> Path:
        if self._weights is None:
            from . import weights

            self._weights = Path(self.spec.weights) if self.spec.weights else weights.model_file(self.entry.name, self.entry.files)
            if not self._weights.is_file():
                raise MattekitError(f"Weights file {self._weights} does not exist.")
        return self._weights

    def settings(self) -> dict:
        """What decides the bytes of the output files (the fingerprint is its hash); outputs aside,
        since each frame's record names its files (adding --rgba later recomputes only to add them)."""
        settings = {"kind": "roto", "plate": self.plate.describe(),
                "model": {"name": self.entry.name, "net": self.entry.net, "kwargs": self.entry.kwargs,
                          "weights": self.weights_path().name, "sha256": known_sha256(self.weights_path())},
                "refine": self.spec.refine, "bit_depth": self.spec.bit_depth,
                "temporal": self.temporal.describe() if self.temporal else None}
        if self.entry.recurrent:
            settings["warmup"] = self.entry.warmup
        if self.keyframes is not None:
            settings["hints"] = self.keyframes.describe()
        return settings

    def provenance(self) -> dict:
        """What makes this job's files (:func:`mattekit.provenance.roto_record`): in the manifest and each file."""
        if self._provenance is None:
            from .provenance import changed_options, model_record, roto_record
            from .tasks.registry import options_of

            model = self.settings()["model"]
            changed = changed_options(options_of(RotoSpec), self.spec, RotoSpec(plate="", output=""),
                                      unrecorded=("threads", "workers", "overwrite", "skip_missing", "frames"))
            from .weights import pinned_sha256s

            record = model_record(self.entry, self.weights_path(), model["sha256"], pinned_sha256s(self.entry.files))
            self._provenance = roto_record(changed, record)
        return self._provenance

    def outputs(self) -> dict[str, str]:
        return {"alpha": str(self.alpha_out)} | {k: str(v) for k, v in self.extra_out.items()}

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            text = json.dumps(self.settings(), sort_keys=True)
            self._fingerprint = hashlib.sha256(text.encode()).hexdigest()[:32]
        return self._fingerprint

    def prepare_output(self) -> None:
        """Create the output folders; write the manifest, or check it against these settings."""
        for pattern in (self.alpha_out, *self.extra_out.values()):
            try:
                pattern.folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"Cannot create the output folder {pattern.folder}: {exc.strerror or exc}.") from None
        settings = self.settings()
        if self.manifest_path.is_file() and not self.spec.overwrite:
            try:
                old = json.loads(self.manifest_path.read_text())
            except (OSError, ValueError):
                old = {}
            if old.get("fingerprint") == self.fingerprint() and all(old.get("outputs", {}).get(k) == v for k, v in self.outputs().items()):
                return
            if old.get("fingerprint") == self.fingerprint():
                settings_outputs = old.get("outputs", {}) | self.outputs()
                self._write_manifest(settings, settings_outputs)
                return
            if old:
                what = _difference(old.get("settings", {}), settings)
                raise OutputError(f"{self.alpha_out} already holds mattes made with other settings ({what}); "
                                  f"use --overwrite to redo them, or choose another output.")
        self._write_manifest(settings, self.outputs())

    def _write_manifest(self, settings: dict, outputs: dict) -> None:
        record = {"mattekit": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "fingerprint": self.fingerprint(), "settings": settings, "outputs": outputs,
                  "journal": self.journal_dir.name, "provenance": self.provenance()}
        try:
            atomic_write(self.manifest_path, json.dumps(record, indent=1, sort_keys=True) + "\n")
        except OSError as exc:
            raise OutputError(f"Cannot write {self.manifest_path}: {exc.strerror or exc}.") from None

    # -- which frames are finished
    def _records(self) -> dict[int, dict[str, list]]:
        """{frame: {output name: [file path, sha256, plate stamp]}} from journal records with this
        job's fingerprint, the latest record of each file winning."""
        found: dict[int, dict[str, list]] = {}
        if not self.journal_dir.is_dir():
            return found
        for journal in sorted(self.journal_dir.glob("*.jsonl"), key=lambda p: p.stat().st_mtime):
            try:
                lines = journal.read_text(errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                try:
                    record = json.loads(line)
                    if record.get("fingerprint") == self.fingerprint():
                        found.setdefault(int(record["frame"]), {}).update(record["files"])
                except (ValueError, TypeError, KeyError, AttributeError):  # a line cut short by a kill
                    continue
        return found

    def finished(self, frames: list[int] | None = None) -> set[int]:
        """Frames whose every requested output is on disk with exactly the bytes a journal recorded
        (for the same plate file as now)."""
        frames = self.frames if frames is None else frames
        if self.spec.overwrite:
            return set()
        records = self._records()
        wanted = self.outputs()
        done = set()
        for frame in frames:
            files = records.get(frame, {})
            if all(self._verify(files.get(name), self._pattern(name).path(frame), frame) for name in wanted):
                done.add(frame)
        return done

    def _pattern(self, name: str) -> FramePattern:
        return self.alpha_out if name == "alpha" else self.extra_out[name]

    def _plate_stamp(self, frame: int) -> list[int]:
        """Size and modification time of the plate file holding ``frame`` (a re-delivered plate is redone)."""
        path = self.plate.files[frame] if hasattr(self.plate, "files") else self.plate.path
        stat = path.stat()
        return [stat.st_size, stat.st_mtime_ns]

    def _verify(self, entry, path: Path, frame: int) -> bool:
        if not entry or len(entry) != 3 or entry[0] != str(path):
            return False
        try:
            return entry[2] == self._plate_stamp(frame) and path.is_file() and sha256_file(path) == entry[1]
        except OSError:
            return False

    def _clean_temporaries(self, frames: list[int]) -> None:
        """Remove temporary files a killed run left for these frames."""
        for pattern in (self.alpha_out, *self.extra_out.values()):
            for frame in frames:
                for tmp in stale_temporaries(pattern.path(frame)):
                    with contextlib.suppress(OSError):
                        tmp.unlink()

    # -- chunks
    def chunks(self, size: int) -> list[list[int]]:
        return chunk_frames(self.frames, size)

    # -- running
    def run(self, frames: list[int] | None = None, progress: Callable[[Progress], None] | None = None,
            cancel: Callable[[], bool] | None = None) -> Summary:
        """Compute the unfinished frames among ``frames`` (default: the job's); returns a Summary."""
        frames = sorted(self.frames if frames is None else frames)
        started = time.monotonic()
        self.prepare_output()
        done = self.finished(frames)
        todo = [f for f in frames if f not in done]
        summary = Summary(frames, skipped=sorted(done))
        self._clean_temporaries(todo)
        report = _Reporter(progress, len(frames), len(done), started)
        report(None)
        if not todo:
            summary.seconds = time.monotonic() - started
            return summary
        source = MatteSource(self.plate, self.entry, weights=str(self.weights_path()), device=self.spec.device,
                             refine=self.spec.refine, temporal_options=self.temporal,
                             workers=self.spec.workers, threads=self.spec.threads, keyframes=self.keyframes)
        with _Journal(self.journal_dir) as journal:
            def finish(frame: int, picture: Picture | None, alpha: np.ndarray) -> None:
                files = self._write(frame, picture, alpha)
                journal.append({"frame": frame, "fingerprint": self.fingerprint(), "files": files})
                summary.computed.append(frame)
                report(frame)

            source.run(todo, finish, cancel, pictures=bool(self.extra_out))
        summary.seconds = time.monotonic() - started
        return summary

    def _write(self, frame: int, picture: Picture | None, alpha: np.ndarray) -> dict[str, list]:
        """Write a frame's outputs atomically; returns {output name: [path, sha256, plate stamp]}."""
        stamp = self._plate_stamp(frame)
        path = self.alpha_out.path(frame)
        write_image(path, alpha, bit_depth=self.spec.bit_depth, provenance=self.provenance())
        files = {"alpha": [str(path), sha256_file(path), stamp]}
        for name, pattern in self.extra_out.items():
            coverage = alpha * picture.pixels[..., 3] if picture.has_alpha else alpha  # transparent stays so
            rgb = picture.pixels[..., :3] if name == "rgba" else estimate_foreground(picture.pixels[..., :3], coverage)
            path = pattern.path(frame)
            write_image(path, np.concatenate([rgb, coverage[..., None]], axis=2),
                        bit_depth=16 if picture.bit_depth >= 16 else 8, provenance=self.provenance())
            files[name] = [str(path), sha256_file(path), stamp]
        return files


def refuse_overwriting_inputs(spec: RotoSpec, plate, frames: list[int], outputs: dict[str, FramePattern]) -> None:
    """OutputError (one sentence) when a file the job would write is one it reads, checked before anything
    is written or loaded.

    Written: each output pattern (``outputs``: {option name: pattern}, the matte, ``rgba``, ``fg``) for
    ``frames``. Read: every option of :class:`RotoSpec` that names files and does not write (``path`` and
    not ``writes``): every frame file of the plate (or the movie), the hint masks, the weights file.
    An output pattern that names a read sequence (same folder and naming) is refused too, even where their
    frames do not meet: its files would join that sequence (a new frame of the plate, a new keyframe).
    """
    read = FilesRead()
    patterns: list[tuple[FramePattern, str]] = []  # (a pattern read, what it is)
    for declared in options_of(RotoSpec):
        value = getattr(spec, declared.name)
        if not declared.reads or not value:
            continue
        if declared.name == "plate":  # a pattern, one frame, a folder or a movie: the frames as opened
            if hasattr(plate, "files"):
                patterns.append((plate.pattern, f"the plate {plate.pattern}"))
                for path in plate.files.values():
                    read.add(path, f"a frame of the plate {plate.pattern}")
            else:
                read.add(plate.path, f"the plate {plate.path}")
            continue
        read.add(value, f"the {declared.flag} file")
        with contextlib.suppress(InputError):  # a pattern such as masks/####.png: its files
            pattern = FramePattern.parse(value)
            patterns.append((pattern, f"the {declared.flag} pattern {pattern}"))
            for path in pattern.scan().values():
                read.add(path, f"a file of the {declared.flag} pattern {pattern}")
    for name, out in outputs.items():
        fix = ("choose another -o (output pattern or folder)" if name == "output"
               else f"choose another {'--' + name.replace('_', '-')} pattern")
        for pattern, what in patterns:
            if _same_naming(out, pattern):
                raise OutputError(f"The output pattern {out} is {what}: writing it would replace or add to its "
                                  f"files; {fix}.")
        for frame in frames:
            what = read.which(out.path(frame))
            if what is not None:
                raise OutputError(f"The output {out.path(frame)} is {what}: writing it would replace the original; {fix}.")


def _same_naming(a: FramePattern, b: FramePattern) -> bool:
    """The two patterns name files of one sequence: same folder (links resolved), prefix and suffix (whatever
    the padding: ``f.#.png`` and ``f.####.png`` share frames 1000 and up, and a plate named by one frame
    takes the shortest numbers as its padding)."""
    if (a.prefix, a.suffix) != (b.prefix, b.suffix):
        return False
    try:
        return a.folder.resolve() == b.folder.resolve() or (a.folder.is_dir() and b.folder.is_dir()
                                                            and os.path.samefile(a.folder, b.folder))
    except OSError:
        return False


def keyframes_of(spec: RotoSpec, plate, entry: catalog.ModelEntry) -> tracking.Keyframes | None:
    """The job's keyframe hints (None without any), checked against the plate and the model."""
    keyframes = tracking.Keyframes.parse(spec.box, spec.point, spec.exclude, spec.hint_mask)
    if keyframes is None:
        return None
    if entry.recurrent:
        raise InputError(f"{entry.name} is a recurrent video model and takes no hints; use a segmentation model "
                         "(e.g. --model objects) with --box, --point, --exclude or --hint-mask.")
    outside = [k for k in keyframes.frames if k not in set(plate.frames)]
    if outside:
        raise InputError(f"Keyframe {outside[0]} of the hints is not a frame of the plate ({format_frames(plate.frames)}).")
    height, width = plate.read(keyframes.frames[0]).pixels.shape[:2]
    for frame in keyframes.frames:  # checked before any frame is computed
        keyframes.hint(frame, height, width)
    return keyframes


def _difference(old: dict, new: dict) -> str:
    changed = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if "model" in changed and old.get("model", {}).get("name") != new["model"]["name"]:
        return f"model {old.get('model', {}).get('name')} instead of {new['model']['name']}"
    return "different " + ", ".join(changed) if changed else "an unreadable manifest"


class _Journal:
    """This process's append-only journal: one JSON line per finished frame."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.fd: int | None = None

    def __enter__(self) -> "_Journal":
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"{platform.node() or 'host'}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
            self.fd = os.open(self.folder / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise OutputError(f"Cannot write the job journal in {self.folder}: {exc.strerror or exc}.") from None
        return self

    def append(self, record: dict) -> None:
        os.write(self.fd, (json.dumps(record, sort_keys=True) + "\n").encode())

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)


class _Reporter:
    """Turns frame completions into Progress events (frames/s over computed frames only)."""

    def __init__(self, callback, total: int, skipped: int, started: float):
        self.callback, self.total, self.skipped, self.started = callback, total, skipped, started
        self.computed = 0
        self.first: float | None = None

    def __call__(self, frame: int | None) -> None:
        """One more frame computed (None: just report)."""
        if frame is not None:
            self.computed += 1
        self.emit(frame)

    def emit(self, frame: int | None) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = now  # frames/s from the first report on: model loading is not a frame's cost
        if self.callback is None:
            return
        span = now - self.first
        fps = self.computed / span if span > 0 and self.computed else 0.0
        left = self.total - self.skipped - self.computed
        eta = left / fps if fps > 0 else None
        self.callback(Progress(self.skipped + self.computed, self.total, frame, self.computed, self.skipped,
                               now - self.started, fps, eta))


# ----------------------------------------------------------------------------------- Ray

def run_on_ray(spec: RotoSpec, chunk: int, address: str | None = None, workers: int | None = None,
               progress: Callable[[Progress], None] | None = None) -> Summary:
    """Run a roto job's chunks on a Ray cluster: one model per worker (one worker per GPU when the
    cluster has GPUs), each worker writing its frames and journal itself. Resumable like :meth:`RotoJob.run`."""
    try:
        import ray
    except ImportError:
        raise MattekitError("--ray needs Ray: pip install 'mattekit[ray]' (or pip install ray).") from None
    job = RotoJob(spec)  # checks the plate, frames and outputs here, before any task starts
    job.prepare_output()
    started = time.monotonic()
    chunks = job.chunks(chunk)
    summary = Summary(job.frames)
    owned = not ray.is_initialized()
    if owned:
        try:
            ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR", configure_logging=True)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise MattekitError(f"Cannot reach the Ray cluster{' at ' + address if address else ''}: {str(exc).splitlines()[0]}.") from None
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        cpus = int(ray.cluster_resources().get("CPU", 1))
        count = workers or (gpus if gpus else max(1, cpus // max(1, spec.threads or 1)))
        count = max(1, min(count, len(chunks)))
        options = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": max(1, spec.threads or 1)}
        worker_spec = spec.to_dict() | {"device": spec.device if gpus or spec.device != "auto" else "cpu"}
        actors = [_ray_worker_class(ray).options(**options).remote(worker_spec) for _ in range(count)]
        pool = ray.util.ActorPool(actors)
        report = _Reporter(progress, len(job.frames), 0, started)
        for result in pool.map_unordered(lambda actor, frames: actor.run.remote(frames), chunks):
            part = Summary(result["frames"], result["computed"], result["skipped"], result["seconds"])
            summary.merge(part)
            report.skipped, report.computed = len(summary.skipped), len(summary.computed)
            report.emit(part.frames[-1])
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if isinstance(getattr(exc, "cause", None), Exception) else exc
        if isinstance(cause, MattekitError):
            raise MattekitError(str(cause)) from None
        raise
    finally:
        if owned:
            ray.shutdown()
    summary.computed.sort()
    summary.skipped.sort()
    summary.seconds = time.monotonic() - started
    return summary


_RAY_WORKER = None


def _ray_worker_class(ray):
    """The Ray actor class (defined on first use, so that mattekit imports without Ray)."""
    global _RAY_WORKER
    if _RAY_WORKER is None:
        class RotoWorker:
            """Holds one RotoJob (and so one loaded model) and runs chunks of it."""

            def __init__(self, spec: dict):
                self.job = RotoJob(RotoSpec.from_dict(spec))

            def run(self, frames: list[int]) -> dict:
                summary = self.job.run(frames)
                return {"frames": summary.frames, "computed": summary.computed, "skipped": summary.skipped,
                        "seconds": summary.seconds}

        _RAY_WORKER = ray.remote(RotoWorker)
    return _RAY_WORKER


# ----------------------------------------------------------------------------------- worker operation

def run_operation(options: dict, progress: Callable[[float, str], None]) -> list:
    """The worker's asynchronous ``roto`` operation: paths in, files out, progress reported.

    ``progress(fraction, message)`` may raise to cancel (the worker does when a client cancels);
    frames already written stay, and a re-run resumes.
    """
    spec = RotoSpec.from_dict(options)
    job = RotoJob(spec)
    progress(0.0, f"Roto: {len(job.frames)} frames of {job.plate.describe()}")
    summary = job.run(progress=lambda p: progress(p.fraction, "Roto: " + p.message()))
    progress(1.0, f"Roto: {len(summary.computed)} frames computed, {len(summary.skipped)} already done "
                  f"-> {job.alpha_out} (frames {format_frames(job.frames)})")
    return []
