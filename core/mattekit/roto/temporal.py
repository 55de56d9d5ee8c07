"""Temporal consistency for matte sequences: motion-compensated filtering over a window of frames.

A per-frame network sees every frame afresh, so its matte trembles from frame to frame even
where nothing moves. Here the mattes of up to ``radius`` neighbours on each side are warped
onto each frame along dense optical flow (OpenCV's DIS between adjacent frames, chained for
farther ones), and combined in two passes: a per-pixel median (a blob the network sees in only
a few frames is dropped) and then a weighted mean. Each warped neighbour counts, pixel by pixel,
by how well its warped *plate* matches this frame's plate: where the flow is right (static or
tracked parts) neighbours count fully; where it fails (occlusions, fast motion) they fade out
and the frame's own matte stays. Nothing is averaged across motion, so mattes do not lag.
A frame may carry its subject's shadow matte too (:attr:`FrameState.shadow`): it is filtered beside the matte, along
the same flows with the same weights (:meth:`Smoother.matte`'s ``plane``).

Each pass works only on the 16-px blocks where the frame's matte is not all 0 or all 1, or where a
neighbour's matte is not that value somewhere its warp reads for the block (:mod:`mattekit.roto.flow_blocks`),
laid side by side; elsewhere every warped neighbour equals the frame's own value, so the result is that value,
the same bytes as the pass over every block. A pixel's result depends only on its own coordinates, so its cost
follows the subject's edge and its motion, not the frame.

The window is centred and bounded: a frame's result depends only on plate frames within
``radius * passes`` of it. So any split of a shot into chunks, resumed or spread over machines,
gives the same bytes as one uninterrupted run.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from .flow_blocks import active_blocks, block_pixels, counts_off, sampled_rectangles
from .motion import DIS_PRESETS, chain, flow, on_field, sample, warp


@dataclass(frozen=True)
class TemporalOptions:
    """radius: neighbours on each side (0 = off); passes: window passes, the first a robust
    median (drops a blob that shows in a few frames only), the others weighted means;
    flow_side: long side, in pixels, at which flow and plate agreement are computed; sigma:
    plate difference (sRGB 0..1) at which a warped neighbour's weight falls to 1/e; decay:
    weight factor per frame of distance; flow_preset: OpenCV DIS preset of the flow between adjacent
    frames (``ultrafast``, ``fast`` or ``medium``); flow_refinement: that flow's variational refinement iterations
    per scale (None: the preset's); refine_above: what the window does instead of the per-frame
    refinement: a frame at most this many times the network's input on a side gets its sure values rounded, not
    the edge-aware refinement (:func:`mattekit.finish.refine.refine_mask`; 1: refined wherever the network saw the
    frame coarser than its pixels)."""

    radius: int = 4
    passes: int = 2
    flow_side: int = 512
    sigma: float = 0.1
    decay: float = 0.85
    flow_preset: str = "medium"
    flow_refinement: int | None = None
    refine_above: float = 1.0

    def __post_init__(self):
        if self.flow_preset not in DIS_PRESETS:
            raise ValueError(f"flow_preset {self.flow_preset!r} is none of {', '.join(DIS_PRESETS)}")

    @property
    def halo(self) -> int:
        """How many plate frames on each side a frame's result depends on."""
        return self.radius * self.passes

    def describe(self) -> dict:
        return {
            "method": "flow-window",
            "radius": self.radius,
            "passes": self.passes,
            "flow_side": self.flow_side,
            "sigma": self.sigma,
            "decay": self.decay,
            "flow_preset": self.flow_preset,
            "flow_refinement": self.flow_refinement,
            "refine_above": self.refine_above,
        }


def for_model(entry) -> TemporalOptions:
    """The filter's settings for mattes of a catalog entry: the entry's ``temporal`` table (tuned for its
    kind of output, e.g. soft people alpha) over the defaults (tuned on object masks)."""
    return TemporalOptions(**entry.temporal)


@dataclass
class FrameState:
    """What the filter keeps of one frame: its matte (H x W), a small plate for flow, and the subject's shadow matte
    when one is filtered beside it (:mod:`mattekit.matting.shadow`)."""

    alpha: np.ndarray  # float32 H x W in [0,1]
    small: np.ndarray  # float32 h x w x 3 sRGB, the plate at flow resolution
    grey: np.ndarray  # uint8 h x w
    shadow: np.ndarray | None = None  # float32 H x W in [0,1] (0: no shadow, 1: black), or None


def prepare(
    image: np.ndarray, alpha: np.ndarray, options: TemporalOptions, shadow: np.ndarray | None = None
) -> FrameState:
    """Keep a frame for the filter: ``image`` sRGB H x W x 3|4 [0,1], ``alpha`` H x W [0,1], ``shadow`` (H x W
    [0,1]) the frame's shadow matte to filter as the matte is, or None."""
    height, width = alpha.shape
    scale = min(1.0, options.flow_side / max(height, width))
    size = (max(8, round(width * scale)), max(8, round(height * scale)))
    small = cv2.resize(np.ascontiguousarray(image[..., :3], np.float32), size, interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(np.clip(small * 255.0 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    return FrameState(
        np.asarray(alpha, np.float32), small, grey, None if shadow is None else np.asarray(shadow, np.float32)
    )


def _total(values: list[np.ndarray]) -> np.ndarray:
    """Element-wise sum in list order, as ``np.sum(values, axis=0)`` adds them, without stacking them first."""
    total = values[0].copy()
    for value in values[1:]:
        total += value
    return total


def median(values: list, minimum=np.minimum, maximum=np.maximum):
    """Per-pixel median of equally shaped arrays, equal to ``np.median(np.stack(values), axis=0)`` (the
    mean of the middle two for an even count): a selection network of element-wise min/max, several
    times faster than sorting along a strided axis. Torch tensors too, given ``torch.minimum`` and ``torch.maximum``."""
    v = list(values)
    n = len(v)
    for done in range(n // 2 + 1):  # each sweep carries the largest value left to position n - 1 - done
        for j in range(n - 1 - done):
            low = minimum(v[j], v[j + 1])
            v[j + 1] = maximum(v[j], v[j + 1])
            v[j] = low
    if n % 2:
        return v[n // 2]
    return (v[n // 2 - 1] + v[n // 2]) / 2  # exactly the product by 0.5, in the values' own type


class Smoother:
    """Temporally consistent mattes of a sequence, computed frame by frame in increasing order.

    ``load(frame)`` returns a :class:`FrameState` (read the plate, run the network);
    ``frames`` are the plate's frames (neighbours across a gap are not used). ``smooth(t)``
    loads what it needs, caches it, and forgets what later frames no longer need. What depends on the plates only
    (the flows, their chaining, the plate agreements, the rectangles warps read) may be made ahead in other threads
    (:meth:`ahead`): each is made once, by whichever thread asks first, the others waiting for it.
    """

    def __init__(self, options: TemporalOptions, load: Callable[[int], FrameState], frames):
        self.options = options
        self.load = load
        self.have = set(frames)
        self._lock = threading.Lock()  # guards the tables of futures below (made once, by any thread)
        self.states: dict[int, Future] = {}  # frame -> its FrameState
        self.fields: dict[tuple[int, int], Future] = {}  # (a, b) -> flow a -> b
        self.pairs: dict[tuple[int, int], Future] = {}  # (a, b) -> (flow a -> b, agreement)
        self.rectangles: dict[tuple[int, int], Future] = {}  # (a, b) -> sampled_rectangles of flow a -> b
        self.averaged: dict[tuple[int, int, str], np.ndarray] = {}  # (pass, frame, plane) -> matte (the smoothing
        # thread's); plane: "alpha" (the matte) or "shadow" (the shadow matte)
        self.tables: dict[tuple[int, int, str], np.ndarray] = {}  # (pass, frame, plane) -> counts_off of its matte
        self.oldest = None  # frames before this one have been forgotten (None: none yet)

    def _once(self, table: dict, key, make: Callable):
        """``table[key]``'s value, made by ``make()`` in this thread if no thread has begun it, else waited for."""
        with self._lock:
            slot = table.get(key)
            mine = slot is None
            if mine:
                slot = table[key] = Future()
        if mine:
            try:
                slot.set_result(make())
            except BaseException as exc:
                slot.set_exception(exc)
        return slot.result()

    def state(self, frame: int) -> FrameState:
        return self._once(self.states, frame, lambda: self.load(frame))

    def ahead(self, a: int, b: int) -> None:
        """Make what the filter's passes will ask of the pair of frames ``a`` and ``b`` (neighbours) that depends
        on the plates only: the flow a -> b, the agreement and the rectangles its warp reads. The states of the
        frames from ``a`` to ``b`` must be loadable, or the filter past them (then nothing is made)."""
        if not self.forgotten(a, b):
            height, width = self.state(a).alpha.shape
            self.reads(a, b, height, width)

    def forgotten(self, a: int, b: int) -> bool:
        """The filter is past the pair a -> b: :meth:`_forget` has dropped it, or the states it is made from."""
        return self.oldest is not None and (a < self.oldest + self.options.radius or min(a, b) < self.oldest)

    def neighbours(self, frame: int) -> list[int]:
        """Frames within the radius on each side, up to the first gap."""
        out = []
        for step in (-1, 1):
            for d in range(1, self.options.radius + 1):
                if frame + step * d not in self.have:
                    break
                out.append(frame + step * d)
        return out

    def field(self, a: int, b: int) -> np.ndarray:
        """Flow a -> b (low-res): DIS between adjacent frames, chained through the frames between."""
        return self._once(self.fields, (a, b), lambda: self._field(a, b))

    def _field(self, a: int, b: int) -> np.ndarray:
        if abs(b - a) == 1:
            return flow(self.state(a).grey, self.state(b).grey, self.options.flow_preset, self.options.flow_refinement)
        step = 1 if b > a else -1
        return chain(self.field(a, b - step), self.field(b - step, b))

    def pair(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(flow a -> b, agreement in [0,1] of b's warped plate with a's plate), both low-res."""
        return self._once(self.pairs, (a, b), lambda: self._pair(a, b))

    def _pair(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        forward = self.field(a, b)
        centre, other = self.state(a), self.state(b)
        diff = cv2.absdiff(warp(other.small, forward), centre.small)  # numpy's |a - b|, without its temporary
        diff = (diff[..., 0] + diff[..., 1] + diff[..., 2]) / 3  # the channels' mean (13x faster than .mean(2))
        diff = cv2.GaussianBlur(diff, (0, 0), 1.0)
        diff /= self.options.sigma
        np.square(diff, out=diff)
        np.negative(diff, out=diff)
        return forward, np.exp(diff, out=diff)

    def counts(self, level: int, frame: int, plane: str = "alpha") -> np.ndarray:
        """:func:`counts_off` of the ``plane`` after ``level`` passes."""
        if (level, frame, plane) not in self.tables:
            self.tables[level, frame, plane] = counts_off(self.matte(level, frame, plane))
        return self.tables[level, frame, plane]

    def reads(self, a: int, b: int, height: int, width: int) -> tuple[np.ndarray, ...]:
        """:func:`sampled_rectangles` of the warp of b's matte onto a (flow a -> b)."""
        return self._once(self.rectangles, (a, b), lambda: sampled_rectangles(self.pair(a, b)[0], height, width))

    def matte(self, level: int, frame: int, plane: str = "alpha") -> np.ndarray:
        """The matte after ``level`` passes (0 = the network's); ``plane`` "shadow": the frame's shadow matte after
        as many passes, along the same flows with the same weights.

        Pass 1: the median of the frame's matte and its warped neighbours' (a neighbour whose
        plate disagrees, agreement < 0.5, counts as the frame's own value). Later passes:
        (own + sum w * warped) / (1 + sum w), w = agreement * decay^distance. Computed on the blocks
        :func:`active_blocks` finds; elsewhere the result is the frame's own matte.
        """
        if level == 0:
            return getattr(self.state(frame), plane)
        if (level, frame, plane) not in self.averaged:
            own = self.matte(level - 1, frame, plane)
            height, width = own.shape
            others = [(other, self.pair(frame, other)) for other in self.neighbours(frame)]
            blocks = active_blocks(
                self.counts(level - 1, frame, plane),
                [
                    (self.counts(level - 1, other, plane), self.reads(frame, other, height, width))
                    for other, _ in others
                ],
            )
            result = own.copy()
            if blocks.any():
                pixels = block_pixels(blocks, height, width)
                places = pixels[..., 1].astype(np.intp), pixels[..., 0].astype(np.intp)
                result[places] = self._combined(level, frame, own[places], others, pixels, (height, width), plane)
            self.averaged[level, frame, plane] = result
        return self.averaged[level, frame, plane]

    def _combined(
        self,
        level: int,
        frame: int,
        own: np.ndarray,
        others: list,
        pixels: np.ndarray,
        size: tuple[int, int],
        plane: str,
    ) -> np.ndarray:
        """Pass ``level`` of :meth:`matte` at ``pixels`` ((x, y), P x Q x 2 float32, of the H x W ``size`` frame;
        ``own``: the frame's matte after the pass before there, P x Q; ``others``: (neighbour, its :meth:`pair`)):
        float32 P x Q in [0,1]."""
        values, weights = [own], [np.ones_like(own)]
        grid = None  # the pixels on the fields' grid: every field of a shot has the flow's size
        for other, (field, agreement) in others:
            if grid is None:
                grid = on_field(pixels, *size, *field.shape[:2])
            w = cv2.remap(agreement, grid, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            warped = sample(self.matte(level - 1, other, plane), field, pixels, grid)
            if level == 1:
                values.append(np.where(w > 0.5, warped, own))
            else:
                decay = np.float32(self.options.decay ** abs(other - frame))
                values.append(warped * w * decay)
                weights.append(w * decay)
        result = median(values) if level == 1 else _total(values) / _total(weights)
        return np.clip(result, 0.0, 1.0).astype(np.float32)

    def window(self, frame: int) -> tuple[int, int]:
        """(first, last) plate frame that ``frame``'s result depends on: up to ``halo`` on each side, up to a gap."""
        low = high = frame
        while low - 1 in self.have and low - 1 >= frame - self.options.halo:
            low -= 1
        while high + 1 in self.have and high + 1 <= frame + self.options.halo:
            high += 1
        return low, high

    def smooth(self, frame: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The temporally consistent matte of ``frame`` (float32 H x W in [0,1]) and its shadow matte filtered the
        same way (None where the frames carry none)."""
        low, high = self.window(frame)
        for f in range(low, high + 1):  # load in increasing order: movies decode forwards
            self.state(f)
        out = self.matte(self.options.passes, frame)
        cast = None if self.state(frame).shadow is None else self.matte(self.options.passes, frame, "shadow")
        self._forget(frame)
        return out, cast

    def _forget(self, frame: int) -> None:
        """Drop what no frame after ``frame`` needs."""
        halo = self.options.halo
        self.oldest = frame - halo
        with self._lock:  # other threads may be adding what later frames need meanwhile
            for f in [f for f in self.states if f < frame - halo]:
                del self.states[f]
            for key in [k for k in self.fields if min(k) < frame - halo]:
                del self.fields[key]
            for key in [k for k in self.pairs if k[0] < frame - halo + self.options.radius]:
                del self.pairs[key]
            for key in [k for k in self.rectangles if k not in self.pairs]:
                del self.rectangles[key]
        for table in (self.averaged, self.tables):
            for key in [k for k in table if k[1] < frame - self.options.radius * (self.options.passes - k[0] + 1)]:
                del table[key]
