"""Mattes of plate frames in frame order (:class:`MatteSource`): the model through the pipeline, then
the temporal filter; a recurrent model's warm-up frames (:func:`recurrent_steps`); every plate frame a run decodes
(:func:`frames_read`)."""

from __future__ import annotations

import queue
import threading
from typing import Callable

import numpy as np

from ..finish.device import device_of
from ..finish.refine import mask_from_prediction
from ..matting import shadow as shadows
from .. import runtime
from ..options import ModelChoice
from ..running import layout, pipeline
from . import ordered, temporal, temporal_device, tracking
from ..errors import Cancelled, MattekitError
from ..io import Picture
from .chain import HintChain
from .layers import coverage_of
from .sam import SamChain, shared_features


class MatteSource:
    """Mattes of plate frames: the model's alpha through the pipeline, then (optionally) temporal
    smoothing in frame order.

    A segmentation model gives a subject mask, a matting model (``people``) a soft alpha; either is
    upsampled to the frame. A recurrent model (``model.recurrent``, RobustVideoMatting) carries its
    state from frame to frame: it runs in frame order in the pipeline's ordered stage, and each run of
    consecutive frames first runs the ``model.warmup`` plate frames before it (see :func:`recurrent_steps`).

    :meth:`run` hands (frame, picture, alpha, shadow) to a callback in increasing frame order. With ``shadow``
    each frame's shadow matte (:func:`mattekit.matting.shadow.estimate` under its per-frame matte) goes through
    the temporal filter beside the matte, along the same flows with the same weights, so it is as steady as the
    mattes and depends on the same plate frames. With a per-frame
    model a frame's result depends only on the plate frames within the temporal window, whatever frames
    are asked for, and not on the number of inference workers; with a recurrent one it also depends on
    where its run of frames started (it sees the ``warmup`` frames before that start, not the whole shot).
    """

    def __init__(
        self,
        plate,
        model: ModelChoice,
        *,
        weights: str | None = None,
        device: str = "auto",
        refine: bool = True,
        refine_above: float = 1.0,
        temporal_options: temporal.TemporalOptions | None = None,
        workers: int | None = None,
        threads: int | None = None,
        keyframes: tracking.Keyframes | None = None,
        models: runtime.ModelCache | None = None,
        features=None,
        shadow: bool = False,
    ):
        """``models``: the cache the model is loaded into (the worker's, so a loaded model is reused;
        None: a fresh one). ``features``: a SAM model's frame features shared with the job's other objects
        (:func:`.sam.shared_features`; None: the source makes its own)."""
        self.plate = plate
        self.keyframes = keyframes
        self.predictor = (models or runtime.ModelCache()).get(model, device=device, weights_path=weights)
        self.refine, self.refine_above = refine, refine_above  # (finish.refine.refine_mask's)
        self.temporal = temporal_options if temporal_options and temporal_options.radius > 0 else None
        self.workers, self.threads = workers, threads
        self.shadow = shadow
        self.features = features if features is not None or model.task != "prompt" else shared_features()

    def run(
        self,
        frames: list[int],
        emit: Callable[[int, Picture | None, np.ndarray], None],
        cancel: Callable[[], bool] | None = None,
        pictures: bool = False,
    ) -> None:
        """Call ``emit(frame, its plate picture if pictures else None, its matte H x W float32 [0,1], its shadow
        matte H x W float32 [0,1] with ``shadow`` else None)`` for ``frames`` in increasing order.

        Decoding runs ahead in reader threads (a movie's in one; files in several with the model on CUDA),
        inference, the per-frame matte's upsampling (:func:`mattekit.finish.refine.mask_from_prediction`) and what
        the temporal filter keeps of each frame (:meth:`mattekit.roto.ordered.OrderedSmoother.keep`) in the
        pipeline's workers (a recurrent model: in its ordered writer thread); the temporal filter runs in the writer thread,
        in frame order (its full-resolution work on the model's GPU whatever the frame's size:
        :func:`mattekit.roto.temporal_device.device_for`), and ``emit`` (encoding) in a thread of its own, also in
        frame order, so that writing frame t overlaps filtering frame t+1. An error (unreadable frame, unwritable output)
        ends the run after the frames before it, and is raised here; ``cancel()`` is asked before each
        frame and raises :class:`Cancelled`.
        """
        _MatteRun(self, frames, emit, cancel, pictures).run()


