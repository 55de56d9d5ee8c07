"""The backdrop's light: the light a surface would show without the subject (and its shadow), per pixel, with a
confidence.

A backdrop (a studio sweep, a card, a lit wall) is smooth: its light is fitted as a low-order 2-D polynomial per
channel over the pixels known to be clean backdrop, and what the polynomial misses is added back as the clean
pixels' residual smoothed wide (normalised convolution), so a falloff that no polynomial follows is followed too.
Inside the subject the surface is the fit's continuation. The fit runs on a coarse grid (:data:`GRID` cells on the
long side) and is evaluated at full size exactly (the polynomial) and bilinearly (the residual).

The confidence says whether the surface was plain: the clean pixels' spread about the fit relative to the light
(:func:`confidence`): near 1 on a plain sweep, near 0 where the surface is textured (grass, stone, a patterned
cloth), where no smooth estimate can be trusted and the caller should say so rather than guess.

Arrays: linear-light float32 H x W x C (C channels, any), weights H x W in [0, 1]; the light has the input's shape.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

GRID = 128  # cells of the coarse grid on the long side
FINE = 512  # px: the long side at which a fitted surface is evaluated before it is enlarged
DEGREE = (
    5  # the polynomial's total degree (21 terms; chosen on the drawn scenes: 3: 0.015, 4: 0.008, 5: 0.008, 6: 0.009)
)
SMOOTH = 0.08  # the residual's smoothing, as a fraction of the grid's long side (Gaussian sigma)
MARGIN = 2  # grid cells left out beside the subject in the two shots' clean backdrop
SMOOTHNESS = 0.02  # the most a clean backdrop's difference changes per pixel, relative to itself
LEAST_OPEN = 0.05  # the least share of the frame that is smooth backdrop joining its edge (less: judged textured)
PLAIN = 0.03  # clean pixels' relative spread about the fit at which the confidence reaches 0
SUBJECT = 0.01  # one shot: model alpha above this is the subject's (left out of the backdrop's fit) ...
CLEAR = 0.02  # ... and so are the pixels within this fraction of the diagonal from it
SHADE = 0.08  # backdrop pixels this much darker than the first fit (a shadow) are left out of the second


@dataclass
class Backdrop:
    """A fitted backdrop: ``light`` (H x W x C, linear), ``confidence`` in [0, 1] (1: a plain surface, 0: textured)
    and ``spread`` (the clean pixels' RMS deviation from the fit relative to the mean light)."""

    light: np.ndarray
    confidence: float
    spread: float


def grid_shape(height: int, width: int, cells: int = GRID) -> tuple[int, int]:
    """(rows, columns) of a coarse grid of at most ``cells`` on the long side, keeping the aspect (at least 4x4)."""
    scale = min(1.0, cells / max(height, width))
    return max(4, round(height * scale)), max(4, round(width * scale))


def on_grid(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``values`` (H x W or H x W x C float32) averaged onto a grid of ``shape`` (rows, columns) by area."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    if values.shape[:2] == shape:
        return values
    return cv2.resize(values, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def _powers(count: int, degree: int) -> np.ndarray:
    """count x (degree + 1) powers 0..degree of ``count`` pixel centres spread over [-1, 1] (float64)."""
    t = (np.arange(count, dtype=np.float64) + 0.5) / count * 2.0 - 1.0
    return t[:, None] ** np.arange(degree + 1)[None, :]


@functools.lru_cache(maxsize=8)
def _design(h: int, w: int, degree: int) -> tuple[np.ndarray, tuple]:
    """((h w) x terms design matrix of the monomials y^i x^j, i + j <= ``degree``, on an h x w grid; the (i, j)s)."""
    ys, xs = _powers(h, degree), _powers(w, degree)
    terms = tuple((i, j) for i in range(degree + 1) for j in range(degree + 1 - i))
    return np.stack([(ys[:, i, None] * xs[None, :, j]).ravel() for i, j in terms], axis=1), terms


def polynomial_fit(values: np.ndarray, weights: np.ndarray, degree: int = DEGREE) -> np.ndarray:
    """Coefficients (C x (degree+1) x (degree+1), [channel, power of y, power of x], zero above the total degree)
    of the weighted least-squares polynomial of ``values`` (h x w x C) with ``weights`` (h x w, >= 0), by the
    normal equations (monomials on [-1, 1] up to degree 5 or so are well conditioned)."""
    h, w, channels = values.shape
    design, terms = _design(h, w, degree)
    weights = weights.astype(np.float64).ravel()
    kept = weights > 0  # (cells of no weight add nothing)
    design, weights, values = design[kept], weights[kept], values.reshape(-1, channels)[kept].astype(np.float64)
    weighted = design.T * weights
    normal = weighted @ design + 1e-9 * np.eye(len(terms))
    solved = np.linalg.solve(normal, weighted @ values)
    coefficients = np.zeros((channels, degree + 1, degree + 1))
    for row, (i, j) in zip(solved, terms):
        coefficients[:, i, j] = row
    return coefficients


def polynomial_at(coefficients: np.ndarray, height: int, width: int) -> np.ndarray:
    """The polynomial of :func:`polynomial_fit` evaluated at every pixel of an ``height`` x ``width`` image (the
    same [-1, 1] span as the grid it was fitted on): H x W x C float32."""
    degree = coefficients.shape[1] - 1
    ys, xs = _powers(height, degree), _powers(width, degree).T.astype(np.float32)
    out = np.zeros((height, width, len(coefficients)), np.float32)
    for channel, c in enumerate(coefficients):
        rows = (ys @ c).astype(np.float32)  # H x (degree + 1): each power of x's factor per row
        for power in range(degree + 1):  # (outer products: a BLAS product this thin costs more in threads)
            out[..., channel] += rows[:, power, None] * xs[power, None, :]
    return out


def smoothed_residual(residual: np.ndarray, weights: np.ndarray, smooth: float = SMOOTH) -> np.ndarray:
    """The weighted residual (h x w x C) blurred wide where ``weights`` (h x w) hold it and filled in elsewhere
    (normalised convolution: blur(r w) / blur(w)); h x w x C float32."""
    sigma = max(1.0, smooth * max(residual.shape[:2]))
    w = weights.astype(np.float32)
    num = cv2.GaussianBlur(residual * w[..., None], (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(w, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return (num.reshape(residual.shape) / np.maximum(den, 1e-6)[..., None]).astype(np.float32)


def grid_surface(values: np.ndarray, weights: np.ndarray, degree: int = DEGREE) -> tuple[np.ndarray, np.ndarray]:
    """(coefficients, smoothed residual) of a surface fitted to ``values`` (h x w x C grid) over ``weights``
    (h x w): :func:`polynomial_fit`, then :func:`smoothed_residual` of what it misses."""
    coefficients = polynomial_fit(values, weights, degree)
    h, w = values.shape[:2]
    return coefficients, smoothed_residual(values - polynomial_at(coefficients, h, w), weights)


def surface_at(coefficients: np.ndarray, residual: np.ndarray, height: int, width: int) -> np.ndarray:
    """The surface of :func:`grid_surface` at full size, ``height`` x ``width`` x C float32: made at most
    :data:`FINE` px across and enlarged bilinearly beyond that (the surface is smooth)."""
    scale = min(1.0, FINE / max(height, width))
    h, w = max(2, round(height * scale)), max(2, round(width * scale))
    light = polynomial_at(coefficients, h, w)
    light += cv2.resize(residual, (w, h), interpolation=cv2.INTER_LINEAR).reshape(light.shape)
    if (h, w) == (height, width):
        return light
    return cv2.resize(light, (width, height), interpolation=cv2.INTER_LINEAR).reshape(height, width, -1)


def confidence(values: np.ndarray, surface: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """(confidence in [0, 1], relative spread) of a fitted ``surface`` (h x w x C) to ``values`` over ``weights``
    (h x w): the weighted RMS deviation divided by the mean light; the confidence falls linearly to 0 at
    :data:`PLAIN`."""
    w = weights.astype(np.float64)
    total = w.sum()
    if total <= 0:
        return 0.0, float("inf")
    deviation = np.sqrt((((values - surface) ** 2).sum(axis=2) * w).sum() / total)
    level = (np.sqrt((surface**2).sum(axis=2)) * w).sum() / total
    spread = float(deviation / max(level, 1e-6))
    return float(np.clip(1.0 - spread / PLAIN, 0.0, 1.0)), spread


def backdrop_light(image: np.ndarray, clean: np.ndarray, degree: int = DEGREE) -> Backdrop:
    """The backdrop light of ``image`` (H x W x C, linear light) fitted over ``clean`` (H x W in [0, 1]: 1 where the
    pixel is plain backdrop, no subject and no shadow), with its confidence; :class:`Backdrop`."""
    height, width = image.shape[:2]
    shape = grid_shape(height, width)
    values = on_grid(image, shape).reshape(shape + (-1,))
    weights = on_grid(clean, shape)
    coefficients, residual = grid_surface(values, weights, degree)
    sure, spread = confidence(values, surface_at(coefficients, residual, *shape), weights)
    light = surface_at(coefficients, residual, height, width)
    return Backdrop(light.reshape(image.shape), sure, spread)


def clean_backdrop(linear: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """H x W float32 weights in {0, 1}: the pixels of ``linear`` (H x W x 3) away from the subject of ``alpha``
    (H x W) by :data:`CLEAR` of the diagonal."""
    outside = (alpha <= SUBJECT).astype(np.uint8)
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, 5)
    return (distance > CLEAR * np.hypot(*alpha.shape)).astype(np.float32)


def backdrop_behind(linear: np.ndarray, alpha: np.ndarray) -> Backdrop:
    """One shot's backdrop, read by the see-through and the shadow: the light behind the subject of ``alpha``
    (H x W) in ``linear`` (H x W x 3) as a :class:`Backdrop` (light H x W x 3 linear, at least 1e-4; its fit's
    confidence and spread), fitted on the coarse grid (:func:`grid_shape`) over the cells wholly of
    :func:`clean_backdrop`'s pixels, then again without those :data:`SHADE` darker than the first fit (the
    subject's shadow), and scaled up bilinearly. All ones, confidence 0 and spread infinite when no backdrop
    shows."""
    height, width = alpha.shape
    shape = grid_shape(height, width)
    small = on_grid(linear, shape).reshape(shape + (linear.shape[2],))
    clean = (on_grid(clean_backdrop(linear, alpha), shape) >= 0.999).astype(np.float32)
    if clean.sum() < 16:
        return Backdrop(np.ones_like(linear), 0.0, float("inf"))
    first = backdrop_light(small, clean)
    lit = clean * (small.mean(axis=2) >= (1.0 - SHADE) * first.light.mean(axis=2))
    found = backdrop_light(small, lit) if lit.sum() >= 16 else first
    light = cv2.resize(np.maximum(found.light, 1e-4), (width, height), interpolation=cv2.INTER_LINEAR)
    return Backdrop(light.reshape(linear.shape), found.confidence, found.spread)


ROUNDS = ((0.5, False), (0.8, False), (0.9, False), (0.95, False), (0.98, False), (0.98, True), (0.98, True))
"""(threshold, with the smoothed residual) of each round of :func:`clean_of_difference`."""


def open_backdrop(difference: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The grid cells (``shape``) where two shots' full-size ``difference`` (H x W x C) may be clean backdrop: no
    pixel of the cell changes faster than :data:`SMOOTHNESS` of the difference per pixel (a backdrop's light
    changes slowly; a subject's outline, texture and see-through parts change it abruptly, and where it is
    opaque the difference is mere noise), and the cell belongs to a region of such cells that holds the most of
    the frame's edge, or at least half as much (a smooth inside of a subject is enclosed by its outline, or meets
    the edge where the subject is cut off by it); h x w float32, 0 or 1."""
    soft = cv2.GaussianBlur(np.ascontiguousarray(difference, dtype=np.float32), (0, 0), 1.0).reshape(difference.shape)
    change = sum(
        cv2.Sobel(soft, cv2.CV_32F, *order, ksize=3).reshape(difference.shape) ** 2 for order in ((1, 0), (0, 1))
    )
    rate = np.sqrt(change.sum(axis=2)) / 8.0 / (np.sqrt((soft * soft).sum(axis=2)) + 0.02)
    rough = cv2.resize((rate > SMOOTHNESS).astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    smooth = (rough == 0).astype(np.uint8)
    count, labels = cv2.connectedComponents(smooth, connectivity=4)
    border = np.bincount(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]), minlength=count)
    border[0] = 0
    if border.max() == 0:
        return smooth.astype(np.float32)
    return np.isin(labels, np.nonzero(border >= 0.5 * border.max())[0]).astype(np.float32)


def clean_of_difference(difference: np.ndarray, degree: int = DEGREE, start: np.ndarray | None = None) -> np.ndarray:
    """Where a grid (h x w x C) of two shots' difference ``C1 - C2 = (1 - alpha)(B1 - B2)`` is clean backdrop: the
    pixels whose difference is the whole of the fitted backdrop difference (its projection on the fit >= the
    round's threshold), found in rounds (:data:`ROUNDS`) that start from ``start`` (h x w 0/1; None: every cell,
    e.g. :func:`open_backdrop`'s) and drop the subject (smaller
    differences, down to none where it is opaque), less :data:`MARGIN` cells next to it (cells the subject's faint
    edge still reaches); h x w float32 weights, 0 or 1. No network: the subject is what
    the backdrop change does not reach."""
    h, w = difference.shape[:2]
    weights = np.ones((h, w), np.float32) if start is None or start.sum() < 16 else start
    for threshold, follows in ROUNDS:
        coefficients, residual = grid_surface(difference, weights, degree)
        fit = surface_at(coefficients, residual if follows else np.zeros_like(residual), h, w)
        share = (difference * fit).sum(axis=2) / np.maximum((fit * fit).sum(axis=2), 1e-12)
        kept = (share >= threshold).astype(np.float32) * (1.0 if start is None else start)
        if kept.sum() < 16:  # nothing looks like backdrop: keep the last set
            break
        weights = kept
    inner = cv2.erode(weights, np.ones((3, 3), np.uint8), iterations=MARGIN, borderType=cv2.BORDER_REPLICATE)
    return inner if inner.sum() >= 16 else weights


@dataclass
class BackdropPair:
    """The two shots' backdrops: ``first`` and ``second`` light (H x W x C, linear), their ``difference``
    (first - second, fitted on its own), the ``confidence`` and ``spread`` of the difference's fit (:func:`confidence`) and
    ``clean`` (the share of the frame that is clean backdrop; ``grid``: where, h x w weights on the coarse grid)."""

    first: np.ndarray
    second: np.ndarray
    difference: np.ndarray
    confidence: float
    spread: float
    clean: float
    grid: np.ndarray


def backdrop_pair(first: np.ndarray, second: np.ndarray, degree: int = DEGREE, clean=None) -> BackdropPair:
    """Each shot's backdrop light from two aligned shots (H x W x C linear light, the same subject and camera over
    two backdrops): the clean backdrop is where their difference is whole (:func:`clean_of_difference` from
    :func:`open_backdrop`; or ``clean``, a grid of weights found before, e.g. the last pair's ``grid``); the
    difference's surface and the first shot's are fitted there (:func:`grid_surface`), the second's is their
    difference. :class:`BackdropPair`."""
    height, width = first.shape[:2]
    shape = grid_shape(height, width)
    channels = first.shape[2]
    grid_first = on_grid(first, shape).reshape(shape + (channels,))
    grid_difference = grid_first - on_grid(second, shape).reshape(shape + (channels,))
    if clean is not None and clean.shape != shape:  # (found at another size: the grid may round otherwise)
        clean = cv2.resize(clean, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    if clean is None:
        start = open_backdrop(first - second, shape)
        clean = clean_of_difference(grid_difference, degree, start)
        open_share = float(start.mean())
    else:
        open_share = float(clean.mean())
    coefficients, residual = grid_surface(grid_difference, clean, degree)
    judged = clean if open_share >= LEAST_OPEN else np.ones_like(clean)  # no plain backdrop: judged on the frame
    sure, spread = confidence(grid_difference, surface_at(coefficients, residual, *shape), judged)
    difference = surface_at(coefficients, residual, height, width)
    light = surface_at(*grid_surface(grid_first, clean, degree), height, width)
    return BackdropPair(light, light - difference, difference, sure, spread, float(clean.mean()), clean)
