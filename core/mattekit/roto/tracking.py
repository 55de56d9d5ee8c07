"""Hints on keyframes of a shot, carried from frame to frame (roto's subject hints).

The user hints the subject (:mod:`mattekit.subject.hints`: a box, include/exclude points, a rough mask)
on one or several *keyframes*. Every other frame gets its hint from a neighbour's result: the
neighbour's mask moved onto the frame along the image motion (:func:`carry`) is the frame's hint
mask: nothing far from where the subject went is kept (:func:`mattekit.subject.hints.constrain`). Frames after a keyframe are carried forward from it up to the next keyframe; frames before
the first keyframe are carried backward from it. A keyframe's own hint replaces the carried one.

So a frame's mask depends on the chain of frames from its *anchor* keyframe to it
(:meth:`Keyframes.chain`) and on nothing else: any split of the shot (chunks, ``--frames``, a
resumed run) runs the chains of the frames it needs from their keyframes and gives the same
result. Keyframe hints: boxes and points as the options hold them (values on frames,
:mod:`mattekit.subject.keyframe_hints`, read once from the user's ``FRAME:x0,y0,x1,y1`` and ``FRAME:x,y``); hint
masks (values read once there too): a frame pattern (``masks/####.png``) whose existing files are keyframe masks
(white = subject). Points hold on their keyframe only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..subject import hints
from ..subject.keyframe_hints import HintMask, KeyframeHint
from ..errors import InputError
from ..fsutil import sha256_file
from ..io import read_image
from ..io.frame_patterns import FramePattern
from . import motion, temporal

FLOW_SIDE = 320  # long side, in pixels, of the frames the carrying flow is computed on
Hints = tuple[KeyframeHint, ...] | None  # an option's keyframe hints, as roto's options hold them


@dataclass(frozen=True)
class Keyframes:
    """The user's hints by frame, as values (:mod:`mattekit.subject.hints`): boxes {frame: Box}, include / exclude
    {frame: (Point, ...)}; masks: {frame: mask file}."""

    boxes: dict[int, hints.Box] = field(default_factory=dict)
    include: dict[int, tuple[hints.Point, ...]] = field(default_factory=dict)
    exclude: dict[int, tuple[hints.Point, ...]] = field(default_factory=dict)
    masks: dict[int, Path] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        box: Hints = None,
        point: Hints = None,
        exclude: Hints = None,
        hint_mask: tuple[HintMask, ...] | None = None,
    ) -> "Keyframes | None":
        """From one object's hints as roto's options hold them: ``box`` / ``point`` / ``exclude`` tuples of
        :class:`~mattekit.subject.keyframe_hints.KeyframeHint` and ``hint_mask``'s
        :class:`~mattekit.subject.keyframe_hints.HintMask` (their names not read); None when no hint is given.
        InputError when a frame has two boxes or a mask pattern names no existing file."""
        boxes, include, excluded = {}, {}, {}
        for hint in box or ():
            if hint.frame in boxes:
                raise InputError(f"Frame {hint.frame} has more than one box; give one box per keyframe.")
            boxes[hint.frame] = hint.value
        for given, by_frame in ((point, include), (exclude, excluded)):
            for hint in given or ():
                by_frame[hint.frame] = (*by_frame.get(hint.frame, ()), hint.value)
        masks = {}
        for mask in hint_mask or ():
            files = FramePattern.parse(mask.pattern).scan()
            if not files:
                raise InputError(
                    f"The hint mask pattern {mask.pattern} names no existing file (e.g. masks/####.png "
                    "with one file per keyframe, numbered like the plate)."
                )
            masks.update(files)
        found = cls(boxes, include, excluded, masks)
        return found if found.frames else None

    @property
    def frames(self) -> list[int]:
        """The keyframes, increasing."""
        return sorted(set(self.boxes) | set(self.include) | set(self.exclude) | set(self.masks))

    def hint(self, frame: int, height: int, width: int) -> hints.Hint:
        """The checked hint the user gave on keyframe ``frame`` for a ``height`` x ``width`` plate."""
        mask = None
        if frame in self.masks:
            picture = read_image(self.masks[frame])
            mask = picture.pixels[..., 0]
        try:
            return hints.make(
                height, width, self.boxes.get(frame), self.include.get(frame, ()), self.exclude.get(frame, ()), mask
            )
        except InputError as exc:
            raise InputError(f"Keyframe {frame}: {exc}") from None

    def anchor(self, frame: int) -> int:
        """The keyframe ``frame``'s hint comes from: the last keyframe at or before it, else the first one."""
        before = [k for k in self.frames if k <= frame]
        return before[-1] if before else self.frames[0]

    def chain(self, frame: int, have: list[int]) -> list[int]:
        """The plate frames (``have``, increasing) from ``frame``'s anchor keyframe to ``frame``, in the
        order they are carried (backward for frames before the first keyframe)."""
        key = self.anchor(frame)
        if key not in have or frame not in have:
            raise InputError(
                f"Keyframe {key} is not a frame of the plate."
                if key not in have
                else f"Frame {frame} is not a frame of the plate."
            )
        i, j = have.index(key), have.index(frame)
        return have[i : j + 1] if j >= i else have[j : i + 1][::-1]

    def describe(self) -> dict:
        """What decides the mattes (for a job's settings): the boxes and points as texts, and each mask file's
        SHA-256."""
        return {
            "boxes": {str(k): str(v) for k, v in sorted(self.boxes.items())},
            "include": {str(k): ";".join(map(str, v)) for k, v in sorted(self.include.items())},
            "exclude": {str(k): ";".join(map(str, v)) for k, v in sorted(self.exclude.items())},
            "masks": {str(k): sha256_file(v) for k, v in sorted(self.masks.items())},
            "carry": {"method": "dis-flow", "flow_side": FLOW_SIDE},
        }