class _MatteRun:
    """One :meth:`MatteSource.run`: its pipeline stages (read, infer, upsample and keep, write) and what they
    share: the first user error, whether the run stopped, a recurrent model's carried state."""

    def __init__(
        self, source: MatteSource, frames: list[int], emit: Callable, cancel: Callable[[], bool] | None, pictures: bool
    ):
        self.source, self.predictor, self.emit, self.cancel, self.pictures = (
            source,
            source.predictor,
            emit,
            cancel,
            pictures,
        )
        self.recurrent = self.predictor.recurrent
        self.failures: list[MattekitError] = []
        self.stopped = False
        self.emitter = _Emitter(self.emit_unless_cancelled)
        self.stage = ordered.OrderedSmoother(
            source.temporal,
            source.plate.frames,
            frames,
            self.emitter.put,
            device=temporal_device.device_for(self.predictor),
        )
        self.steps = (
            recurrent_steps(source.plate.frames, self.stage.frames, self.predictor.warmup)
            if self.recurrent
            else self.stage.frames
        )
        self.chain = None
        if source.keyframes is not None:  # a promptable model tracks with its memory, others carry along the flow
            self.chain = (SamChain if self.predictor.task == "prompt" else HintChain)(source, self.stage)
            self.steps = self.chain.order
        self.pushed = set(self.stage.frames)
        self.carried_frame, self.carried_state = None, None  # recurrent: the last frame run and the state after it

    def run(self) -> None:
        """Run the pipeline over the steps; raise the first user error, or Cancelled when the run stopped short."""
        predictor, chain = self.predictor, self.chain
        if (
            chain is not None or self.recurrent
        ):  # the net runs in write, in frame order (on each frame's hint with a chain)
            stages = layout.plan(predictor, workers=1, threads=1, batch=1, ordered=True, readers=1)
            infer, post = None, None  # no inference stage
        else:
            stages = layout.plan(
                predictor,
                workers=self.source.workers,
                threads=self.source.threads,
                ordered=True,
                readers=None if self.source.plate.kind == "images" else 1,
            )  # a movie: in order
            infer, post = self.noted(predictor), self.noted(self.upsample_and_keep)
        try:
            pipeline.run_pipeline(
                self.steps,
                self.noted(chain.read if chain else self.read),
                infer,
                self.noted(self.write),
                post=post,
                cancel=lambda: bool(self.failures or self.stopped or self.emitter.error),
                **stages,
            )
        finally:
            self.emitter.close()  # every result handed over is written (or the first failure noted)
        if self.failures:
            raise self.failures[0]
        if self.stopped or not self.stage.finished:
            raise Cancelled("The roto job was cancelled; run it again to resume.")

    def emit_unless_cancelled(
        self, frame: int, picture: Picture | None, alpha: np.ndarray, cast: np.ndarray | None
    ) -> None:
        """The emitter thread's call: ``emit`` unless the run stopped or ``cancel()`` says so."""
        if self.stopped or (self.cancel is not None and self.cancel()):
            self.stopped = True
            return
        try:
            self.emit(frame, picture, alpha, cast)
        except MattekitError as exc:
            self.failures.append(exc)
            self.stopped = True  # nothing more is written after a failed write

    def noted(self, step: Callable) -> Callable:
        """``step``, noting a user error it raises: it ends the run, as no frame after it can be emitted in order."""

        def call(*args):
            try:
                return step(*args)
            except MattekitError as exc:
                self.failures.append(exc)
                raise

        return call

    def read(self, frame: int) -> tuple:
        picture = self.source.plate.read(frame)
        return self.predictor.prepare(picture.pixels), picture

    def upsample(self, frame: int, picture: Picture, prediction) -> np.ndarray:
        predictor = self.predictor
        return mask_from_prediction(
            picture.pixels,
            prediction,
            self.source.refine,
            soft=predictor.task == "matte",
            upsampling=predictor.upsampling,
            device=device_of(self.predictor, picture.pixels),
            refine_above=self.source.refine_above,
        )

    def upsample_and_keep(self, frame: int, picture: Picture, prediction) -> tuple:
        alpha = self.upsample(frame, picture, prediction)
        return alpha, self.keep(picture, alpha)

    def keep(self, picture: Picture, alpha: np.ndarray):
        """What the temporal filter keeps of a frame: with ``shadow``, its shadow matte under its per-frame matte."""
        cast = shadows.estimate(picture.pixels, coverage_of(picture, alpha)) if self.source.shadow else None
        return self.stage.keep(picture.pixels, alpha, cast)

    def write(self, frame: int, picture: Picture, result) -> None:
        """The pipeline's ordered writer: a chain's or a recurrent model's step, then the temporal filter."""
        if self.chain is not None:
            for ready, kept, alpha in self.chain.step(frame, picture):
                self.push(ready, kept, alpha)
            return
        if self.recurrent:
            if self.carried_frame is None:
                runtime.set_threads(self.source.threads)  # the writer thread runs the net
            state = self.carried_state if self.carried_frame == frame - 1 else None
            prediction, self.carried_state = self.predictor.step(result, state)
            self.carried_frame = frame
            if frame not in self.pushed:  # warm-up only
                return
            result = self.upsample(frame, picture, prediction)
        self.push(frame, picture, result)

    def push(self, frame: int, picture: Picture, result) -> None:
        alpha, kept = result if isinstance(result, tuple) else (result, None)
        if frame != self.stage.expects or self.stopped:  # an earlier frame failed
            return
        self.stage.push(
            frame,
            picture.pixels,
            alpha,
            picture if self.pictures else None,
            kept=self.keep(picture, alpha) if kept is None else kept,
        )


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


def frames_read(
    plate,
    model: ModelChoice,
    temporal_options: temporal.TemporalOptions | None,
    keyframes: tracking.Keyframes | None,
    wanted: list[int],
) -> list[int]:
    """Every plate frame that :meth:`MatteSource.run` over ``wanted`` decodes, sorted: the wanted frames, the
    neighbours in their temporal windows, a recurrent model's warm-up frames, a hint chain's frames from its
    keyframe (what a job checks before any model loads)."""
    stage = ordered.OrderedSmoother(
        temporal_options if temporal_options and temporal_options.radius > 0 else None, plate.frames, wanted, None
    )
    if keyframes is not None:  # SAM's runs (:func:`.sam.runs`) decode the frames of the hint chains' schedule
        return sorted(set(tracking.schedule(keyframes, plate.frames, stage.frames)[0]))
    return recurrent_steps(plate.frames, stage.frames, model.warmup) if model.recurrent else stage.frames
