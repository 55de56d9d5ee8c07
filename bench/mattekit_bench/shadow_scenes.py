"""Composites with known shadow mattes, made deterministically from subjects with true alphas and photos used
as surfaces (for ``mattekit bench shadow`` and the tests).

A scene: a subject (an alphamatting-style ``im/NAME`` + ``gt/NAME.png`` pair) over a surface (a photo scaled to
cover, blurred to a backdrop or left textured), the surface multiplied by ``1 - shadow`` before the subject goes
over it (sRGB, as a black layer of alpha ``shadow`` over the surface gives). Kinds (:data:`KINDS`):

- ``floor``: the subject's alpha laid down behind it from its lowest row (flattened, sheared), blurred;
- ``offset``: its alpha shifted (a drop shadow on a backdrop), blurred;
- ``none``: no shadow at all;
- ``far``: a floor shadow and a blurred ellipse's shadow of something else, far from the subject (not in the truth);
- ``pattern``: a floor shadow on a floor of dark stripes (the stripes are no shadow);
- ``dark``: a floor shadow on a dark floor (the surface at a quarter of its brightness);
- ``textured``: a floor shadow on a textured floor (:func:`_textured`: a photo barely blurred, its own shapes and
  contours kept, times blotches like stone's), where the shadow is found or the matte left empty.

Every draw comes from a generator seeded by the subject's name and the kind. Arrays float32 in [0,1]: photo
H x W x 3 sRGB, alpha and shadow H x W.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mattekit import io
from mattekit.ops.filters import gaussian_blur
from mattekit.ops.resizing import fit_cover
from .segment import pairs

KINDS = ("floor", "offset", "none", "far", "pattern", "dark", "textured")


@dataclass
class Scene:
    """One composite: ``photo`` (H x W x 3), the subject's true ``alpha`` and the true ``shadow`` (H x W), named
    ``name`` (subject, kind)."""

    name: str
    kind: str
    photo: np.ndarray
    alpha: np.ndarray
    shadow: np.ndarray


def surfaces(folders: list[Path]) -> list[Path]:
    """The photos usable as surfaces: the images under ``folders`` (recursively), in sorted order."""
    suffixes = {".png", ".jpg", ".jpeg", ".bmp"}
    return sorted(
        p
        for folder in folders
        for p in folder.rglob("*")
        if p.suffix.lower() in suffixes and "gt" not in p.parts and "LR" not in p.parts
    )


def example(data: Path, kind: str = "floor", index: int = 1) -> Scene:
    """The composite of kind ``kind`` of the ``index``-th subject of ``data``/alphamatting (sorted) over the photos
    of ``data``/grabcut50/im and ``data``/sr: what the tests use."""
    image, gt = pairs(data / "alphamatting")[index]
    return scene(image, gt, kind, surfaces([data / "grabcut50" / "im", data / "sr"]))


CANVAS = (480, 640)  # a composite's height and width, px


def scene(image: Path, gt: Path, kind: str, surface_photos: list[Path], draw: int = 0) -> Scene:
    """The composite of kind ``kind`` for the subject ``image`` (true alpha ``gt``) over a surface drawn from
    ``surface_photos``: the subject scaled to 45-65 % of the canvas's height, its lowest row at 72-88 % of it.
    ``draw`` > 0: another draw of the same subject and kind (more composites from the same subjects)."""
    seed = f"{image.stem}/{kind}" + (f"/{draw}" if draw else "")
    rng = np.random.default_rng(zlib.crc32(seed.encode()))
    subject, alpha = placed(io.read_image(str(image)).pixels[..., :3], io.read_image(str(gt)).pixels, rng)
    surface = _textured(surface_photos, rng) if kind == "textured" else _surface(surface_photos, rng)
    if kind == "dark":
        surface = surface * 0.25
    if kind == "pattern":
        surface = surface * _stripes(*CANVAS, rng)
    shadow = np.zeros_like(alpha)
    if kind in ("floor", "far", "pattern", "dark", "textured"):
        shadow = _floor_shadow(alpha, rng)
    elif kind == "offset":
        shadow = _offset_shadow(alpha, rng)
    darkening = shadow.copy()
    if kind == "far":
        darkening = np.maximum(darkening, _far_shadow(alpha, rng))
    behind = surface * (1.0 - darkening[..., None])
    photo = subject * alpha[..., None] + behind * (1.0 - alpha[..., None])
    return Scene(
        f"{image.stem}/{kind}" + (f"/{draw}" if draw else ""),
        kind,
        np.clip(photo, 0, 1).astype(np.float32),
        alpha,
        shadow,
    )


def placed(
    colours: np.ndarray,
    alpha: np.ndarray,
    rng,
    canvas: tuple[int, int] = CANVAS,
    base: tuple[float, float] = (0.72, 0.88),
) -> tuple[np.ndarray, np.ndarray]:
    """The subject's colours (H x W x 3) and alpha (H x W; the first channel of a grey-as-RGB one) cropped to its
    box, scaled to 45-65 % of the ``canvas``'s height (rows, columns) and placed with its lowest row at a drawn
    share ``base`` of it: (canvas x 3, canvas)."""
    alpha = alpha[..., 0] if alpha.ndim == 3 else alpha
    ys, xs = np.nonzero(alpha > 0.01)
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    height, width = canvas
    size = rng.uniform(0.45, 0.65) * height / (bottom - top)
    new_h, new_w = max(1, round((bottom - top) * size)), max(1, round((right - left) * size))
    new_w = min(new_w, width - 2)
    colours = cv2.resize(
        np.ascontiguousarray(colours[top:bottom, left:right]), (new_w, new_h), interpolation=cv2.INTER_AREA
    )
    alpha = cv2.resize(
        np.ascontiguousarray(alpha[top:bottom, left:right]), (new_w, new_h), interpolation=cv2.INTER_AREA
    )
    lowest = int(rng.uniform(*base) * height)
    y0 = max(0, lowest - new_h)
    x0 = int(np.clip(rng.uniform(0.3, 0.7) * width - new_w / 2, 0, width - new_w))
    out_colours, out_alpha = np.zeros(canvas + (3,), np.float32), np.zeros(canvas, np.float32)
    out_colours[y0 : y0 + new_h, x0 : x0 + new_w] = colours[: height - y0]
    out_alpha[y0 : y0 + new_h, x0 : x0 + new_w] = alpha[: height - y0]
    return out_colours, out_alpha


def _surface(photos: list[Path], rng) -> np.ndarray:
    """A floor or backdrop (canvas x 3): one drawn photo blurred by 20-60 px (its colours' slow changes), its
    contrast lowered to 30-70 %, times 1 + a fine texture of another (its high-pass grey, normalised, at 2-10 %)."""

    def drawn():
        pixels = io.read_image(str(photos[rng.integers(len(photos))])).pixels[..., :3]
        return np.ascontiguousarray(fit_cover(pixels, *CANVAS), dtype=np.float32)

    base = gaussian_blur(drawn(), float(rng.uniform(20.0, 60.0)))
    base = base.mean(axis=(0, 1)) + (base - base.mean(axis=(0, 1))) * rng.uniform(0.3, 0.7)
    grey = drawn().mean(axis=-1)
    texture = grey - gaussian_blur(grey, 3.0)
    texture = np.clip(texture / (texture.std() + 1e-6), -3.0, 3.0)
    return np.clip(base * (1.0 + rng.uniform(0.02, 0.10) * texture[..., None]), 0.0, 1.0).astype(np.float32)


def _textured(photos: list[Path], rng) -> np.ndarray:
    """A textured floor (canvas x 3): one drawn photo blurred by 1-24 px (log-uniform: from its every detail to a
    smooth photo's shapes and contours), its contrast at 40-100 %, times 1 + blotches like stone's (a noise blurred
    by 1-8 px, normalised, at 0-20 %)."""
    pixels = io.read_image(str(photos[rng.integers(len(photos))])).pixels[..., :3]
    blur = float(np.exp(rng.uniform(0.0, np.log(24.0))))
    base = gaussian_blur(np.ascontiguousarray(fit_cover(pixels, *CANVAS), dtype=np.float32), blur)
    base = base.mean(axis=(0, 1)) + (base - base.mean(axis=(0, 1))) * rng.uniform(0.4, 1.0)
    noise = gaussian_blur(rng.standard_normal(CANVAS).astype(np.float32), rng.uniform(1.0, 8.0))
    blotches = rng.uniform(0.0, 0.2) * noise / (noise.std() + 1e-6)
    return np.clip(base * (1.0 + blotches[..., None]), 0.0, 1.0).astype(np.float32)


def _softened(coverage: np.ndarray, rng) -> np.ndarray:
    """``coverage`` blurred by a sigma drawn from 1-16 px (hard to soft) and scaled by a strength drawn from
    0.3-0.7."""
    return gaussian_blur(coverage, float(rng.uniform(1.0, 16.0))) * float(rng.uniform(0.3, 0.7))


def _floor_shadow(alpha: np.ndarray, rng) -> np.ndarray:
    """The subject's alpha laid on the floor behind it: flattened towards its lowest row (by 0.3-0.7) and
    sheared sideways (by -0.8..0.8 of the height above that row), then softened."""
    rows = np.nonzero((alpha > 0.5).any(axis=1))[0]
    base = float(rows[-1]) if rows.size else alpha.shape[0] - 1.0
    flat, shear = rng.uniform(0.3, 0.7), rng.uniform(-0.8, 0.8)
    # a point (x, y) of the subject goes to (x + shear * (base - y), base - flat * (base - y))
    matrix = np.float32([[1.0, -shear, shear * base], [0.0, flat, (1.0 - flat) * base]])
    laid = cv2.warpAffine(alpha, matrix, alpha.shape[::-1], flags=cv2.INTER_LINEAR, borderValue=0.0)
    return np.clip(_softened(laid, rng), 0.0, 1.0)


def _offset_shadow(alpha: np.ndarray, rng) -> np.ndarray:
    """The subject's alpha shifted by 3-12 % of the image's diagonal in a drawn direction, softened."""
    distance = rng.uniform(0.03, 0.12) * np.hypot(*alpha.shape)
    angle = rng.uniform(0, 2 * np.pi)
    matrix = np.float32([[1, 0, distance * np.cos(angle)], [0, 1, distance * np.sin(angle)]])
    shifted = cv2.warpAffine(alpha, matrix, alpha.shape[::-1], flags=cv2.INTER_LINEAR, borderValue=0.0)
    return np.clip(_softened(shifted, rng), 0.0, 1.0)


def _far_shadow(alpha: np.ndarray, rng) -> np.ndarray:
    """A soft ellipse of strength 0.5 (something else's shadow) in the image's corner farthest from the subject,
    1/8 of the image across."""
    height, width = alpha.shape
    ys, xs = np.nonzero(alpha > 0.5)
    centre = (ys.mean(), xs.mean()) if ys.size else (height / 2, width / 2)
    corners = [
        (height * 0.12, width * 0.12),
        (height * 0.12, width * 0.88),
        (height * 0.88, width * 0.12),
        (height * 0.88, width * 0.88),
    ]
    y, x = max(corners, key=lambda c: np.hypot(c[0] - centre[0], c[1] - centre[1]))
    blob = np.zeros_like(alpha)
    cv2.ellipse(blob, (int(x), int(y)), (width // 16, height // 24), float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    return gaussian_blur(blob, 4.0) * 0.5


def _stripes(height: int, width: int, rng) -> np.ndarray:
    """H x W x 1 factor of a floor's dark stripes: 1 between them, 0.35-0.6 on them, 20-60 px apart, at a drawn
    angle."""
    period, angle, low = rng.uniform(20, 60), rng.uniform(0, np.pi), rng.uniform(0.35, 0.6)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = (xs * np.cos(angle) + ys * np.sin(angle)) / period
    return np.where((phase % 1.0) < 0.5, 1.0, low).astype(np.float32)[..., None]
