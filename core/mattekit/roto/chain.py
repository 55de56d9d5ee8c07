"""Keyframe hints carried through a shot along the motion (:class:`HintChain`, :mod:`mattekit.roto.tracking`),
and the job's keyframes checked against its plate and model (:func:`keyframes_of`)."""

from __future__ import annotations

import numpy as np

from ..finish.device import device_of
from .. import runtime
from ..options import ModelChoice
from ..subject import answer, hints, prompting
from . import ordered, tracking
from ..errors import InputError
from ..io.frame_ranges import format_frames
from ..tasks.roto import RotoSpec


CARRIED_KEEP = 0.5  # a carried hint's whole-frame mask keeping less of its area than this: run on its region


class HintChain:
    """The user's keyframe hints carried through the frames a :class:`~mattekit.roto.source.MatteSource` run needs
    (:mod:`mattekit.roto.tracking`).

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

    def __init__(self, source, stage: ordered.OrderedSmoother):
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
        picture = self.source.plate.read(frame)
        return np.zeros(1, np.float32), (picture, tracking.grey(picture.pixels))

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
        predictor, mask, pixels = self.source.predictor, None, picture.pixels

        def answered(x, context) -> np.ndarray:
            y, soft = predictor(x), predictor.task == "matte"
            device = device_of(predictor, pixels)
            return answer.hinted_mask(
                pixels, y, self.source.refine, context, soft=soft, upsampling=predictor.upsampling, device=device
            )

        if parent is not None:  # a carried hint: the whole frame, only what lies near the carried subject kept
            mask = answered(predictor.prepare(pixels), hints.Hinted(hint, hints.Box(0, 0, width, height)))
            if np.count_nonzero(mask > 0.5) < CARRIED_KEEP * np.count_nonzero(hint.mask > 0.5):
                mask = None  # the model let the subject go (another one is more salient): look at its region
        if mask is None:  # the user's hint, or a carried one the whole frame lost: the model runs on its region
            mask = answered(*answer.hinted_input(predictor, pixels, hint))
        if self.users[frame]:
            self.done[frame] = (mask, grey, hint)
        if frame in self.wanted:
            self.held[frame] = (picture, mask)
        ready, self.released = release(self.stage.frames, self.held, self.released)
        return ready


def release(frames: list[int], held: dict[int, tuple], released: int) -> tuple[list[tuple], int]:
    """The chain's answers the filter can take now: (frame, *held[frame]) for ``frames[released:]`` while
    they are ``held`` (taken out of it), and the new count of frames handed on."""
    ready = []
    while released < len(frames) and frames[released] in held:
        ready.append((frames[released], *held.pop(frames[released])))
        released += 1
    return ready, released


def keyframes_of(spec: RotoSpec, plate, model: ModelChoice) -> tracking.Keyframes | None:
    """The job's keyframe hints (None without any), checked against the plate and the model."""
    keyframes = tracking.Keyframes.of(spec.box, spec.point, spec.exclude, spec.hint_mask)
    if keyframes is None:
        if model.task == "prompt":
            raise InputError(
                f"{model.model} tracks an object you show it: give --box, --point or --hint-mask on a "
                "keyframe (FRAME:...), or choose a segmentation model."
            )
        return None
    if model.recurrent:
        raise InputError(
            f"{model.model} is a recurrent video model and takes no hints; use a segmentation model "
            "(e.g. --model objects) with --box, --point, --exclude or --hint-mask."
        )
    outside = [k for k in keyframes.frames if k not in set(plate.frames)]
    if outside:
        raise InputError(
            f"Keyframe {outside[0]} of the hints is not a frame of the plate ({format_frames(plate.frames)})."
        )
    height, width = plate.read(keyframes.frames[0]).pixels.shape[:2]
    for frame in keyframes.frames:  # checked before any frame is computed
        hint = keyframes.hint(frame, height, width)
        if model.task == "prompt" and not prompting.answerable(hint):
            raise InputError(
                f"Keyframe {frame} has only exclude points; {model.model} needs a box, an include point "
                "or a hint mask on each keyframe."
            )
    return keyframes
