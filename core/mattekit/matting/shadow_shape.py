"""The shape of the photo's own shadow: a shadow cast on a floor or a backdrop is a projection of the subject's
silhouette, so a darkening beside the subject that no projection of its alpha explains is the floor's, not its shadow.

Two families of projections of the subject's alpha (:func:`projection`): laid on the floor from the middle of its
lowest row (flattened by :data:`FLATS` towards that row, negative: towards the camera, sheared sideways by
:data:`SHEARS` of the height above it, widened by :data:`WIDTHS`), and shifted whole (a drop shadow on a backdrop, up
to :data:`MAX_SHIFT` of the diagonal). The one that best matches a shadow matte (their cosine outside the subject, on a
copy shrunk :data:`SEARCH` times: :func:`best_projection`) explains it when the cosine passes :data:`ACCEPT`; what it
leaves, if more than :data:`RESIDUAL` of the matte, is explained too where a second projection passing :data:`SECOND`
does (a second light: :func:`explained`). A shadow region is kept when half of it lies where they explain it, to a
margin (:func:`kept`): a real shadow is no exact projection of the silhouette the camera sees. Alphas and mattes
h x w float32 in [0,1].
"""

from __future__ import annotations

import cv2
import numpy as np

SEARCH = 4  # the projections are searched on the working copy shrunk this many times
FLATS = (-0.6, -0.4, -0.2, 0.15, 0.3, 0.45, 0.6, 0.75)  # a floor shadow's height over the subject's (< 0: in front)
SHEARS = tuple(np.linspace(-1.0, 1.0, 11))  # its sideways lean, px per px above the lowest row
WIDTHS = (0.5, 0.75, 1.0, 1.5, 2.0)  # its width over the subject's, about the middle of the subject's lowest row
BLUR = 1.5  # the blur of the matte the projections are matched to, px at the search size
MAX_SHIFT = 0.2  # a drop shadow lies at most this fraction of the diagonal away from the subject
MIN_SHIFT = 2  # ... and at least this far, px at the search size (less is the subject's own outline)
ACCEPT = 0.5  # the cosine (0..1) from which the best projection explains the matte
RESIDUAL = 0.1  # the share of the matte outside it from which a second projection must explain the rest ...
SECOND = 0.7  # ... with a cosine of at least this (a second light), else the first one's cover alone counts
LEVEL, MARGIN = 0.05, 12  # a projection covers where it passes LEVEL, widened by MARGIN px at the working size
SHARE = 0.5  # a shadow region is kept when this share of it lies within the cover ...
WIDE = 12  # ... and of it, what lies within this many px more of the cover (a real shadow is no exact projection)


def describe() -> dict:
    """The constants that decide what :func:`explained` gives (a part of :func:`mattekit.matting.shadow.describe`)."""
    names = ("SEARCH", "FLATS", "WIDTHS", "BLUR", "MAX_SHIFT", "MIN_SHIFT", "ACCEPT", "RESIDUAL", "SECOND", "LEVEL")
    names += ("MARGIN", "SHARE", "WIDE")
    return {"shears": [float(s) for s in SHEARS], **{name.lower(): globals()[name] for name in names}}


def explained(matte: np.ndarray, subject: np.ndarray, core: np.ndarray) -> np.ndarray | None:
    """Where one projection of the subject (``subject``: h x w alpha; ``core``: h x w bool, its lowest row is where a
    floor shadow starts), or two, explain the shadow ``matte`` (h x w): h x w float32, 1 there and 0 elsewhere; None
    when no projection does (no shadow, a shadow of another shape)."""
    rows = np.nonzero(core.any(axis=1))[0]
    base = (float(rows[-1]), float(np.nonzero(core[rows[-1]])[0].mean()))
    floor = matte * (1.0 - np.clip(subject, 0.0, 1.0))
    score, params = best_projection(matte, subject, base)
    if params is None or score < ACCEPT:
        return None
    cover = covered(subject, base, params)
    rest = floor * (1.0 - cover)
    if rest.sum() > RESIDUAL * floor.sum():
        score, params = best_projection(rest, subject, base)
        if params is not None and score >= SECOND:
            cover = np.maximum(cover, covered(subject, base, params))
    return cover


def kept(regions: np.ndarray, cover: np.ndarray) -> np.ndarray:
    """h x w float32: 1 over the shadow ``regions`` (h x w, > 0 within them) of which :data:`SHARE` lies within
    ``cover`` (h x w, :func:`explained`), where they are within :data:`WIDE` px of it; else 0. By region, so that a
    shadow of a shape the projections do not follow exactly (a 3-D subject seen from the light) keeps its ends."""
    count, labels = cv2.connectedComponents((regions > 0).astype(np.uint8), connectivity=8)
    within = np.bincount(labels.ravel(), weights=(cover > 0).ravel().astype(np.float64), minlength=count)
    keep = within >= SHARE * np.maximum(np.bincount(labels.ravel(), minlength=count), 1)
    keep[0] = False
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * WIDE + 1, 2 * WIDE + 1))
    return keep[labels].astype(np.float32) * cv2.dilate(cover.astype(np.uint8), disc)


