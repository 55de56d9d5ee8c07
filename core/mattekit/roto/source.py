"""Mattes of plate frames in frame order (:class:`MatteSource`): the model through the pipeline, then
the temporal filter; a recurrent model's warm-up frames (:func:`recurrent_steps`); every plate frame a run decodes
(:func:`frames_read`)."""
from __future__ import annotations

import queue
import threading
from typing import Callable

import numpy as np

from .. import catalog, pipeline, runtime
from ..subject import masks
from . import temporal, tracking
from ..errors import Cancelled, MattekitError
from ..io import Picture
from .chain import HintChain
from .sam import SamChain, runs, shared_features


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
                 workers: int | None = None, threads: int | None = None, keyframes: tracking.Keyframes | None = None,
                 models: runtime.ModelCache | None = None, features=None):
        """``models``: the cache the model is loaded into (the worker's, so a loaded model is reused;
        None: a fresh one). ``features``: a SAM model's frame features shared with the job's other objects
        (:func:`.sam.shared_features`; None: the source makes its own)."""
        self.plate = plate
        self.keyframes = keyframes
        self.entry = entry
        self.predictor = (models or runtime.ModelCache()).get(entry, entry.task, device=device, weights_path=weights)
        self.refine = refine
        self.temporal = temporal_options if temporal_options and temporal_options.radius > 0 else None
        self.workers, self.threads = workers, threads
        self.features = features if features is not None or entry.task != "prompt" else shared_features()

    def run(self, frames: list[int], emit: Callable[[int, Picture | None, np.ndarray], None],
            cancel: Callable[[], bool] | None = None, pictures: bool = False) -> None:
        """Call ``emit(frame, its plate picture if pictures else None, its matte H x W float32 [0,1])``
        for ``frames`` in increasing order.

        Decoding runs ahead in a reader thread, inference, the per-frame matte's upsampling
        (:func:`mattekit.subject.masks.mask_from_prediction`) and what the temporal filter keeps of
        each frame (:meth:`mattekit.roto.temporal.OrderedSmoother.keep`) in the pipeline's workers (a
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
        chain = None
        if self.keyframes is not None:  # a promptable model tracks with its memory, others carry along the flow
            chain = (SamChain if self.entry.task == "prompt" else HintChain)(self, stage)
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
            infer, post = None, None  # no inference stage
        else:
            layout = pipeline.plan(predictor, workers=self.workers, threads=self.threads, ordered=True)
            infer, post = noted(predictor), noted(upsample_and_keep)
        try:
            pipeline.run_pipeline(steps, noted(chain.read if chain else read), infer, noted(write), post=post,
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


def frames_read(plate, entry: catalog.ModelEntry, temporal_options: temporal.TemporalOptions | None,
                keyframes: tracking.Keyframes | None, wanted: list[int]) -> list[int]:
    """Every plate frame that :meth:`MatteSource.run` over ``wanted`` decodes, sorted: the wanted frames, the
    neighbours in their temporal windows, a recurrent model's warm-up frames, a hint chain's frames from its
    keyframe (what a job checks before any model loads)."""
    stage = temporal.OrderedSmoother(temporal_options if temporal_options and temporal_options.radius > 0 else None,
                                     plate.frames, wanted, None)
    if keyframes is not None and entry.task == "prompt":
        return sorted({frame for run in runs(keyframes, plate.frames, stage.frames) for frame in run})
    if keyframes is not None:
        return sorted(set(tracking.schedule(keyframes, plate.frames, stage.frames)[0]))
    return recurrent_steps(plate.frames, stage.frames, entry.warmup) if entry.recurrent else stage.frames
