"""The lens blur of one photo (:func:`render`) and the choices behind it: the blur radius for a
strength, the focal plane at a clicked point, the subject's depth.

The renderer works in linear light: the picture is split into layers of equal circle of
confusion (:mod:`.layers`); layers behind the focal plane are gathered front to back, those in
front are laid over the (hole-filled) background. Bright highlights are boosted before the blur
and the boost is undone after it, so small lights become bright bokeh balls while untouched
pixels keep their values.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..ops.pixels import linear_to_srgb, srgb_to_linear
from ..errors import MattekitError
from .layers import LINEAR_STEPS, Gather, Scene, compose, fill_holes, layer_position, render_coarse

BASE_RADIUS = 0.02  # blur radius at strength 1 for a full-range disparity difference, x the long side


# ------------------------------------------------------------------------------ highlights


def max_channel(x: np.ndarray) -> np.ndarray:
    """The brightest of the three colour channels, H x W."""
    return np.maximum(np.maximum(x[..., 0], x[..., 1]), x[..., 2])


def _boost_curve(v: np.ndarray, gain: float, threshold: float) -> np.ndarray:
    h = np.clip((v - threshold) / (1.0 - threshold), 0.0, 1.0)
    return v * (1.0 + gain * h * h)


def _boost(lin: np.ndarray, gain: float, threshold: float) -> np.ndarray:
    """Scale each pixel so that its brightest channel v becomes v (1 + gain h^2), h the
    position of v between ``threshold`` and 1 (in place)."""
    flat = lin.reshape(-1, 3)
    v = max_channel(flat)
    idx = np.flatnonzero(v > threshold)
    vb = v[idx].astype(np.float64)
    flat[idx] *= (_boost_curve(vb, gain, threshold) / vb)[:, None].astype(np.float32)
    return lin


def _unboost(lin: np.ndarray, gain: float, threshold: float) -> np.ndarray:
    """Exact inverse of _boost for unmixed pixels (by table)."""
    v = max_channel(lin)
    idx = np.flatnonzero(v > threshold)
    if idx.size == 0:
        return lin
    grid = np.linspace(threshold, 1.0, 4097, dtype=np.float64)
    vb = v.ravel()[idx]
    orig = np.interp(vb, _boost_curve(grid, gain, threshold), grid)
    flat = lin.reshape(-1, 3)
    flat[idx] *= (orig / vb)[:, None].astype(np.float32)
    return lin


# ------------------------------------------------------------------------------- renderer


def circle_of_confusion(depth: np.ndarray, focus_depth: float, radius: float) -> np.ndarray:
    """Signed blur radius in px: ``radius * (depth - focus_depth)`` (> 0 in front of the focal plane)."""
    return (np.float32(radius) * (depth.astype(np.float32) - np.float32(focus_depth))).astype(np.float32)


def render(
    image: np.ndarray,
    depth: np.ndarray,
    focus_depth: float,
    radius: float,
    *,
    subject: np.ndarray | None = None,
    subject_depth: float | None = None,
    highlight_gain: float = 2.0,
    highlight_threshold: float = 0.6,
    blades: int = 0,
    rotation: float = 0.0,
) -> np.ndarray:
    """Lens blur of an sRGB image (H x W x 3|4 float32 [0,1]) from a disparity map.

    depth: H x W disparity in [0,1], 1 = nearest; focus_depth: the focal plane on that scale;
    radius: blur radius in px for a disparity difference of 1. subject: optional H x W alpha
    of a subject treated as one flat plane at ``subject_depth`` (default: the focal plane,
    i.e. kept sharp with clean edges). An alpha channel passes through unchanged.
    Returns float32 H x W x C in [0,1].
    """
    rgb = image[..., :3]
    lin = srgb_to_linear(rgb)
    if highlight_gain > 0:
        lin = _boost(lin, highlight_gain, highlight_threshold)
    t = layer_position(circle_of_confusion(depth, focus_depth, radius))
    ts = None
    if subject is not None:
        subject = np.clip(subject, 0.0, 1.0).astype(np.float32)
        sd = focus_depth if subject_depth is None else subject_depth
        ts = float(layer_position(np.float32(radius * (sd - focus_depth))))
    scene = Scene(lin, t, subject, ts, blades, rotation)
    shape = t.shape

    back, seen = _behind(scene, shape)
    out = _in_front(scene, shape, back, seen)
    del scene, lin, t, subject, back, seen

    np.maximum(out, 0.0, out=out)
    if highlight_gain > 0:
        out = _unboost(out, highlight_gain, highlight_threshold)
    result = linear_to_srgb(np.minimum(out, 1.0))
    if image.shape[-1] == 4:
        result = np.concatenate([result, image[..., 3:4]], axis=-1)
    return np.clip(result, 0.0, 1.0).astype(np.float32)


def _behind(scene: Scene, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The layers behind the focal plane and the plane itself (0, -1, -2, ... front to back, the far rest coarse)
    composed: (linear colour H x W x 3, the coverage each pixel saw)."""
    gather = Gather(shape)
    for j in range(0, -LINEAR_STEPS - 1, -1):
        pieces = scene.full_layer(j)
        if pieces:
            gather.add(pieces)
    back_c, back_a = gather.result()
    del gather
    rest = scene.rest(-1)
    coarse = render_coarse(rest, -1, scene) if rest is not None else []
    del rest
    return compose(coarse, back_c, back_a, shape, back=True)


