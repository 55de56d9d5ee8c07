"""Alpha estimation inside a trimap's unknown band.

The matte minimises the closed-form matting energy of Levin et al. plus a weak data term::

    E(alpha) = alpha^T L alpha + lambda * sum_i c_i (alpha_i - a_i)^2

with the trimap's foreground/background pixels fixed to 1/0. ``a_i`` is a colour-sampling
estimate (the best foreground/background colour pair among nearby known pixels, as in
sampling-based matting) and ``c_i`` its confidence. The closed-form energy alone has nearly
free directions in wide unknown regions (any alpha locally affine in colour costs almost
nothing) - that is where closed-form matting turns grey and blotchy; the data term pins them
to the colour evidence without overriding the Laplacian on fine structure. Two more pieces
of evidence join the data term where colour pairs mislead:

- a pixel whose colour is one of its side's own nearby colours is taken as pure (alpha 0 or
  1) rather than a mixture (:func:`prefer_pure`): hair in front of a busy background would
  otherwise leave false alpha wherever a background colour lies between the hair's and
  another background colour;
- where no pair explains a pixel at all (a translucent printed layer, whose colours are no
  mixture of known ones), alpha comes from how much of the background's texture shows
  through (:func:`texture_estimate`), so uniform partial alpha does not follow the print.

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

from ..ops.filters import gaussian_blur
from ..ops.regions import bounding_box, grown
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
    guess_weight: weight of an outside alpha guess (a segmentation mask) in the data term;
    pure_weight, pure_sigma: strength (0 = off) and colour distance (RMS over RGB, [0,1]
    scale) of the preference for pure background/foreground colours (:func:`prefer_pure`);
    texture_weight: weight of the texture-contrast evidence relative to the sampling term's
    (0 = off; :func:`texture_estimate`). Chosen on the even-indexed alphamatting images.
    extent: (height, width) of the photo the image is a tile of: the size-dependent choices
    (expansion and sampling radii, solve scale, texture reach) follow it (None: the image's own).
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


def sample_estimate(fg: Neighbours, bg: Neighbours, radius: int):
    """Colour-sampling alpha, its confidence and the best mixing error for the unknown pixels
    (three 1-D float32 arrays in the order of ``fg.idx``; alpha and confidence in [0, 1], the
    error a squared colour distance).

    Candidates for a pixel are the nearest known foreground pixels of 17 points around it and
    the nearest known background pixels of the same 17 points (itself and rings of 8 at
    ``radius`` and twice it); of the up to 289 pairs the one that best explains the pixel's
    colour as ``alpha F + (1 - alpha) B`` wins (the first in candidate order among equals; a
    known pixel that is the nearest of several points is tried once). A busy background needs
    the wide choice: a background pixel only gets alpha 0 when some candidate has its colour.
    The confidence falls with the mixing error and with how alike the pair's two colours are.
    """
    points = _ring(radius, 2)
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
    points = sorted({(int(round(np.sin(k * np.pi / 8) * r * radius)), int(round(np.cos(k * np.pi / 8) * r * radius)))
                     for k in range(16) for r in (1, 2, 3, 4)})
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


def _box(unknown: np.ndarray, margin: int) -> tuple[slice, slice]:
    """(rows, columns) of the unknown pixels' bounding box (H x W bool, some True) grown by ``margin`` px."""
    top, left, bottom, right = bounding_box(unknown, 0.5)
    return grown((slice(top, bottom), slice(left, right)), margin, unknown.shape)[0]


