"""An object tracked through a shot by SAM 2.1's memory (:class:`SamChain`), for a roto job whose model is a
promptable one (catalog task ``prompt``).

Each keyframe starts a run of its own: a :class:`~mattekit.nets.sam2.predictor.SAM2VideoTracker` prompted on
the keyframe with its hint (:func:`mattekit.subject.prompting.prompts_of`: the box, the hint mask's box, the clicks) and
fed the plate frames after it, in order, up to the frame before the next keyframe, where the next run re-prompts.
The frames before the first keyframe are a run fed backward from it: the tracker counts its own steps, so a
reversed run is upstream's ``reverse=True`` for one conditioning frame (its memory reaches the frames just fed,
which lie after the frame in the shot). The tracker is told the plate's frame count, whatever frames a run
needs, so its pointer encoding is the same in every split. The runs of a job, and the jobs of a shot's objects,
share the frames' image features (:class:`~mattekit.nets.sam2.predictor.FrameFeatures`, :func:`shared_features`):
each frame is encoded once while the memory budget holds them.

A frame's answer so depends only on the frames from its keyframe to it: a chunk, a ``frames`` split or a resumed
run feeds each run from its keyframe up to the last frame it needs (frames it does not need are fed, not
kept), and its mattes are one run's. The first keyframe is prompted twice when frames before it are needed (once
per direction). The logits (the plate's size) become a probability whose 0.5 level is upstream's mask
(:func:`mattekit.subject.prompting.probability`); with ``refine`` the matting band softens the edge without moving it
(:func:`mattekit.finish.edge.alpha_from_mask`); on a keyframe nothing outside what its hint allows is kept
(:func:`mattekit.subject.prompting.keep_allowed`). The temporal filter then runs as for every roto model.
"""

from __future__ import annotations

import numpy as np

from .. import runtime
from ..finish.edge import alpha_from_mask
from ..subject import prompting
from . import ordered, tracking
from .chain import release


FEATURES_SHARE = 0.25  # of the usable memory, at most FEATURES_MAX, for one shot's shared frame features
FEATURES_MAX = 2 << 30  # bytes: about 100 frames (Hiera's features at 1024: 20 MB a frame, whatever its size)


def shared_features():
    """A :class:`~mattekit.nets.sam2.predictor.FrameFeatures` for one roto job and its objects' jobs, within
    :data:`FEATURES_SHARE` of the memory this process can still use and at most :data:`FEATURES_MAX`."""
    from ..machine import usable_ram
    from ..nets.sam2.predictor import FrameFeatures

    return FrameFeatures(min(FEATURES_MAX, int(usable_ram() * FEATURES_SHARE)))


def runs(keyframes: tracking.Keyframes, have: list[int], needed: list[int]) -> list[list[int]]:
    """The tracker runs that give the ``needed`` frames: each a list of plate frames (``have``) starting at
    its keyframe, in the order fed; the backward run (frames before the first keyframe) first."""
    have = sorted(have)
    position = {frame: i for i, frame in enumerate(have)}
    keys = keyframes.frames
    for frame in [*keys, *needed]:
        if frame not in position:
            keyframes.chain(frame, have)  # says which one is missing
    out = []
    before = [f for f in needed if f < keys[0]]
    if before:
        out.append(have[position[min(before)] : position[keys[0]] + 1][::-1])
    for i, key in enumerate(keys):
        after = [f for f in needed if f >= key and (i + 1 == len(keys) or f < keys[i + 1])]
        if after:
            out.append(have[position[key] : position[max(after)] + 1])
    return out


class SamChain:
    """The frames a :class:`~mattekit.roto.source.MatteSource` run needs, tracked by SAM 2.1's memory, with
    :class:`~mattekit.roto.chain.HintChain`'s interface: :attr:`order` (the pipeline's items: (frame, run)),
    :meth:`read`, :meth:`step` (in order, in the pipeline's writer)."""

    def __init__(self, source, stage: ordered.OrderedSmoother):
        self.source, self.stage = source, stage
        self.keyframes = source.keyframes
        self.have = list(source.plate.frames)
        self.order = [
            (frame, n) for n, run in enumerate(runs(self.keyframes, self.have, stage.frames)) for frame in run
        ]
        self.wanted = set(stage.frames)
        self.held: dict[int, tuple] = {}  # frame -> (picture, alpha) waiting for the filter's order
        self.released = 0  # stage.frames[:released] have been handed on
        self.answered: set[int] = set()  # frames held or handed on
        self.run, self.tracker = None, None

    def read(self, item: tuple[int, int]) -> tuple:
        """The pipeline's read: a placeholder input (the tracker takes the frame itself) and the picture."""
        return np.zeros(1, np.float32), self.source.plate.read(item[0])

    def step(self, item: tuple[int, int], picture) -> list[tuple]:
        """Feed ``item``'s frame to its run's tracker (a new run: prompt it on its keyframe); returns the
        (frame, picture, alpha) now ready, in the filter's order."""
        from ..nets.sam2.predictor import SAM2VideoTracker

        frame, run = item
        pixels = picture.pixels
        rgb = prompting.rgb8(pixels)
        hint = None
        if run != self.run:
            if self.run is None:
                runtime.set_threads(self.source.threads)  # the writer thread runs the net
            height, width = pixels.shape[:2]
            hint = self.keyframes.hint(frame, height, width)
            prompts = prompting.prompts_of(hint)
            self.run = run
            self.tracker = SAM2VideoTracker(
                self.source.predictor.net, (height, width), num_frames=len(self.have), features=self.source.features
            )
            logits = self.tracker.prompt(
                rgb, box=prompts.box, point_coords=prompts.points or None, point_labels=prompts.labels or None
            )
        else:
            logits = self.tracker.track(rgb)
        if frame in self.wanted and frame not in self.answered:  # the first keyframe is fed to two runs
            self.answered.add(frame)
            self.held[frame] = (picture, alpha_from_logits(pixels, logits, hint, self.source.refine))
        ready, self.released = release(self.stage.frames, self.held, self.released)
        return ready


def alpha_from_logits(pixels, logits, hint, refine: bool):
    """A frame's alpha from the tracker's logits (H x W): the probability, matted at the edge with ``refine``,
    kept to what the keyframe's ``hint`` allows (None on a tracked frame)."""
    alpha = alpha_from_mask(pixels, prompting.probability(logits), refine, in_place=True)
    return alpha if hint is None else prompting.keep_allowed(alpha, hint)
