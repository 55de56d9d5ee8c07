"""The data term's evidence for alpha in a trimap's unknown band (:mod:`mattekit.matting.alpha`).

- colour sampling: the known foreground/background colour pair among nearby pixels that best explains a
  pixel as their mixture gives its alpha and a confidence (:func:`sample_estimate`);
- pure colours: a pixel whose colour is one of its side's own nearby colours is taken as 0 or 1
  (:func:`pure_fit`, :func:`prefer_pure`);
- texture: how much of the background's texture shows through a translucent layer (:func:`texture_estimate`).

Images are float32 sRGB H x W x 3 in [0,1]; per-pixel results are 1-D float32 over the unknown pixels, in the
order of their flat indices; distances and radii in pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..ops.filters import gaussian_blur
from . import trimap as trimaps


def _ring(radius: int, rings: int) -> list[tuple[int, int]]:
    """(dy, dx) of the pixel itself and of 8 directions at ``radius``, ``2 radius``, ... (``rings`` rings)."""
    points = [(0, 0)]
    for r in range(1, rings + 1):
        points += [(dy * r * radius, dx * r * radius) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    return points


CHUNK = 512  # unknown pixels per batch of the candidate search: its (pixels x pairs) arrays stay small


class Neighbours:
    """The known pixels of one side (foreground or background) as seen from the unknown pixels.

    ``planes``: the image's three channels, each flat and contiguous (float32); ``region``: that
    side's pixels (H x W bool, not empty); ``idx``: flat indices of the unknown pixels; ``reach``:
    the farthest offset (pixels) that will be looked at.
    """

    def __init__(self, planes: list[np.ndarray], region: np.ndarray, idx: np.ndarray, reach: int):
        h, w = region.shape
        # The nearest-pixel map padded by ``reach`` with its edge values: a point outside the image
        # reads the map at the nearest border pixel, and each offset is one constant flat step.
        near = trimaps.nearest(region)[0].astype(np.int32)
        self.near = cv2.copyMakeBorder(near, reach, reach, reach, reach, cv2.BORDER_REPLICATE).ravel()
        self.colours = [plane[self.near] for plane in planes]  # the nearest pixel's colour, padded
        self.own = [plane[idx] for plane in planes]  # the unknown pixels' colours
        self.stride = w + 2 * reach
        ys, xs = np.divmod(idx, w)
        self.base = (ys + reach) * self.stride + xs + reach

    def positions(self, points: list[tuple[int, int]], rows: slice = slice(None)) -> np.ndarray:
        """Where in the padded maps each of ``points`` (dy, dx) around the unknown pixels ``rows``
        falls: len(points) x rows int64."""
        steps = np.array([dy * self.stride + dx for dy, dx in points], np.int64)
        return self.base[rows][None] + steps[:, None]

    def candidates(self, points: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`positions` of every unknown pixel, one per distinct nearest known pixel: (len(points)
        x N int64, the distinct ones in order of first appearance, then repeats of the
        first; their count per unknown pixel, N)."""
        where = self.positions(points)
        spots = self.near[where]
        k, n = spots.shape
        keep = np.ones((k, n), bool)
        other = np.empty(n, bool)
        for j in range(1, k):
            for i in range(j):
                keep[j] &= np.not_equal(spots[i], spots[j], out=other)
        place = np.cumsum(keep, axis=0, dtype=np.int32)
        out = np.repeat(where[:1], k, axis=0)
        # Slot j of a pixel goes to row place - 1 of its column, if kept.
        flat = np.flatnonzero(keep)
        out.ravel()[(place.ravel()[flat] - 1) * n + flat % n] = where.ravel()[flat]
        return out, place[-1]

    def offsets(self, where: np.ndarray, rows) -> list[np.ndarray]:
        """Nearest known colours at the padded-map positions ``where`` (K x rows) minus the own
        colours of the unknown pixels ``rows``: three K x rows float32 arrays."""
        return [colour[where] - own[None, rows] for colour, own in zip(self.colours, self.own)]