def solve_band(image: np.ndarray, trimap: np.ndarray, options: AlphaOptions, iterations: int,
               start: np.ndarray | None = None, guess: np.ndarray | None = None,
               size: float | None = None) -> np.ndarray:
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
    est, conf, mix_error = sample_estimate(fg_side, bg_side, radius)
    if options.texture_weight > 0:  # colours no pair explains: how much background texture shows
        tex, reliable = texture_estimate(image, bg, unknown, 0.1 * size)
        unexplained = np.clip((np.sqrt(mix_error) - 0.05) / 0.1, 0.0, 1.0)
        share = unexplained * reliable
        est = est + share * (tex - est)
        conf = np.maximum(conf, options.texture_weight * share)
    if options.pure_weight > 0:
        est, conf = prefer_pure(est, conf, pure_fit(bg_side, radius), pure_fit(fg_side, radius),
                                options.pure_sigma, options.pure_weight)
    ys, xs = _box(unknown, 3)
    sub_unknown = unknown[ys, xs]
    stencil = laplacian_stencil(image[ys, xs], options.eps, rows_of=sub_unknown)
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


def colour_linear_fit(small_image: np.ndarray, small_alpha: np.ndarray, eps: float = 1e-5,
                      radius: int = 1) -> list[np.ndarray]:
    """The local colour-linear model of an alpha on a downscaled image (h x w x 3 and h x w, float32):
    in each (2r+1)^2 window alpha is fitted as ``a . I + b`` (a ridge regression with ``eps``: the
    guided filter's coefficients), and the coefficients are averaged over the windows holding each
    pixel. Returns [a_r, a_g, a_b, b], four h x w float32 planes (:func:`colour_linear_apply` uses them)."""
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
    return [mean(c) for c in coef]


def enlarged(plane: np.ndarray, factor: int, box: tuple[slice, slice]) -> np.ndarray:
    """``plane`` (h x w [x C], a photo shrunk ``factor`` times, its last row and column holding what was
    left over) enlarged ``factor`` times bilinearly, only inside ``box`` (row and column slices of the
    full size): the same values as enlarging it all, then cropping (the plane is read 2 pixels around)."""
    ys, xs = box
    hs, ws = plane.shape[:2]
    f = factor
    y0, y1 = max(0, ys.start // f - 2), min(hs, -(-ys.stop // f) + 2)
    x0, x1 = max(0, xs.start // f - 2), min(ws, -(-xs.stop // f) + 2)
    inner = (slice(ys.start - y0 * f, ys.stop - y0 * f), slice(xs.start - x0 * f, xs.stop - x0 * f))
    size = ((x1 - x0) * f, (y1 - y0) * f)
    return cv2.resize(np.ascontiguousarray(plane[y0:y1, x0:x1]), size, interpolation=cv2.INTER_LINEAR)[inner]


def colour_linear_apply(coefficients: list[np.ndarray], factor: int, colours: np.ndarray,
                        box: tuple[slice, slice]) -> np.ndarray:
    """Alpha in ``box`` (row and column slices of the full image) from :func:`colour_linear_fit`'s
    coefficients of the image shrunk ``factor`` times, enlarged bilinearly (:func:`enlarged`) and applied
    to the box's full-size ``colours`` (box's size x 3, float32 [0,1]): float32, clipped to [0, 1]."""
    a0, a1, a2, b = (enlarged(c, factor, box) for c in coefficients)
    out = a0 * colours[..., 0] + a1 * colours[..., 1] + a2 * colours[..., 2] + b
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
    small_alpha = solve_band(small_image, small_trimap, options, options.iterations, guess=small_guess,
                             size=size and size * small_image.shape[0] / image.shape[0])
    alpha = fg.astype(np.float32)
    ys, xs = _box(unknown, 0)
    factor = -(-image.shape[0] // small_image.shape[0])  # the halvings round up: exact multiples
    coefficients = colour_linear_fit(small_image, small_alpha, options.upsample_eps)
    region = colour_linear_apply(coefficients, factor, image[ys, xs], (ys, xs))
    alpha[ys, xs] = np.where(unknown[ys, xs], region, alpha[ys, xs])
    if options.refine > 0:
        alpha = solve_band(image, trimap, options, options.refine, start=alpha, guess=guess, size=size)
    return alpha