def schedule(keyframes: Keyframes, have: list[int], needed: list[int]) -> tuple[list[int], dict[int, int | None]]:
    """(the frames to compute in order, {frame: the frame its hint is carried from, None on a keyframe})
    so that every ``needed`` frame's chain runs: first the chains before the first keyframe (backward
    from it), then the rest forward, each frame once."""
    have = sorted(have)
    position = {frame: i for i, frame in enumerate(have)}
    source: dict[int, int | None] = {}
    for frame in needed:
        key = keyframes.anchor(frame)
        if key not in position or frame not in position:
            keyframes.chain(frame, have)  # says which one is missing
        step = -1 if frame > key else 1  # towards the keyframe
        current = frame
        while current not in source:  # back along :meth:`Keyframes.chain` until a frame already scheduled
            if current == key:
                source[current] = None
                break
            source[current] = have[position[current] + step]  # a chain crosses no keyframe
            current = source[current]
    first = keyframes.frames[0]
    backward = sorted((f for f in source if f < first), reverse=True)
    forward = sorted(f for f in source if f >= first)
    order = [first] + backward + [f for f in forward if f != first] if backward else forward
    return order, source


def grey(image: np.ndarray) -> np.ndarray:
    """The frame as the carrying flow sees it: uint8 grey, long side :data:`FLOW_SIDE` (or less)."""
    return temporal.prepare(
        image, np.zeros(image.shape[:2], np.float32), temporal.TemporalOptions(flow_side=FLOW_SIDE)
    ).grey


CARRIED_PEAK = 0.1  # a carried mask fainter than this everywhere has lost the subject


def carry(mask: np.ndarray, grey_from: np.ndarray, grey_to: np.ndarray) -> np.ndarray:
    """``mask`` (H x W float32 [0,1]) of the frame seen as ``grey_from`` moved onto the frame seen as
    ``grey_to`` along their optical flow (DIS, at :data:`FLOW_SIDE`); H x W float32 [0,1]."""
    field = motion.flow(grey_to, grey_from)
    return np.clip(motion.warp(np.ascontiguousarray(mask, np.float32), field), 0.0, 1.0)


def carried_hint(mask: np.ndarray, grey_from: np.ndarray, grey_to: np.ndarray, fallback: hints.Hint) -> hints.Hint:
    """The hint of the next frame in a chain: the carried mask, scaled so that its peak is 1, as a
    hint mask; ``fallback`` (the previous frame's hint) when nothing of the subject is left to carry
    (a peak under :data:`CARRIED_PEAK`). The hint says where the subject is, not how sure the model
    was: an unsure (grey) mask carried as it is outlines less of the subject each frame, and the
    model, shown less of it, grows less sure again (csnet-sod with its reference resize lost the
    dog of tests/unit/roto/test_roto_hints.py within 3 frames that way)."""
    moved = carry(mask, grey_from, grey_to)
    peak = float(moved.max())
    if peak < CARRIED_PEAK:
        return fallback
    return hints.Hint(mask=moved / peak)


def box_of(mask: np.ndarray) -> hints.Box:
    """The :class:`~mattekit.subject.hints.Box` (x1, y1 exclusive) around ``mask`` > 0.5 (H x W); InputError when it
    is empty."""
    box = hints.Box.around(mask)
    if box is None:
        raise InputError("The mask is empty: there is no box around it.")
    return box
