"""Alpha estimation inside a trimap's unknown band (:func:`estimate_alpha`: an sRGB image H x W x 3 and a trimap
H x W, both float in [0, 1], to a float32 alpha H x W in [0, 1]).

The matte minimises the closed-form matting energy of Levin et al. plus a weak data term::

    E(alpha) = alpha^T L alpha + lambda * sum_i c_i (alpha_i - a_i)^2

with the trimap's foreground/background pixels fixed to 1/0. ``a_i`` is a colour-sampling estimate (the best
foreground/background colour pair among nearby known pixels) and ``c_i`` its confidence. Two more estimates join
the data term: a pixel whose colour is one of its side's own nearby colours is taken as pure, alpha 0 or 1
(:func:`mattekit.matting.evidence.prefer_pure`), and where no colour pair explains a pixel, alpha comes from how
much of the background's texture shows through (:func:`mattekit.matting.evidence.texture_estimate`).

The solve, with a fixed iteration budget:

1. the known regions first grow into unknown pixels of the same colour (shared matting's expansion);
2. the energy is minimised on a half-resolution grid (coarser for very large images, so that at most ~1.5 MP are
   solved) by multigrid-preconditioned conjugate gradients over the unknown band's bounding box
   (:mod:`mattekit.matting.solver`), starting from the sampling estimate;
3. the result comes back to full resolution through the local model the Laplacian is built on
   (:mod:`mattekit.matting.colour_linear`): per window ``alpha = a . I + b``, the coefficients fitted at the solve
   resolution, smoothed, upsampled and applied to the full-resolution colours. ``refine`` > 0 adds
   conjugate-gradient iterations at full resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..ops.regions import bounding_box, grown
from . import solver, trimap as trimaps
from .colour_linear import colour_linear_apply, colour_linear_fit
from .evidence import Neighbours, prefer_pure, pure_fit, sample_estimate, texture_estimate
from .laplacian import laplacian_stencil


@dataclass
class AlphaOptions:
    """Parameters of :func:`estimate_alpha`.

    eps: regulariser of the local colour model (the matting Laplacian's epsilon);
    weight: lambda of the colour-sampling data term; iterations: conjugate-gradient
    iterations at the solve resolution; scale: solve at 1/scale resolution (a power of two;
    None = automatic: 1 below 0.25 MP, else the smallest of 2, 4, ... giving <= 1.5 MP);
    refine: extra iterations at full resolution; expand: grow the known regions by colour
    first; radius: spread of the colour-sample search in solve-level pixels (None = from the
    image size); upsample_eps: regulariser of the colour-linear fit used to upsample;
    guess_weight: weight of an outside alpha guess (a segmentation mask) in the data term;
    pure_weight, pure_sigma: strength (0 = off) and colour distance (RMS over RGB, [0,1]
    scale) of the preference for pure background/foreground colours (:func:`mattekit.matting.evidence.prefer_pure`);
    texture_weight: weight of the texture-contrast evidence relative to the sampling term's
    (0 = off; :func:`mattekit.matting.evidence.texture_estimate`). Chosen on the even-indexed alphamatting images.
    extent: (height, width) of the photo the image is a tile of: the size-dependent choices
    (expansion and sampling radii, solve scale, texture reach) follow it (None: the image's own).
    sample_rings: rings of 8 points around a pixel whose nearest known pixels are its colour-sample candidates
    (:func:`mattekit.matting.evidence.sample_estimate`).
    device: where the Laplacian and its solve run: None here, or the finish's device (its ``solve``, with
    :func:`mattekit.matting.solve_device.solve_on`'s arguments but the device; on a GPU that function) for a box of at
    least ``DEVICE_PIXELS``, here again where its memory runs out.
    """

    eps: float = 1e-7
    weight: float = 1e-3
    iterations: int = 20
    scale: int | None = None
    refine: int = 0
    expand: bool = True
    radius: int | None = None
    upsample_eps: float = 1e-5
    guess_weight: float = 3e-3
    pure_weight: float = 1.0
    pure_sigma: float = 0.05
    texture_weight: float = 10.0
    extent: tuple[int, int] | None = None
    sample_rings: int = 2
    device: object = None


# A solve's box goes to the device (AlphaOptions.device) from this many pixels: below it the GPU's solve costs its
# kernel launches, more than the CPU's (an H100, 2026-11-27: the GPU won from about 60 kpx; below, its fixed
# 32 ms was more than the CPU's whole solve).
DEVICE_PIXELS = 1 << 16


def _box(unknown: np.ndarray, margin: int) -> tuple[slice, slice]:
    """(rows, columns) of the unknown pixels' bounding box (H x W bool, some True) grown by ``margin`` px."""
    top, left, bottom, right = bounding_box(unknown, 0.5)
    return grown((slice(top, bottom), slice(left, right)), margin, unknown.shape)[0]


def solve_band(
    image: np.ndarray,
    trimap: np.ndarray,
    options: AlphaOptions,
    iterations: int,
    start: np.ndarray | None = None,
    guess: np.ndarray | None = None,
    size: float | None = None,
) -> np.ndarray:
    """Minimise the energy at this resolution. ``start``: initial alpha (default: the data
    term's target); ``guess``: an outside alpha estimate added to the data term with weight
    ``options.guess_weight``; ``size``: the long side (px at this resolution) the sampling radius
    and texture reach follow (default: this image's)."""
    fg, bg, unknown = trimaps.split(trimap)
    alpha = fg.astype(np.float32)
    if not unknown.any():
        return alpha
    if not (fg.any() and bg.any()):  # nothing to match colours against
        fill = guess if guess is not None else (1.0 if fg.any() else 0.0 if bg.any() else 0.5)
        return np.where(unknown, fill, alpha).astype(np.float32)
    size = size or max(trimap.shape)
    radius = options.radius or int(np.clip(round(0.015 * size), 2, 60))
    planes = [np.ascontiguousarray(image[..., c]).ravel() for c in range(3)]
    idx = np.flatnonzero(unknown.ravel())
    reach = 4 * radius  # pure_fit's farthest point
    fg_side, bg_side = Neighbours(planes, fg, idx, reach), Neighbours(planes, bg, idx, reach)
    est, conf, mix_error = sample_estimate(fg_side, bg_side, radius, options.sample_rings)
    if options.texture_weight > 0:  # colours no pair explains: how much background texture shows
        tex, reliable = texture_estimate(image, bg, unknown, 0.1 * size)
        unexplained = np.clip((np.sqrt(mix_error) - 0.05) / 0.1, 0.0, 1.0)
        share = unexplained * reliable
        est = est + share * (tex - est)
        conf = np.maximum(conf, options.texture_weight * share)
    if options.pure_weight > 0:
        est, conf = prefer_pure(
            est, conf, pure_fit(bg_side, radius), pure_fit(fg_side, radius), options.pure_sigma, options.pure_weight
        )
    ys, xs = _box(unknown, 3)
    sub_unknown = unknown[ys, xs]
    prior = np.zeros(sub_unknown.shape, np.float32)
    weight = np.zeros(sub_unknown.shape, np.float32)
    prior[sub_unknown] = est
    weight[sub_unknown] = options.weight * conf
    if guess is not None:  # weighted mean of the two targets; the weights add up
        extra = options.guess_weight * sub_unknown
        prior = (weight * prior + extra * guess[ys, xs]) / np.maximum(weight + extra, 1e-12)
        weight = weight + extra
    x0 = prior if start is None else start[ys, xs]
    x = None
    if options.device is not None and sub_unknown.size >= DEVICE_PIXELS:
        x = options.device.solve(image[ys, xs], fg[ys, xs], sub_unknown, prior, weight, x0, options.eps, iterations)
    if x is None:
        x = _solved(image[ys, xs], fg[ys, xs], sub_unknown, prior, weight, x0, options.eps, iterations)
    alpha[ys, xs] = np.where(sub_unknown, np.clip(x, 0.0, 1.0), alpha[ys, xs])
    return alpha


def _solved(
    image: np.ndarray,
    fg: np.ndarray,
    unknown: np.ndarray,
    prior: np.ndarray,
    weight: np.ndarray,
    x0: np.ndarray,
    eps: float,
    iterations: int,
) -> np.ndarray:
    """Minimise ``x^T L x + sum weight (x - prior)^2`` over the ``unknown`` pixels (h x w bool), the ``fg`` pixels
    (h x w bool) fixed to 1 and the others to 0, L the matting Laplacian of ``image`` (h x w x 3, regulariser
    ``eps``), by ``iterations`` of multigrid-preconditioned conjugate gradients from ``x0``: h x w float32."""
    stencil = laplacian_stencil(image, eps, rows_of=unknown)
    # Right-hand side: the data term minus the pull of the known pixels; then drop the
    # known rows and columns and add the data term's weights to the diagonal.
    rhs = weight * prior - solver.apply(stencil, fg.astype(np.float32))
    mask = unknown.astype(np.float32)
    solver.drop_known(stencil, mask, cv2.copyMakeBorder(mask, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=0.0))
    stencil[0] += weight
    return solver.solve(stencil, rhs, unknown, x0=x0, iterations=iterations)


def auto_scale(height: int, width: int, max_pixels: float = 1.5e6) -> int:
    """Solve-level downscale: 1 for small images, else the smallest power of two >= 2 fitting ``max_pixels``."""
    if height * width < 250_000:
        return 1
    scale = 2
    while height * width / scale**2 > max_pixels:
        scale *= 2
    return scale


def _half(x: np.ndarray) -> np.ndarray:
    """Exact 2x area reduction (odd sizes padded by replication)."""
    h, w = x.shape[:2]
    even = cv2.copyMakeBorder(x, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
    return cv2.resize(even, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)


def estimate_alpha(
    image: np.ndarray, trimap: np.ndarray, options: AlphaOptions | None = None, guess: np.ndarray | None = None
) -> np.ndarray:
    """Alpha matte of an sRGB image (H x W x 3, float [0,1]) and a trimap (H x W: 0 background,
    1 foreground, anything between unknown; see :mod:`mattekit.matting.trimap`) -> float32
    H x W in [0, 1]. Known pixels keep their trimap value.

    ``guess`` (H x W in [0,1], e.g. the segmentation probability a trimap was made from) joins
    the colour evidence in the data term, so wide unknown regions whose colours say little keep
    the guess's opinion. With no known foreground (or background) there is nothing to match
    colours against: unknown pixels get the guess, or the side that exists (0.5 if none).
    """
    options = options or AlphaOptions()
    image = np.ascontiguousarray(image[..., :3], dtype=np.float32)
    trimap = np.asarray(trimap, np.float32)
    guess = None if guess is None else np.clip(np.asarray(guess, np.float32), 0.0, 1.0)
    fg, bg, unknown = trimaps.split(trimap)
    if not unknown.any():
        return fg.astype(np.float32)
    if not (fg.any() and bg.any()):
        fill = guess if guess is not None else (1.0 if fg.any() else 0.0 if bg.any() else 0.5)
        return np.where(unknown, fill, fg).astype(np.float32)
    h, w = options.extent or trimap.shape
    size = None if options.extent is None else max(h, w)  # the long side the solve's choices follow
    if options.expand:
        trimap = trimaps.expand_known(image, trimap, radius=max(2.0, 0.006 * max(h, w)))
        fg, bg, unknown = trimaps.split(trimap)
        if not unknown.any():
            return fg.astype(np.float32)
    scale = options.scale or auto_scale(h, w)
    if scale <= 1:
        return solve_band(image, trimap, options, options.iterations, guess=guess, size=size)
    small_image, small_trimap, small_guess = image, trimap, guess
    for _ in range(int(round(np.log2(scale)))):
        half_trimap = trimaps.downsample(small_trimap)
        if not ((half_trimap >= trimaps.FG_AT).any() and (half_trimap <= trimaps.BG_AT).any()):
            break  # a side made only of thin structures would vanish: solve at this level
        small_image, small_trimap = _half(small_image), half_trimap
        small_guess = None if small_guess is None else _half(small_guess)
    if small_image is image:
        return solve_band(image, trimap, options, options.iterations, guess=guess, size=size)
    small_alpha = solve_band(
        small_image,
        small_trimap,
        options,
        options.iterations,
        guess=small_guess,
        size=size and size * small_image.shape[0] / image.shape[0],
    )
    alpha = fg.astype(np.float32)
    ys, xs = _box(unknown, 0)
    factor = -(-image.shape[0] // small_image.shape[0])  # the halvings round up: exact multiples
    coefficients = colour_linear_fit(small_image, small_alpha, options.upsample_eps)
    region = colour_linear_apply(coefficients, factor, image[ys, xs], (ys, xs))
    alpha[ys, xs] = np.where(unknown[ys, xs], region, alpha[ys, xs])
    if options.refine > 0:
        alpha = solve_band(image, trimap, options, options.refine, start=alpha, guess=guess, size=size)
    return alpha
