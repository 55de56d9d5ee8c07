"""Pairs of shots of one subject on two backdrops with the true alpha and colours, from two generators that differ
in how see-through subjects, backdrops and the camera's movement are made (for ``mattekit bench two-shots`` and the
tests). Tune on one, report on the other.

- ``drawn`` (generator A): drawn bottles with analytic alpha (a glass body 0.05-0.35 with thicker walls at its
  outline, opaque labels and caps, a highlight at 0.9) or opaque drawn objects (striped, anti-aliased) over
  smooth white sweeps (a linear fall, the bend from floor to wall, a broad hot spot) and a dark one; the second shot moved by a
  bicubic warp.
- ``photographed`` (generator B): real photos and their real alpha mattes (alphamatting's im/ + gt/: hair, fur,
  toys, plants) as subjects, made see-through (glass: the matte times a smooth field of 0.08-0.5) or left
  opaque, over backdrops lit by a spot light (an inverse-square falloff with a
  cosine, off-centre, tinted) and a dark coloured card lit from one side with a vignette; the second shot moved by a
  Fourier phase ramp (band-limited, not a cubic kernel).

Both composite in linear light (``C = a F + (1 - a) B``), move the second shot by at most 0.7 px, change its
exposure by up to +-3 %, add a little noise, and encode to 8-bit sRGB as a camera does. Every draw comes from a
generator seeded by the scene's name. Arrays float32 in [0, 1]: shots H x W x 3 sRGB (8-bit values), the true alpha
H x W and straight colours H x W x 3 sRGB in the first shot's frame.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mattekit import io
from mattekit.ops.pixels import linear_to_srgb, srgb_to_linear
from .segment import pairs

GENERATORS = ("drawn", "photographed")
KINDS = ("glass", "opaque")
CANVAS = (360, 480)  # height, width px
MOST_SHIFT = 0.7  # px between the shots
MOST_GAIN = 0.03  # exposure change between the shots


@dataclass
class ShotPair:
    """One pair of shots: ``first`` and ``second`` (H x W x 3 sRGB), the true ``alpha`` (H x W) and ``colours``
    (H x W x 3 sRGB straight) in the first's frame, and the ``shift`` (dx, dy) and ``gain`` given the second."""

    name: str
    kind: str
    first: np.ndarray
    second: np.ndarray
    alpha: np.ndarray
    colours: np.ndarray
    shift: tuple[float, float]
    gain: float


def _rng(name: str):
    return np.random.default_rng(zlib.crc32(name.encode()))


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) pixel-centre coordinates in [0, 1], each H x W float32."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return (ys + 0.5) / height, (xs + 0.5) / width


def _camera(first: np.ndarray, second: np.ndarray, mover, rng) -> tuple:
    """(first, second) as a camera gives them from linear H x W x 3 composites: the second moved by ``mover``
    (image, dx, dy) by a drawn shift of at most :data:`MOST_SHIFT` px, its exposure changed by up to
    :data:`MOST_GAIN`, both with noise and 8-bit sRGB; and (shift, gain)."""
    angle, size = rng.uniform(0, 2 * np.pi), rng.uniform(0.2, MOST_SHIFT)
    dx, dy = float(size * np.cos(angle)), float(size * np.sin(angle))
    gain = float(1.0 + rng.uniform(-MOST_GAIN, MOST_GAIN))
    second = mover(second, dx, dy) * gain
    shots = []
    for shot in (first, second):
        noisy = shot + rng.normal(0.0, 1.0, shot.shape).astype(np.float32) * (0.001 + 0.004 * np.sqrt(np.abs(shot)))
        shots.append(np.round(np.clip(linear_to_srgb(np.clip(noisy, 0, 1)), 0, 1) * 255) / np.float32(255))
    return shots[0].astype(np.float32), shots[1].astype(np.float32), (dx, dy), gain


