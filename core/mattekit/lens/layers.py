"""The lens blur's layers: the picture split by circle of confusion, each layer scattered with an
aperture kernel, gathered front to back and composed from coarse to fine.

Layer ``j`` (signed: > 0 in front of the focal plane) has blur radius :func:`layer_radius`: one
pixel apart up to ``LINEAR_STEPS`` px, then ``PER_OCTAVE`` per doubling. Level 0 holds the
full-resolution layers; level l the radii in (6 * 2**(l-1), 6 * 2**l], rendered at
1 / 2**:func:`level_octave` of full resolution. Colours are linear RGB, float32 H x W x 3;
weights and alphas H x W; stacks are premultiplied colour + alpha, h x w x 4.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

LINEAR_STEPS = 6  # layer radii 0..6 px one pixel apart, at full resolution
PER_OCTAVE = 3  # beyond, three layers per doubling of the radius, each at a coarser level


def layer_radius(j: int) -> float:
    """Blur radius (px, full resolution) of layer ``j`` (sign: front/back of the focal plane)."""
    a = abs(j)
    return float(a) if a <= LINEAR_STEPS else LINEAR_STEPS * 2.0 ** ((a - LINEAR_STEPS) / PER_OCTAVE)


def layer_position(coc: np.ndarray) -> np.ndarray:
    """Signed circle of confusion (px) -> continuous signed layer index (inverse of layer_radius)."""
    r = np.abs(coc).astype(np.float32)
    far = LINEAR_STEPS + PER_OCTAVE * np.log2(np.maximum(r, LINEAR_STEPS) / LINEAR_STEPS)
    return np.copysign(np.where(r <= LINEAR_STEPS, r, far), coc).astype(np.float32)


def level_limit(level: int) -> int:
    """Largest |layer index| of ``level``: level 0 holds radii up to 6 px, level l radii in
    (6 * 2**(l-1), 6 * 2**l]."""
    return LINEAR_STEPS + PER_OCTAVE * level


def level_octave(level: int) -> int:
    """Level ``level`` is rendered at 1 / 2**octave of full resolution: level 0 at full, level 1
    (radii 6-12 px) at half, then one octave less than the radii, so kernels are 6-12 px wide."""
    return 0 if level == 0 else max(1, level - 1)


def aperture_kernel(radius: float, blades: int = 0, rotation: float = 0.0) -> np.ndarray:
    """Normalised scatter kernel of an aperture: a disc of ``radius`` px, or a regular polygon
    with ``blades`` sides and the disc's area, turned by ``rotation`` degrees. Edges are
    area-sampled (8 x 8 per pixel). Returns float32 (2n+1) x (2n+1), summing to 1."""
    if radius < 0.5:
        return np.ones((1, 1), np.float32)
    circum = radius
    if blades >= 3:
        circum = radius * math.sqrt(2 * math.pi / (blades * math.sin(2 * math.pi / blades)))
    n = int(math.ceil(circum + 0.5))
    sub = (np.arange(8) + 0.5) / 8 - 0.5
    axis = (np.arange(-n, n + 1)[:, None] + sub[None, :]).ravel()
    y, x = np.meshgrid(axis, axis, indexing="ij")
    if blades >= 3:
        apothem = circum * math.cos(math.pi / blades)
        normals = math.radians(rotation) + (2 * np.arange(blades) + 1) * math.pi / blades
        proj = x[..., None] * np.cos(normals) + y[..., None] * np.sin(normals)
        inside = proj.max(axis=-1) <= apothem
    else:
        inside = x * x + y * y <= radius * radius
    k = inside.reshape(2 * n + 1, 8, 2 * n + 1, 8).mean(axis=(1, 3)).astype(np.float32)
    return k / k.sum()


def _blur(stack: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Scatter every pixel of ``stack`` (h x w x C) over ``kernel`` (a convolution)."""
    if kernel.size == 1:
        return stack
    return cv2.filter2D(stack, -1, np.ascontiguousarray(kernel[::-1, ::-1]), borderType=cv2.BORDER_REFLECT)