def _in_front(scene: Scene, shape: tuple[int, int], back: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """The layers in front of the focal plane (..., 2, 1, the near rest coarse) over the background ``back``, its
    holes (where ``seen`` is 0) filled: linear colour H x W x 3."""
    gather = Gather(shape)
    for j in range(LINEAR_STEPS, 0, -1):
        pieces = scene.full_layer(j)
        if pieces:
            gather.add(pieces)
    rest = scene.rest(+1)
    coarse = render_coarse(rest, +1, scene) if rest is not None else []
    del rest
    if gather.layers or coarse:
        front_c, front_a = compose(coarse, *gather.result(), shape, back=False)
        return front_c + fill_holes(back, seen) * (1.0 - np.clip(front_a, 0.0, 1.0))[..., None]
    return fill_holes(back, seen) if seen.min() <= 0 else back


# ------------------------------------------------------------------------------ choices


def blur_radius(height: int, width: int, strength: float) -> float:
    """Blur radius in px for a full-range disparity difference at ``strength``."""
    return float(strength) * BASE_RADIUS * max(height, width)


def focus_depth_at(depth: np.ndarray, x: float, y: float) -> float:
    """The focal plane for a click at pixel (x, y): the median depth of a small window there."""
    h, w = depth.shape
    if not (0 <= x < w and 0 <= y < h):
        raise ValueError(f"focus point ({x:g}, {y:g}) lies outside the {w} x {h} image")
    r = max(1, round(0.01 * min(h, w)))
    xi, yi = int(x), int(y)
    return float(np.median(depth[max(0, yi - r) : yi + r + 1, max(0, xi - r) : xi + r + 1]))


def subject_depth(depth: np.ndarray, mask: np.ndarray) -> float:
    """The subject's plane: the median depth (H x W) where the mask (H x W) is >= 0.5, else of the whole map."""
    inside = depth[mask >= 0.5]
    return float(np.median(inside)) if inside.size else float(np.median(depth))


class Focus(NamedTuple):
    """A focus point: ``x``, ``y`` in pixels, or in percent of the size where ``x_percent`` / ``y_percent``; prints as
    its text form X,Y (50%,40%)."""

    x: float
    y: float
    x_percent: bool = False
    y_percent: bool = False

    def __str__(self) -> str:
        return f"{self.x:g}{'%' * self.x_percent},{self.y:g}{'%' * self.y_percent}"


def parse_point(focus: Focus, width: int, height: int) -> tuple[float, float]:
    """The :class:`Focus` in pixel coordinates (x, y) of a ``width`` x ``height`` image; one sentence when it lies
    outside."""
    out = []
    for value, percent, size in ((focus.x, focus.x_percent, width), (focus.y, focus.y_percent, height)):
        v = value / 100 * (size - 1) if percent else value
        if not 0 <= v <= size - 1:
            raise MattekitError(f"The focus point {focus} lies outside the {width} x {height} image.")
        out.append(v)
    return out[0], out[1]


def focus_of(given) -> Focus:
    """'X,Y' or 'X%,Y%' (or the pixels (x, y)) -> the :class:`Focus`, checked as far as no image is needed (finite,
    not negative, percent at most 100); one sentence when bad."""
    if isinstance(given, Focus):
        return given
    text = given if isinstance(given, str) else ",".join(map(str, np.ravel(given)))
    parts = [v.strip() for v in text.split(",")]
    usage = f"The focus {text!r} is not a point; write X,Y in pixels (640,400) or percent (50%,40%)."
    if len(parts) != 2:
        raise MattekitError(usage)
    out = []
    for value in parts:
        percent = value.endswith("%")
        try:
            v = float(value[:-1] if percent else value)
        except ValueError:
            raise MattekitError(usage) from None
        if not (0 <= v <= (100 if percent else 1 << 20)):
            raise MattekitError(
                f"The focus {text!r} lies outside every image: X and Y must be from 0 {'to 100%' if percent else 'up'}."
            )
        out.append((v, percent))
    (x, x_percent), (y, y_percent) = out
    return Focus(x, y, x_percent, y_percent)