def best_projection(matte: np.ndarray, subject: np.ndarray, base: tuple) -> tuple[float, tuple | None]:
    """(cosine 0..1, (flat, shear, width, dx, dy) at the working size) of the projection of ``subject`` (h x w alpha,
    ``base`` = (row, column) the middle of its lowest row) nearest to ``matte`` (h x w), both weighted by how far
    outside the subject a pixel is (1 - alpha); (0, None) for an empty matte."""
    height, width = matte.shape
    size = (max(8, round(width / SEARCH)), max(8, round(height / SEARCH)))
    alpha = np.clip(cv2.resize(subject.astype(np.float32), size, interpolation=cv2.INTER_AREA), 0.0, 1.0)
    small = cv2.resize(matte.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), BLUR)
    weight = 1.0 - alpha
    weighted = weight * small
    norm = float(np.sqrt((weighted * small).sum()))
    if norm <= 1e-6:
        return 0.0, None
    best: tuple[float, tuple | None] = (0.0, None)
    anchor = ((base[0] + 0.5) / SEARCH - 0.5, (base[1] + 0.5) / SEARCH - 0.5)
    for flat in FLATS:
        for shear in SHEARS:
            for wide in WIDTHS:
                laid = projection(alpha, anchor, (flat, float(shear), wide, 0.0, 0.0))
                energy = float((weight * laid * laid).sum())
                if energy > 1e-6:
                    score = float((weighted * laid).sum()) / np.sqrt(energy) / norm
                    best = max(best, (score, (flat, float(shear), wide, 0.0, 0.0)), key=lambda pair: pair[0])
    reach = int(np.ceil(MAX_SHIFT * np.hypot(*size)))
    energy = _correlation(weight, alpha * alpha, reach)
    scores = _correlation(weighted, alpha, reach) / np.sqrt(np.maximum(energy, 1e-6)) / norm
    dy, dx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    scores[(np.hypot(dx, dy) < MIN_SHIFT) | (energy <= 1e-6)] = 0.0
    at = np.unravel_index(np.argmax(scores), scores.shape)
    if scores[at] > best[0]:
        best = (float(scores[at]), (1.0, 0.0, 1.0, float(dx[at]) * SEARCH, float(dy[at]) * SEARCH))
    return best


def projection(alpha: np.ndarray, base: tuple, params: tuple) -> np.ndarray:
    """``alpha`` (h x w) projected by ``params`` = (flat, shear, width, dx, dy): a point (x, y) goes to
    (x0 + width * (x - x0) + shear * (y0 - y) + dx, y0 - flat * (y0 - y) + dy), ``base`` = (y0, x0) being the middle
    of the subject's lowest row; h x w float32."""
    flat, shear, wide, dx, dy = params
    row, column = base
    matrix = np.float32(
        [[wide, -shear, (1.0 - wide) * column + shear * row + dx], [0.0, flat, (1.0 - flat) * row + dy]]
    )
    return cv2.warpAffine(alpha, matrix, alpha.shape[::-1], flags=cv2.INTER_LINEAR, borderValue=0.0)


def covered(subject: np.ndarray, base: tuple, params: tuple) -> np.ndarray:
    """h x w float32: 1 where the projection ``params`` of ``subject`` (h x w alpha, ``base`` as in
    :func:`projection`) passes :data:`LEVEL`, widened by
    :data:`MARGIN` px (the shadow's blur, the fit's coarseness), else 0."""
    inside = (projection(np.clip(subject, 0.0, 1.0).astype(np.float32), base, params) > LEVEL).astype(np.uint8)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * MARGIN + 1, 2 * MARGIN + 1))
    return cv2.dilate(inside, disc).astype(np.float32)


def _correlation(first: np.ndarray, second: np.ndarray, reach: int) -> np.ndarray:
    """c[dy + reach, dx + reach] = the sum over x of first(x) * second(x - d) for shifts |dx|, |dy| <= ``reach``
    (zero beyond the edges), by FFT: (2 reach + 1) x (2 reach + 1)."""
    height, width = first.shape
    size = (height + 2 * reach, width + 2 * reach)
    product = np.fft.rfft2(first, size) * np.conj(np.fft.rfft2(second, size))
    return np.roll(np.fft.irfft2(product, size), (reach, reach), axis=(0, 1))[: 2 * reach + 1, : 2 * reach + 1]