def _down2(x: np.ndarray) -> np.ndarray:
    """2 x 2 box average (odd sizes padded by repeating the edge)."""
    h, w = x.shape[:2]
    if h % 2 or w % 2:
        x = cv2.copyMakeBorder(x, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
    out = cv2.resize(x, (x.shape[1] // 2, x.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return out.reshape(out.shape[:2] + x.shape[2:])


def _up(x: np.ndarray, shape: tuple[int, int], factor: int) -> np.ndarray:
    """Bilinear upsampling by ``factor`` that keeps block centres aligned, cropped to ``shape``."""
    if factor == 1:
        return x
    h, w = x.shape[:2]
    out = cv2.resize(x, (w * factor, h * factor), interpolation=cv2.INTER_LINEAR)
    return out.reshape(out.shape[:2] + x.shape[2:])[: shape[0], : shape[1]]


def _tent(t: np.ndarray, j: int) -> np.ndarray:
    return np.maximum(np.float32(1.0) - np.abs(t - np.float32(j)), np.float32(0.0))


class Gather:
    """Front-to-back gathering of blurred layers (premultiplied colour + alpha) on one grid.

    A layer is hidden by the summed alpha of the layers two or more steps in front of it;
    the layer just in front adds up with it instead, so pixels split between neighbouring
    layers leave no seam.
    """

    def __init__(self, shape: tuple[int, int]):
        self.shape = shape
        self.colour = self.alpha = self.cover = None  # allocated on first use
        self.cover_used = False
        self.layers = 0
        self.last = []  # (slices, alpha) pieces of the previous layer, added to ``cover`` one step late

    def add(self, pieces) -> None:
        """Add one layer given as [(slices, h x w x 4 premultiplied stack), ...] (disjoint sources,
        possibly overlapping footprints: their light adds up)."""
        if self.colour is None:
            self.colour = np.zeros(self.shape + (3,), np.float32)
            self.alpha = np.zeros(self.shape, np.float32)
        covered = self.cover_used
        for box, stack in pieces:
            if covered:
                seen = np.clip(1.0 - self.cover[box], 0.0, 1.0)
                self.colour[box] += stack[..., :3] * seen[..., None]
                self.alpha[box] += stack[..., 3] * seen
            else:
                self.colour[box] += stack[..., :3]
                self.alpha[box] += stack[..., 3]
        if self.last and self.cover is None:
            self.cover = np.zeros(self.shape, np.float32)
        for box, alpha in self.last:
            self.cover[box] += alpha
        self.cover_used = self.cover_used or bool(self.last)
        self.last = [(box, stack[..., 3]) for box, stack in pieces]
        self.layers += 1

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """Premultiplied colour and alpha (None, None if no layer came); where alphas added up
        past 1 they are scaled back."""
        if self.colour is not None and self.alpha.max() > 1.0:
            over = np.maximum(self.alpha, 1.0)
            self.colour /= over[..., None]
            self.alpha /= over
        return self.colour, self.alpha


class Scene:
    """The picture split into layers: full-resolution weights and the coarse rest per side."""

    def __init__(self, lin, t, subject, subject_t, blades, rotation):
        self.lin, self.t, self.m, self.ts = lin, t, subject, subject_t
        self.blades, self.rotation = blades, rotation
        self.shape = t.shape
        self.extent = float(t.min()), float(t.max())
        # Which full-resolution layers each 16 x 16 block touches: bit (floor(t) + 8) of a mask.
        b = 16
        h, w = t.shape
        lo = np.clip(np.floor(t), -8, 7).astype(np.int16) + 8
        bits = np.left_shift(np.uint16(1), lo.astype(np.uint16))
        bits = cv2.copyMakeBorder(bits, 0, -h % b, 0, -w % b, cv2.BORDER_REPLICATE)
        self.block = b
        self.bits = np.bitwise_or.reduce(bits.reshape(bits.shape[0] // b, b, bits.shape[1] // b, b), axis=(1, 3))
        if subject is not None:
            padm = cv2.copyMakeBorder(subject, 0, -h % b, 0, -w % b, cv2.BORDER_REPLICATE)
            self.mmax = padm.reshape(self.bits.shape[0], b, self.bits.shape[1], b).max(axis=(1, 3))

    def kernel(self, j: int, octave: int) -> np.ndarray:
        return aperture_kernel(layer_radius(j) / 2**octave, self.blades, self.rotation)

    def full_layer(self, j: int) -> list:
        """Layer ``j`` at full resolution, blurred, as pieces [(slices, h x w x 4 premultiplied)]:
        one per run of 16 x 16 blocks holding the layer within each strip of 128 rows, so a
        layer that is only a thin outline costs little."""
        near = (self.bits & np.uint16((1 << (j + 8)) | (1 << (j + 7)))) != 0  # floor(t) is j or j - 1
        if self.m is not None and abs(self.ts - j) < 1:
            near |= self.mmax > 0
        if not near.any():
            return []
        kernel = self.kernel(j, 0)
        r = kernel.shape[0] // 2
        b, (h, w), rows = self.block, self.shape, 8
        subject_weight = float(_tent(np.float32(self.ts), j)) if self.m is not None else 0.0
        pieces = []
        for top in range(0, near.shape[0], rows):
            cols = near[top : top + rows].any(axis=0)
            if not cols.any():
                continue
            edges = np.flatnonzero(np.diff(np.concatenate([[0], cols.astype(np.int8), [0]])))
            for c0, c1 in zip(edges[::2], edges[1::2]):
                y0, y1, x0, x1 = top * b, min(h, (top + rows) * b), c0 * b, min(w, c1 * b)
                core = (slice(y0, y1), slice(x0, x1))
                weight = _tent(self.t[core], j)
                if self.m is not None:
                    m = self.m[core]
                    weight = weight * (1.0 - m) + m * subject_weight
                if not weight.any():
                    continue
                oy0, oy1, ox0, ox1 = max(0, y0 - r), min(h, y1 + r), max(0, x0 - r), min(w, x1 + r)
                stack = np.zeros((oy1 - oy0, ox1 - ox0, 4), np.float32)
                inner = stack[y0 - oy0 : y1 - oy0, x0 - ox0 : x1 - ox0]
                np.multiply(self.lin[core], weight[..., None], out=inner[..., :3])
                inner[..., 3] = weight
                pieces.append(((slice(oy0, oy1), slice(ox0, ox1)), _blur(stack, kernel)))
        return pieces

    def rest(self, side: int):
        """What lies beyond the full-resolution layers on ``side`` (+1 front, -1 back), at half
        resolution: premultiplied colour, weight and weight x layer index (5 channels)."""
        limit = level_limit(0)
        reach = max(side * e for e in self.extent + ((self.ts,) if self.m is not None else ()))
        if reach <= limit:
            return None

        def beyond(t):
            return np.clip(side * t - limit, 0.0, 1.0)

        ws = float(beyond(np.float32(self.ts))) if self.m is not None else 0.0
        halves = []
        for y0 in range(0, self.shape[0], 256):  # in strips, to keep memory low
            rows = slice(y0, y0 + 256)
            t = self.t[rows]
            w = beyond(t)
            wt = w * t
            if self.m is not None:
                m = self.m[rows]
                w = w * (1.0 - m) + m * ws
                wt = wt * (1.0 - m) + m * (ws * self.ts)
            rest = np.empty(t.shape + (5,), np.float32)
            np.multiply(self.lin[rows], w[..., None], out=rest[..., :3])
            rest[..., 3], rest[..., 4] = w, wt
            halves.append(_down2(rest))
        rest = np.concatenate(halves, axis=0)
        return rest if rest[..., 3].max() > 0 else None


def render_coarse(rest: np.ndarray, side: int, scene: Scene):
    """Levels 1, 2, ... of one side from its half-resolution rest. Returns a list of
    (octave, premultiplied colour, alpha), coarsest last."""
    out = []
    level = 1
    while rest is not None:
        w = rest[..., 3]
        t = np.where(w > 1e-6, rest[..., 4] / np.maximum(w, 1e-6), 0.0).astype(np.float32)
        lo, hi = level_limit(level - 1) + 1, level_limit(level)
        present = t[w > 1e-6]
        js = [side * a for a in range(lo, hi + 1)]
        js = [j for j in js if (np.abs(present - np.float32(j)) < 1).any()]
        if js:
            gather = Gather(w.shape)
            for j in sorted(js, reverse=True):  # front to back: larger j is nearer on both sides
                weight = _tent(t, j)
                stack = np.concatenate([rest[..., :3] * weight[..., None], (w * weight)[..., None]], axis=-1)
                gather.add([((slice(None), slice(None)), _blur(stack, scene.kernel(j, level_octave(level))))])
            out.append((level_octave(level), *gather.result()))
        f = np.clip(side * t - hi, 0.0, 1.0)
        if not (w * f > 1e-6).any():
            break
        rest = rest * f[..., None]
        level += 1
        if level_octave(level) > level_octave(level - 1):
            rest = _down2(rest)
    return out


def compose(levels, full_colour, full_alpha, shape, back: bool):
    """Put one side's levels together at full resolution, coarsest first.

    Back side (``back``): finer levels are nearer and hide coarser ones, and after each step
    the result is renormalised (colour where anything was seen, and a 0/1 'seen' weight), so a
    sharp subject edge mixes with the full background colour. Front side: coarser levels are
    nearer and lie over finer ones; colour stays premultiplied. Returns (colour, alpha).
    """
    acc = None
    for octave, colour, alpha in list(reversed(levels)) + [(0, full_colour, full_alpha)]:
        if acc is not None:
            grid = shape if colour is None else colour.shape[:2]
            up_c, up_a = (_up(x, grid, 2 ** (acc[2] - octave)) for x in acc[:2])
            if colour is None:
                colour, alpha = up_c, up_a
            elif back:  # in place: the level's arrays are ours
                keep = 1.0 - alpha
                up_c *= keep[..., None]
                colour += up_c
                alpha += up_a * keep
                del up_c, keep
            else:
                keep = 1.0 - up_a
                colour = up_c + colour * keep[..., None]
                alpha = up_a + alpha * keep
        elif colour is None:
            continue
        if back:
            colour /= np.maximum(alpha, np.float32(1e-6))[..., None]  # colour is 0 where alpha is
            alpha = (alpha > 1e-6).astype(np.float32)
        acc = (colour, alpha, octave)
    if acc is None:
        return np.zeros(shape + (3,), np.float32), np.zeros(shape, np.float32)
    return acc[0], acc[1]


def fill_holes(colour: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Push-pull fill: colour (H x W x 3) where ``weight`` (H x W, [0,1]) is 0 is extrapolated
    smoothly from the surroundings; where weight is 1 the colour is kept."""
    if weight.min() >= 1.0 or weight.max() <= 0.0:
        return colour
    stack = [(colour * weight[..., None], weight)]
    while min(stack[-1][1].shape) > 2 and stack[-1][1].min() <= 0.0:
        c, w = stack[-1]
        stack.append((_down2(c), _down2(w)))
    c, w = stack[-1]
    mean = c.reshape(-1, 3).sum(0) / max(float(w.sum()), 1e-6)
    filled = np.where(w[..., None] > 0, c / np.maximum(w, 1e-6)[..., None], mean).astype(np.float32)
    for c, w in reversed(stack[:-1]):
        filled = _up(filled, c.shape[:2], 2)
        filled *= np.clip(1.0 - w, 0.0, 1.0)[..., None]
        filled += c
    return filled.astype(np.float32, copy=False)