def _batches(*counts: np.ndarray):
    """Unknown pixels in batches of at most CHUNK, sorted by their candidate counts so that a
    batch's arrays are rectangular with little padding: yields (rows; the batch's largest count
    of each side)."""
    key = np.zeros(counts[0].size, np.int64)
    for c in counts:
        key = key * 1024 + c
    order = np.argsort(key, kind="stable")
    for start in range(0, order.size, CHUNK):
        rows = order[start : start + CHUNK]
        yield rows, [int(c[rows].max()) for c in counts]


def sample_estimate(fg: Neighbours, bg: Neighbours, radius: int, rings: int = 2):
    """Colour-sampling alpha, its confidence and the best mixing error for the unknown pixels
    (three 1-D float32 arrays in the order of ``fg.idx``; alpha and confidence in [0, 1], the
    error a squared colour distance).

    Candidates for a pixel are the nearest known foreground pixels of 1 + 8 ``rings`` points around it and
    the nearest known background pixels of the same points (itself and rings of 8 at ``radius``, twice it, ...;
    two rings: 17 points); of the up to 289 pairs (81 with one ring) the one that best explains the pixel's
    colour as ``alpha F + (1 - alpha) B`` wins (the first in candidate order among equals; a
    known pixel that is the nearest of several points is tried once). A busy background needs
    the wide choice: a background pixel only gets alpha 0 when some candidate has its colour.
    The confidence falls with the mixing error and with how alike the pair's two colours are.
    """
    points = _ring(radius, rings)
    f_where, f_count = fg.candidates(points)
    b_where, b_count = bg.candidates(points)
    n = fg.base.size
    alpha, best, spread = (np.empty(n, np.float32) for _ in range(3))
    for rows, (kf, kb) in _batches(f_count, b_count):
        # Pairs as (foreground candidate, background candidate, pixel) arrays: F - I and I - B.
        f0, f1, f2 = (c[:, None] for c in fg.offsets(f_where[:kf, rows], rows))
        n0, n1, n2 = (np.negative(c[None]) for c in bg.offsets(b_where[:kb, rows], rows))
        # alpha = <I - B, F - B> / |F - B|^2 clipped to [0, 1]; error |B + alpha (F - B) - I|^2
        # (each value exactly as written: negations and sign flips round alike).
        d0, d1, d2 = f0 + n0, f1 + n1, f2 + n2
        norm = d0 * d0
        tmp = np.multiply(d1, d1)
        norm += tmp
        norm += np.multiply(d2, d2, out=tmp)
        a = np.multiply(n0, d0)
        a += np.multiply(n1, d1, out=tmp)
        a += np.multiply(n2, d2, out=tmp)
        a /= np.add(norm, 1e-6, out=tmp)
        np.clip(a, 0.0, 1.0, out=a)
        err = np.multiply(a, d0)
        err -= n0
        err *= err
        for nb, d in ((n1, d1), (n2, d2)):
            np.multiply(a, d, out=tmp)
            tmp -= nb
            tmp *= tmp
            err += tmp
        # The first pair (in candidate order) of least error, per pixel.
        err, a, norm = (x.reshape(kf * kb, -1) for x in (err, a, norm))
        k = np.ascontiguousarray(err.T).argmin(1)
        column = np.arange(rows.size)
        best[rows], alpha[rows], spread[rows] = err[k, column], a[k, column], norm[k, column]
    confidence = np.exp(-best / (2 * 0.05**2)) * np.clip(np.sqrt(spread) / 0.3, 0.0, 1.0)
    return alpha, confidence.astype(np.float32), best


