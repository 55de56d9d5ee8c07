"""Alpha estimation inside a trimap's unknown band.

The matte minimises the closed-form matting energy of Levin et al. plus a weak data term::

    E(alpha) = alpha^T L alpha + lambda * sum_i c_i (alpha_i - a_i)^2

with the trimap's foreground/background pixels fixed to 1/0. ``a_i`` is a colour-sampling
estimate (the best foreground/background colour pair among nearby known pixels, as in
sampling-based matting) and ``c_i`` its confidence. The closed-form energy alone has nearly
free directions in wide unknown regions (any alpha locally affine in colour costs almost
nothing) - that is where closed-form matting turns grey and blotchy; the data term pins them
to the colour evidence without overriding the Laplacian on fine structure.

Speed comes from three choices, none of which can fail to converge:

1. the known regions first grow into unknown pixels of the same colour (shared matting's
   expansion), which shrinks the problem where a trimap was drawn generously;
2. the energy is minimised on a half-resolution grid (coarser for very large images, so
   that at most ~1.5 MP are solved), by multigrid-preconditioned conjugate gradients over
   the unknown band's bounding box
   (:mod:`mattekit.matting.solver`) with a fixed iteration budget, starting from the
   sampling estimate;
3. the result comes back to full resolution through the same local model the Laplacian is
   built on: per window ``alpha = a . I + b``. The coefficients are fitted at the solve
   resolution, smoothed, upsampled and applied to the full-resolution colours, so hair and
   edges land on the full-resolution pixels (Levin et al.'s own coarse-to-fine scheme).
   ``refine`` > 0 adds conjugate-gradient iterations at full resolution.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from . import solver, trimap as trimaps
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
    guess_weight: weight of an outside alpha guess (a segmentation mask) in the data term.
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


def sample_estimate(image: np.ndarray, fg: np.ndarray, bg: np.ndarray, unknown: np.ndarray, radius: int):
    """Colour-sampling alpha and its confidence for the unknown pixels (1-D, raster order).

    Candidates for a pixel are the nearest known foreground and background pixels of 9
    points around it (a 3x3 grid ``radius`` pixels apart); of the 81 pairs the one that best
    explains the pixel's colour as ``alpha F + (1 - alpha) B`` wins. The confidence falls with
    the mixing error and with how alike the pair's two colours are.
    """
    h, w = unknown.shape
    planes = [np.ascontiguousarray(image[..., c]).ravel() for c in range(3)]
    idx = np.flatnonzero(unknown.ravel())
    ys, xs = np.divmod(idx, w)
    near_fg, near_bg = trimaps.nearest(fg)[0].ravel(), trimaps.nearest(bg)[0].ravel()
    colour = [p[idx] for p in planes]
    cand_f, cand_b = [], []
    for dy in (-radius, 0, radius):
        for dx in (-radius, 0, radius):
            q = np.clip(ys + dy, 0, h - 1) * w + np.clip(xs + dx, 0, w - 1)
            f, b = near_fg[q], near_bg[q]
            cand_f.append([p[f] - c for p, c in zip(planes, colour)])  # F - I
            cand_b.append([p[b] - c for p, c in zip(planes, colour)])  # B - I
    best = np.full(idx.size, np.inf, np.float32)
    alpha = np.zeros(idx.size, np.float32)
    spread = np.zeros(idx.size, np.float32)
    for f in cand_f:
        for b in cand_b:
            # alpha = <I - B, F - B> / |F - B|^2 clipped to [0, 1]; error |B + alpha (F - B) - I|^2.
            d0, d1, d2 = f[0] - b[0], f[1] - b[1], f[2] - b[2]
            norm = d0 * d0 + d1 * d1 + d2 * d2
            a = -(b[0] * d0 + b[1] * d1 + b[2] * d2) / (norm + 1e-6)
            np.clip(a, 0.0, 1.0, out=a)
            e0, e1, e2 = b[0] + a * d0, b[1] + a * d1, b[2] + a * d2
            err = e0 * e0 + e1 * e1 + e2 * e2
            better = err < best
            best = np.where(better, err, best)
            alpha = np.where(better, a, alpha)
            spread = np.where(better, norm, spread)
    confidence = np.exp(-best / (2 * 0.05**2)) * np.clip(np.sqrt(spread) / 0.3, 0.0, 1.0)
    return alpha, confidence.astype(np.float32)


def _box(unknown: np.ndarray, margin: int) -> tuple[slice, slice]:
    rows = np.flatnonzero(unknown.any(axis=1))
    cols = np.flatnonzero(unknown.any(axis=0))
    h, w = unknown.shape
    return (slice(max(0, rows[0] - margin), min(h, rows[-1] + 1 + margin)),
            slice(max(0, cols[0] - margin), min(w, cols[-1] + 1 + margin)))


def solve_band(image: np.ndarray, trimap: np.ndarray, options: AlphaOptions, iterations: int,
               start: np.ndarray | None = None, guess: np.ndarray | None = None) -> np.ndarray:
    """Minimise the energy at this resolution. ``start``: initial alpha (default: the data
    term's target); ``guess``: an outside alpha estimate added to the data term with weight
    ``options.guess_weight``."""
    fg, bg, unknown = trimaps.split(trimap)
    alpha = fg.astype(np.float32)
    if not unknown.any():
        return alpha
    if not (fg.any() and bg.any()):  # nothing to match colours against
        fill = guess if guess is not None else (1.0 if fg.any() else 0.0 if bg.any() else 0.5)
        return np.where(unknown, fill, alpha).astype(np.float32)
    h, w = trimap.shape
    radius = options.radius or int(np.clip(round(0.015 * max(h, w)), 2, 60))
    est, conf = sample_estimate(image, fg, bg, unknown, radius)
    ys, xs = _box(unknown, 3)
    sub_unknown = unknown[ys, xs]
    stencil = laplacian_stencil(image[ys, xs], options.eps)
    # Right-hand side: the data term minus the pull of the known pixels; then drop the
    # known rows and columns and add the data term's weights to the diagonal.
    prior = np.zeros(sub_unknown.shape, np.float32)
    weight = np.zeros(sub_unknown.shape, np.float32)
    prior[sub_unknown] = est
    weight[sub_unknown] = options.weight * conf
    if guess is not None:  # weighted mean of the two targets; the weights add up
        extra = options.guess_weight * sub_unknown
        prior = (weight * prior + extra * guess[ys, xs]) / np.maximum(weight + extra, 1e-12)
        weight = weight + extra
    rhs = weight * prior - solver.apply(stencil, fg[ys, xs].astype(np.float32))
    mask = sub_unknown.astype(np.float32)
    padded = cv2.copyMakeBorder(mask, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=0.0)
    sh, sw = mask.shape
    for k, (dy, dx) in enumerate(solver.half_offsets(13)):
        stencil[k] *= mask * padded[2 + dy : 2 + dy + sh, 2 + dx : 2 + dx + sw]
    stencil[0] += weight
    x0 = prior if start is None else start[ys, xs]
    x = solver.solve(stencil, rhs, sub_unknown, x0=x0, iterations=iterations)
    alpha[ys, xs] = np.where(sub_unknown, np.clip(x, 0.0, 1.0), alpha[ys, xs])
    return alpha


def colour_linear_upsample(small_image: np.ndarray, small_alpha: np.ndarray, image: np.ndarray,
                           eps: float = 1e-5, radius: int = 1, box: tuple[slice, slice] | None = None) -> np.ndarray:
    """Carry an alpha from a downscaled image to the full image through the local colour-linear model.

    ``small_image`` must be ``image`` (padded to a multiple of the factor) shrunk by an integer
    factor. In each (2r+1)^2 window of the small image, alpha is fitted as ``a . I + b`` (a
    ridge regression with ``eps``: the guided filter's coefficients); the coefficients are
    averaged over the windows holding each pixel, upsampled bilinearly and applied to the
    full-size colours. ``box`` (row and column slices of the full image) limits the output to
    that region. Returns float32 (H x W, or the box's size) clipped to [0, 1].
    """
    k = 2 * radius + 1

    def mean(x):
        return cv2.boxFilter(x, cv2.CV_32F, (k, k), borderType=cv2.BORDER_REFLECT)

    g = [np.ascontiguousarray(small_image[..., c], dtype=np.float32) for c in range(3)]
    p = np.ascontiguousarray(small_alpha, dtype=np.float32)
    mi = [mean(c) for c in g]
    mp = mean(p)
    x, y, z = (mean(c * p) - m * mp for c, m in zip(g, mi))
    v = {}
    for i, j in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)):
        v[i, j] = mean(g[i] * g[j]) - mi[i] * mi[j] + (eps if i == j else 0.0)
    a11, a12, a13, a22, a23, a33 = (v[key] for key in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)))
    c11, c12, c13 = a22 * a33 - a23 * a23, a13 * a23 - a12 * a33, a12 * a23 - a13 * a22
    c22, c23, c33 = a11 * a33 - a13 * a13, a13 * a12 - a11 * a23, a11 * a22 - a12 * a12
    inv_det = 1.0 / (a11 * c11 + a12 * c12 + a13 * c13)
    coef = [(c11 * x + c12 * y + c13 * z) * inv_det, (c12 * x + c22 * y + c23 * z) * inv_det,
            (c13 * x + c23 * y + c33 * z) * inv_det]
    coef.append(mp - coef[0] * mi[0] - coef[1] * mi[1] - coef[2] * mi[2])
    # Upsample the averaged coefficients over the box (grown by 2 small pixels so that the
    # bilinear interpolation inside it is the same as for the whole image) and apply them.
    h, w = image.shape[:2]
    hs, ws = p.shape
    f = -(-h // hs)
    ys, xs = box or (slice(0, h), slice(0, w))
    y0, y1 = max(0, ys.start // f - 2), min(hs, -(-ys.stop // f) + 2)
    x0, x1 = max(0, xs.start // f - 2), min(ws, -(-xs.stop // f) + 2)
    inner = (slice(ys.start - y0 * f, ys.stop - y0 * f), slice(xs.start - x0 * f, xs.stop - x0 * f))
    size = ((x1 - x0) * f, (y1 - y0) * f)
    a0, a1, a2, b = (cv2.resize(mean(c)[y0:y1, x0:x1], size, interpolation=cv2.INTER_LINEAR)[inner] for c in coef)
    out = a0 * image[ys, xs, 0] + a1 * image[ys, xs, 1] + a2 * image[ys, xs, 2] + b
    return np.clip(out, 0.0, 1.0).astype(np.float32)


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


def estimate_alpha(image: np.ndarray, trimap: np.ndarray, options: AlphaOptions | None = None,
                   guess: np.ndarray | None = None) -> np.ndarray:
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
    h, w = trimap.shape
    if options.expand:
        trimap = trimaps.expand_known(image, trimap, radius=max(2.0, 0.006 * max(h, w)))
        fg, bg, unknown = trimaps.split(trimap)
        if not unknown.any():
            return fg.astype(np.float32)
    scale = options.scale or auto_scale(h, w)
    if scale <= 1:
        return solve_band(image, trimap, options, options.iterations, guess=guess)
    small_image, small_trimap, small_guess = image, trimap, guess
    for _ in range(int(round(np.log2(scale)))):
        half_trimap = trimaps.downsample(small_trimap)
        if not ((half_trimap >= trimaps.FG_AT).any() and (half_trimap <= trimaps.BG_AT).any()):
            break  # a side made only of thin structures would vanish: solve at this level
        small_image, small_trimap = _half(small_image), half_trimap
        small_guess = None if small_guess is None else _half(small_guess)
    if small_image is image:
        return solve_band(image, trimap, options, options.iterations, guess=guess)
    small_alpha = solve_band(small_image, small_trimap, options, options.iterations, guess=small_guess)
    alpha = fg.astype(np.float32)
    ys, xs = _box(unknown, 0)
    region = colour_linear_upsample(small_image, small_alpha, image, options.upsample_eps, box=(ys, xs))
    alpha[ys, xs] = np.where(unknown[ys, xs], region, alpha[ys, xs])
    if options.refine > 0:
        alpha = solve_band(image, trimap, options, options.refine, start=alpha, guess=guess)
    return alpha
