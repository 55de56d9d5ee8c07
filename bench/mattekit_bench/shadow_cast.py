"""A second generator of composites with known shadow mattes, made unlike :mod:`mattekit_bench.shadow_scenes` (for
``mattekit bench shadow --generator cast``): the shadow is cast, not drawn.

The subject (an alphamatting-style ``im/NAME`` + ``gt/NAME.png`` pair, hair and fur included) stands as a card on a
ground plane at its lowest row; a point light at a drawn height and ground position casts it on that plane: each
ground pixel is shadowed by the subject pixel on the ray to the light (:func:`cast`), so the shadow flares and
lengthens with the light's height and often runs to the frame's edge. Its penumbra grows with the distance from
the contact (the height of the occluding point: a blur blended from sharp at the base to wide at the far end), its
strength fades a little with that distance, and a contact darkening (ambient occlusion) lies under the base.
Surfaces: a studio sweep (one colour shaded by a vertical gradient and a side falloff, sensor noise), or a real
photo crop left textured (stone, grass, fabric: whatever the photos hold, zoomed in). The surface is multiplied
by ``1 - shadow`` in sRGB before the subject goes over it. Kinds (:data:`KINDS`): ``sweep``, ``textured`` (each
with a cast shadow) and ``none`` (a sweep without a shadow).

Every draw comes from a generator seeded by the subject's name, the kind and "cast". Arrays float32 in [0,1]:
photo H x W x 3 sRGB, alpha and shadow H x W.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np

from mattekit import io
from mattekit.ops.filters import gaussian_blur
from mattekit.ops.resizing import fit_cover
from .shadow_scenes import Scene, placed

KINDS = ("sweep", "textured", "none")
CANVAS = (540, 720)  # a composite's height and width, px
PENUMBRA = (0.5, 2.0, 5.0, 10.0, 20.0, 36.0)  # the blurs (px) the penumbra is blended from


def scene(image: Path, gt: Path, kind: str, surface_photos: list[Path], draw: int = 0) -> Scene:
    """The composite of kind ``kind`` for the subject ``image`` (true alpha ``gt``), the surface (textured kind)
    drawn from ``surface_photos``; ``draw`` > 0: another draw of the same subject and kind."""
    name = f"{image.stem}/{kind}" + (f"/{draw}" if draw else "")
    rng = np.random.default_rng(zlib.crc32(f"cast/{name}".encode()))
    gt_pixels = io.read_image(str(gt)).pixels
    subject, alpha = placed(io.read_image(str(image)).pixels[..., :3], gt_pixels, rng, CANVAS, (0.55, 0.8))
    surface = _photo_floor(surface_photos, rng) if kind == "textured" else _sweep(rng)
    shadow = np.zeros_like(alpha) if kind == "none" else cast(alpha, rng)
    behind = surface * (1.0 - shadow[..., None])
    photo = subject * alpha[..., None] + behind * (1.0 - alpha[..., None])
    return Scene(name, kind, np.clip(photo, 0, 1).astype(np.float32), alpha, shadow)


def cast(alpha: np.ndarray, rng) -> np.ndarray:
    """The shadow (H x W in [0,1]) of the subject of ``alpha`` standing at its lowest row, cast on the ground by a
    point light drawn behind it (65 %) or in front of it, to a side, at a height of 1.2-4 times the subject's: the occluder
    of a ground pixel is found on its ray to the light (an inverse map, :func:`_occluder`); its penumbra blurred
    from 0.5 px at the contact to 4-12 % of the subject's height at its top; strength 0.35-0.75, fading by up to
    a third with the distance; a contact darkening of 0.2-0.5 along the base."""
    rows = np.nonzero((alpha > 0.5).any(axis=1))[0]
    if rows.size == 0:
        return np.zeros_like(alpha)
    base, tall = float(rows[-1]), float(rows[-1] - rows[0] + 1)
    cols = np.nonzero(alpha[int(base)] > 0.5)[0]
    middle = float(cols.mean())
    behind = rng.random() < 0.65  # the light behind the subject: the shadow comes towards the camera (down)
    light = (middle + rng.uniform(-2.0, 2.0) * tall, base + (-1 if behind else 1) * rng.uniform(0.1, 0.4) * tall)
    coverage, height = _occluder(alpha, base, light, rng.uniform(1.2, 4.0) * tall)
    wide = rng.uniform(0.04, 0.12) * tall
    sigma = 0.5 + wide * np.clip(height / tall, 0.0, 1.0)
    shadow = _penumbra(coverage, sigma)
    shadow *= rng.uniform(0.35, 0.75) * (1.0 - rng.uniform(0.0, 0.33) * np.clip(height / tall, 0.0, 1.0))
    foot = (alpha > 0.5) & ~np.roll(alpha > 0.5, -max(2, int(0.03 * tall)), axis=0)  # the subject's lowest rim
    foot[: int(base - 0.1 * tall)] = False
    contact = np.clip(gaussian_blur(foot.astype(np.float32), rng.uniform(2.0, 6.0)) * 2.5, 0.0, 1.0)
    shadow = 1.0 - (1.0 - shadow) * (1.0 - rng.uniform(0.2, 0.5) * contact)
    return np.clip(shadow, 0.0, 1.0).astype(np.float32)


def _occluder(alpha: np.ndarray, base: float, light: tuple[float, float], lamp: float):
    """(the subject's alpha at each ground pixel's occluder, that occluder's height above the ground in px), both
    H x W: the subject is a card standing on the row ``base``; the light at ground point ``light`` (x, y) and
    height ``lamp``; the ray from the light through a card point (x, base - h) meets the ground at
    ``P + (P - L) t`` with ``t = h / (lamp - h)``, solved back for (x, h) at each ground pixel."""
    height, width = alpha.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (ys - base) / (base - light[1])  # >= 0 on the side away from the light
    valid = t > 0
    t = np.where(valid, t, 0.0)
    above = lamp * t / (1.0 + t)  # the occluder's height
    across = (xs + light[0] * t) / (1.0 + t)
    coverage = cv2.remap(alpha, across, (base - above).astype(np.float32), cv2.INTER_LINEAR, borderValue=0.0)
    return np.where(valid, coverage, 0.0).astype(np.float32), above


def _penumbra(coverage: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """``coverage`` (H x W) blurred by a per-pixel ``sigma`` (px), blended linearly between the blurs of
    :data:`PENUMBRA`."""
    levels = [gaussian_blur(coverage, s) for s in PENUMBRA]
    out = np.zeros_like(coverage)
    sigma = np.clip(sigma, PENUMBRA[0], PENUMBRA[-1])
    for low, high, a, b in zip(PENUMBRA, PENUMBRA[1:], levels, levels[1:]):
        part = (sigma >= low) & (sigma <= high)
        share = (sigma - low) / (high - low)
        out = np.where(part, a * (1.0 - share) + b * share, out)
    return out


def _sweep(rng) -> np.ndarray:
    """A studio sweep (canvas x 3): a drawn colour (grey, pastel or saturated, 0.35-0.95 bright) shaded from top to
    bottom by a gradient of -35..+35 % and a side falloff of up to 15 %, with 0.5-1.5 % sensor noise."""
    height, width = CANVAS
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    colour = rng.uniform(0.35, 0.95) * (1.0 - rng.uniform(0.0, 0.5) * rng.random(3))
    gradient = 1.0 + rng.uniform(-0.35, 0.35) * (ys / height - 0.5) * 2.0
    falloff = 1.0 - rng.uniform(0.0, 0.15) * np.square((xs - rng.uniform(0.3, 0.7) * width) / width * 2.0)
    light = (gradient * falloff)[..., None] * colour[None, None, :]
    noise = rng.normal(0.0, rng.uniform(0.005, 0.015), light.shape)
    return np.clip(light + noise, 0.0, 1.0).astype(np.float32)


def _photo_floor(photos: list[Path], rng) -> np.ndarray:
    """A textured floor (canvas x 3): a crop of 1/4-1/2 of a drawn photo, scaled to cover the canvas, unblurred."""
    pixels = io.read_image(str(photos[rng.integers(len(photos))])).pixels[..., :3]
    h, w = pixels.shape[:2]
    share = rng.uniform(0.5, 0.7)
    ch, cw = max(8, int(h * share)), max(8, int(w * share))
    top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = np.ascontiguousarray(pixels[top : top + ch, left : left + cw], dtype=np.float32)
    return np.clip(fit_cover(crop, *CANVAS), 0.0, 1.0).astype(np.float32)