def pure_fit(side: Neighbours, radius: int) -> np.ndarray:
    """Squared colour distance (1-D float32, in the order of ``side.idx``) from each unknown pixel
    to the closest of the known side's colours sampled around it: the nearest pixels of that
    side of 16 directions at 1, 2, 3 and 4 ``radius`` (a local palette of that side)."""
    points = sorted(
        {
            (int(round(np.sin(k * np.pi / 8) * r * radius)), int(round(np.cos(k * np.pi / 8) * r * radius)))
            for k in range(16)
            for r in (1, 2, 3, 4)
        }
    )
    n = side.base.size
    best = np.empty(n, np.float32)
    for start in range(0, n, CHUNK):
        rows = slice(start, min(n, start + CHUNK))
        d0, d1, d2 = side.offsets(side.positions(points, rows), rows)
        d0 *= d0
        d0 += np.multiply(d1, d1, out=d1)
        d0 += np.multiply(d2, d2, out=d2)
        best[rows] = d0.min(0)
    return best


def prefer_pure(est, conf, bg_error, fg_error, sigma: float, strength: float):
    """Where a pixel's colour is one of its side's own colours (squared distance ``bg_error`` or
    ``fg_error`` well below ``sigma``^2), a mixture is the less likely explanation: move the
    sampling estimate towards 0 (1) and raise its confidence by ``strength`` times the likelihood
    of the pure explanation over the mixture's. All arguments 1-D over the unknown pixels."""
    out_est, out_conf = est.copy(), conf.copy()
    for error, value in ((bg_error, 0.0), (fg_error, 1.0)):
        other = fg_error if value == 0.0 else bg_error
        pure = np.exp(-error / (2 * sigma**2)) * (error < other)
        pull = np.clip(strength * pure, 0.0, 1.0)
        out_est += pull * (value - out_est)
        out_conf = np.maximum(out_conf, pull)
    return out_est, out_conf


def texture_estimate(image: np.ndarray, bg: np.ndarray, unknown: np.ndarray, reach: float):
    """Alpha from how much of the background's texture shows through, and its reliability (1-D
    float32 over the unknown pixels, both in [0, 1]).

    Behind a layer of alpha ``a`` and flat colour, the background's fine texture is seen at
    ``1 - a`` of its contrast: ``a = 1 - contrast(I) / contrast(B)``, with contrast the local RMS
    of the high-pass image (Gaussian sigma 1.5 px; its energy's local minimum over 11 x 11 px,
    averaged over sigma 3 px) and contrast(B)
    that of the known background within about ``reach`` px. This is the evidence left for a
    translucent printed layer, whose colours no known pair explains. Reliable only over a
    textured background (RMS contrast >= 0.03) that has known pixels near.
    """
    detail = image - cv2.GaussianBlur(image, (0, 0), 1.5)
    energy = cv2.GaussianBlur((detail * detail).sum(2), (0, 0), 2.0)
    # A local minimum over 11 x 11 px first: the edges of the print itself are not texture.
    energy = cv2.GaussianBlur(cv2.erode(energy, np.ones((11, 11), np.uint8)), (0, 0), 3.0)
    core = cv2.erode(bg.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(np.float32)
    seen = gaussian_blur(core, reach, coarse=True)
    reference = gaussian_blur(energy * core, reach, coarse=True) / np.maximum(seen, 1e-6)
    u = unknown.ravel()
    ratio = np.sqrt(energy.ravel()[u] / np.maximum(reference.ravel()[u], 1e-8))
    reliable = np.clip(np.sqrt(reference.ravel()[u]) / 0.03, 0.0, 1.0) * np.clip(seen.ravel()[u] / 0.01, 0.0, 1.0)
    # Only an attenuated texture is evidence: as much detail as the background's (or more) may
    # as well be a textured foreground, and none at all a flat one.
    reliable *= np.clip((0.9 - ratio) / 0.15, 0.0, 1.0) * np.clip((ratio - 0.1) / 0.1, 0.0, 1.0)
    return np.clip(1.0 - ratio, 0.0, 1.0).astype(np.float32), reliable.astype(np.float32)