def _cubic_move(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    size = (image.shape[1], image.shape[0])
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def _fourier_move(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` moved by a phase ramp (band-limited; the frame wraps, its border reflected first)."""
    h, w = image.shape[:2]
    padded = np.pad(image, ((h // 2, h // 2), (w // 2, w // 2), (0, 0)), mode="reflect")
    fy = np.fft.fftfreq(padded.shape[0])[:, None, None]
    fx = np.fft.fftfreq(padded.shape[1])[None, :, None]
    ramp = np.exp(-2j * np.pi * (fx * dx + fy * dy))
    moved = np.fft.ifft2(np.fft.fft2(padded, axes=(0, 1)) * ramp, axes=(0, 1)).real
    return moved[h // 2 : h // 2 + h, w // 2 : w // 2 + w].astype(np.float32)


def _composite(alpha: np.ndarray, colours: np.ndarray, backdrop: np.ndarray) -> np.ndarray:
    """Linear-light ``a F + (1 - a) B`` of ``colours`` given in sRGB (H x W x 3)."""
    a = alpha[..., None]
    return (a * srgb_to_linear(colours) + (1.0 - a) * backdrop).astype(np.float32)


def _supersampled(draw, height: int, width: int, factor: int = 4) -> np.ndarray:
    """The coverage (H x W float32) of shapes that ``draw(canvas, factor)`` fills with 1 on a ``factor`` times finer
    uint8 canvas, averaged by area: anti-aliased edges with exact coverage."""
    fine = np.zeros((height * factor, width * factor), np.uint8)
    draw(fine, factor)
    return cv2.resize(fine.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)


def _bottle(rng, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(body coverage, label coverage, cap coverage, highlight coverage) of a drawn bottle, each H x W."""
    cx, bottom = rng.uniform(0.35, 0.65) * width, rng.uniform(0.8, 0.92) * height
    half, tall = rng.uniform(0.1, 0.16) * width, rng.uniform(0.4, 0.5) * height
    neck, top = half * rng.uniform(0.3, 0.45), bottom - tall - rng.uniform(0.12, 0.18) * height

    def body(fine, f):
        cv2.rectangle(
            fine, (int((cx - half) * f), int((bottom - tall) * f)), (int((cx + half) * f), int(bottom * f)), 1, -1
        )
        cv2.ellipse(
            fine, (int(cx * f), int((bottom - tall) * f)), (int(half * f), int(half * 0.6 * f)), 0, 180, 360, 1, -1
        )
        cv2.rectangle(
            fine, (int((cx - neck) * f), int(top * f)), (int((cx + neck) * f), int((bottom - tall) * f)), 1, -1
        )

    def label(fine, f):
        y0 = bottom - tall * rng.uniform(0.55, 0.7)
        cv2.rectangle(
            fine, (int((cx - half) * f), int(y0 * f)), (int((cx + half) * f), int((y0 + tall * 0.3) * f)), 1, -1
        )

    def cap(fine, f):
        cv2.rectangle(
            fine,
            (int((cx - neck * 1.15) * f), int((top - 0.05 * height) * f)),
            (int((cx + neck * 1.15) * f), int(top * f)),
            1,
            -1,
        )

    def highlight(fine, f):
        x0 = cx - half * rng.uniform(0.5, 0.7)
        cv2.rectangle(
            fine,
            (int(x0 * f), int((bottom - tall * 0.9) * f)),
            (int((x0 + half * 0.12) * f), int((bottom - tall * 0.1) * f)),
            1,
            -1,
        )

    return tuple(_supersampled(d, height, width) for d in (body, label, cap, highlight))


def _stripes(height: int, width: int, factor: int = 4) -> np.ndarray:
    """H x W coverage of a label's slanted print stripes (9 px apart across), area-sampled as the shapes are."""
    ys, xs = np.mgrid[0 : height * factor, 0 : width * factor].astype(np.float32)
    fine = (((xs + 0.5) / factor / 9.0 + (ys + 0.5) / factor / 23.0) % 1.0 < 0.5).astype(np.float32)
    return cv2.resize(fine, (width, height), interpolation=cv2.INTER_AREA)


def _sweep(y: np.ndarray, x: np.ndarray, rng) -> np.ndarray:
    """A white sweep's light (H x W): a linear fall towards the top and a side, the bend from floor to wall (a soft
    step of 10-25 % at 60-80 % of the height) and a broad hot spot of up to 20 %."""
    level = rng.uniform(0.6, 0.85) * (1.0 - rng.uniform(0.1, 0.3) * y + rng.uniform(-0.1, 0.1) * x)
    bend = 1.0 - rng.uniform(0.1, 0.25) / (1.0 + np.exp(-(y - rng.uniform(0.6, 0.8)) / rng.uniform(0.06, 0.12)))
    spot = 1.0 + rng.uniform(0.0, 0.2) * np.exp(-((x - rng.uniform(0.2, 0.8)) ** 2 + (y - 0.4) ** 2) / 0.125)
    return (level * bend * spot).astype(np.float32)


def drawn(index: int, kind: str, moved: float = 0.0) -> ShotPair:
    """Generator A's ``index``-th pair of ``kind`` (glass: a bottle; opaque: a striped drawn object); ``moved``: the
    subject moved this many px to the right in the second shot, the camera still (a pair to refuse)."""
    name = f"drawn/{kind}/{index}"
    rng = _rng(name)
    h, w = CANVAS
    y, x = _grid(h, w)
    body, label, cap, shine = _bottle(rng, h, w)
    if kind == "glass":
        walls = cv2.GaussianBlur(cv2.erode(body, np.ones((3, 3), np.float32), iterations=4), (0, 0), 3)
        glass = rng.uniform(0.05, 0.15) + rng.uniform(0.1, 0.2) * (1.0 - walls)  # thicker where the light grazes
        alpha = np.maximum(body * glass, np.maximum(label, cap))
        alpha = np.maximum(alpha, shine * body * 0.9)
        tint = rng.uniform(0.3, 0.9, 3).astype(np.float32)
    else:
        alpha = body
        tint = rng.uniform(0.1, 0.9, 3).astype(np.float32)
    colours = np.broadcast_to(tint, (h, w, 3)).copy()
    print_ = rng.uniform(0.0, 1.0, 3).astype(np.float32)
    stripes = _stripes(h, w)[..., None]
    colours = colours * (1 - np.maximum(label, cap)[..., None]) + np.maximum(label, cap)[..., None] * (
        print_ * stripes + (1 - stripes) * (1 - print_)
    )
    colours = colours * (1 - shine[..., None]) + shine[..., None] * 0.97 if kind == "glass" else colours
    white = _sweep(y, x, rng)[..., None] * rng.uniform(0.9, 1.0, 3).astype(np.float32)
    dark = (0.03 + 0.03 * (1 - y))[..., None] * rng.uniform(0.8, 1.0, 3).astype(np.float32)
    first, second = _composite(alpha, colours, white), _composite(alpha, colours, dark)
    if moved:
        second = _composite(_cubic_move(alpha, moved, 0.0), _cubic_move(colours, moved, 0.0), dark)
    first, second, shift, gain = _camera(first, second, _cubic_move, rng)
    return ShotPair(name, kind, first, second, alpha.astype(np.float32), colours.astype(np.float32), shift, gain)


def _spot(height: int, width: int, rng) -> np.ndarray:
    """A backdrop lit by a spot light off-centre (inverse square with a cosine), tinted: H x W x 3 linear."""
    y, x = _grid(height, width)
    ly, lx, reach = rng.uniform(-0.2, 0.4), rng.uniform(0.1, 0.9), rng.uniform(0.8, 1.6)
    falloff = (1.0 + ((x - lx) ** 2 + (y - ly) ** 2 * (height / width) ** 2) / reach**2) ** -1.5
    return (falloff / falloff.max() * rng.uniform(0.55, 0.9))[..., None] * rng.uniform(0.85, 1.0, 3).astype(np.float32)


def _card(height: int, width: int, rng) -> np.ndarray:
    """A coloured card lit from one side, vignetted (cos^4 of the angle off the lens axis): H x W x 3 linear."""
    y, x = _grid(height, width)
    side = 1.0 - rng.uniform(0.2, 0.5) * (x if rng.uniform() < 0.5 else 1.0 - x)
    off_axis = np.arctan(np.hypot(x - 0.5, (y - 0.5) * height / width) * rng.uniform(0.8, 1.4))
    colour = rng.uniform(0.01, 0.08, 3).astype(np.float32)
    return (side * np.cos(off_axis) ** 4)[..., None] * colour


def _fitted(pixels: np.ndarray, alpha: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """A subject photo (H x W x 3) and its matte cropped to the matte's box and scaled into the canvas at 55-80 % of
    its height, centred where drawn."""
    ys, xs = np.nonzero(alpha > 0.01)
    pixels, alpha = (
        pixels[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1],
        alpha[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1],
    )
    h, w = CANVAS
    scale = min(rng.uniform(0.55, 0.8) * h / alpha.shape[0], 0.9 * w / alpha.shape[1])
    size = (max(1, round(alpha.shape[1] * scale)), max(1, round(alpha.shape[0] * scale)))
    pixels = cv2.resize(np.ascontiguousarray(pixels), size, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(np.ascontiguousarray(alpha), size, interpolation=cv2.INTER_AREA)
    y0, x0 = int(rng.uniform(0.05, 0.95) * (h - size[1])), int(rng.uniform(0.05, 0.95) * (w - size[0]))
    out_pixels, out_alpha = np.zeros((h, w, 3), np.float32), np.zeros((h, w), np.float32)
    out_pixels[y0 : y0 + size[1], x0 : x0 + size[0]] = pixels
    out_alpha[y0 : y0 + size[1], x0 : x0 + size[0]] = alpha
    return out_pixels, out_alpha


def photographed(image: Path, gt: Path, kind: str) -> ShotPair:
    """Generator B's pair of ``kind`` for the subject ``image`` with its true alpha ``gt``: see-through (its matte
    times a smooth field of 0.08-0.5, the subject's colours the photo's) or opaque."""
    name = f"photographed/{kind}/{image.stem}"
    rng = _rng(name)
    matte = io.read_image(str(gt)).pixels
    matte = (matte[..., 0] if matte.ndim == 3 else matte).astype(np.float32)
    colours, alpha = _fitted(io.read_image(str(image)).pixels[..., :3].astype(np.float32), matte, rng)
    if kind == "glass":
        field = cv2.GaussianBlur(rng.uniform(0, 1, alpha.shape).astype(np.float32), (0, 0), 12)
        field = (field - field.min()) / (np.ptp(field) + 1e-6)
        alpha = alpha * (0.08 + 0.42 * field)
    h, w = CANVAS
    first, second = _composite(alpha, colours, _spot(h, w, rng)), _composite(alpha, colours, _card(h, w, rng))
    first, second, shift, gain = _camera(first, second, _fourier_move, rng)
    return ShotPair(name, kind, first, second, alpha, colours, shift, gain)


def scenes(generator: str, data: Path | None = None, count: int = 6) -> list[ShotPair]:
    """Every pair of ``generator``: ``count`` of each kind drawn, or one of each kind per subject of
    ``data``/alphamatting for the photographed one."""
    if generator == "drawn":
        return [drawn(i, kind) for kind in KINDS for i in range(count)]
    subjects = pairs(Path(data) / "alphamatting")
    return [photographed(image, gt, kind) for kind in KINDS for image, gt in subjects[:count]]
