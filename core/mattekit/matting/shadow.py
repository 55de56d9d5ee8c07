"""The shadow a subject casts in its photo, as a matte: how much light it takes from the surface behind.

Learning-free. On a copy of the photo shrunk to :data:`WORK_SIDE` px, the surface behind is estimated without the
subject and without what is darker than its surroundings (a normalised convolution of the colours from outside the
subject, repeated with the darker pixels left out; where too few are within reach, the backdrop's fitted light of
:func:`mattekit.matting.backdrop.backdrop_behind`: :func:`surface_estimate`); a pixel's shadow is how much darker it
is than that surface (``1 - photo / surface`` in sRGB, so a black layer of that alpha over the surface gives the
photo back), kept where the photo keeps the surface's chromaticity (the more leniently the farther the estimate had
to reach for its colours: under a large shadow it is guessed from afar). The shadow regions are found on that
darkening smoothed by :data:`REGION_SIGMA` over the floor (the thin relief lines of a textured floor cancel out, a shadow does not),
grown from :data:`HIGH` down to :data:`GROW` (hysteresis), opened by :data:`OPENING` px (what is thinner is texture or
the subject's outline), and kept where they touch the subject's core (:func:`near_subject`; its soft edge may hold
the shadow) and are not far larger than it (a dark background is no shadow); within them the matte is the darkening
itself, faded in between :data:`LOW` and :data:`FULL`, less what a mix with the subject's own colour next to it
explains better than a darkened surface (a fringe of hair or fur: :func:`mixed_share`), and less a thin line hugging
the outline on the side facing away from the shadow (one light casts it to one side: the subject's own lit rim,
:func:`lit_side`). On a floor whose dark parts are many away from the subject too
(stripes, tiles, a textured photo floor's dark patches of its own colour: :func:`pattern_share`), or on a textured one (the backdrop fit's spread past :data:`TEXTURED`),
nothing is kept, and the note says why (:func:`found`).

Images sRGB float32 H x W x 3|4 in [0,1] (or uint8/uint16), alphas and mattes H x W float32 in [0,1]
(0: no shadow, 1: black).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..ops.filters import gaussian_blur
from ..ops.pixels import linear_to_srgb, srgb_to_linear, unit_float
from ..ops.resizing import resize
from .backdrop import backdrop_behind

WORK_SIDE = 480  # the long side of the copy the shadow is estimated on, px
SUBJECT = 0.05  # alpha above which a pixel is the subject's (left out of the surface estimate)
SURFACE_SIGMA = 0.04  # the surface estimate's blur, a fraction of the working copy's long side
FEW = 0.05  # where the surface estimate's weights within its blur are fewer, it is the backdrop's fitted light
DARKER = 0.08  # a pixel this much darker than the surface estimate is left out of the next round
NEAR = 4.0  # the surface estimate trusts a pixel fully from this many blur sigmas away from the subject
ROUNDS = 3  # rounds of the surface estimate
LOW, FULL = 0.03, 0.08  # within a shadow region the matte fades in from a darkening of LOW to all of it at FULL
HIGH, GROW = 0.16, 0.1  # a shadow region holds a smoothed darkening above HIGH and grows over what passes GROW
REGION_SIGMA = 2.0  # the blur of the darkening the regions are found on, px at the working size
OPENING = 5  # the regions are opened by an ellipse this wide, px at the working size (thinner: texture, outlines)
CHROMA = 0.05  # the chromaticity distance at which a darkening counts half (a shadow keeps the surface's) ...
RELAX = 2.0  # ... widened up to 1 + RELAX times next to the subject (the surface there is guessed from afar)
SUPPORT = 0.5  # the weight within the estimate's blur (0..1) from which its support counts as its own
REACH = 0.02  # a shadow region touches the subject within this fraction of the working copy's diagonal
MAX_AREA = 3.0  # a region larger than this many times the subject's area is a dark background, not its shadow
CORE = 0.9  # a shadow region touches the subject where its alpha passes this (its soft edge may hold the shadow)
PATTERN = (0.1, 0.15)  # the share of dark pixels away from the subject from which the floor counts as patterned
# (the matte fades to nothing between the two: no stripes taken for a shadow; chosen on the drawn scenes' textured
# floors, tuning half: their dark patches away from the subject 0.12-0.69 (one 0.04, kept), the other kinds' <= 0.06)
PATTERN_CHROMA = 3.0  # ... counting a dark pixel as far as it keeps the surface's chromaticity within this many CHROMA
SHADING_BAND = 0.15  # the floor's slow shading is fitted within this fraction of the diagonal around the subject
SHADING_DEGREE = 2  # ... by a polynomial of this degree in x and y ...
SHADING_TRIM = 0.1  # ... leaving out, round by round, what is this much darker than the fit (a shadow)
FRINGE = 0.02  # the subject's colour next to a pixel: its core's within this fraction of the diagonal
MIXED = 0.2  # a darkening is no shadow as far as a mix with the subject's colour explains it better by this share
THIN = 5  # px at the working size: a matte this close to the core's outline, with none farther out than twice this
# within twice this, is thin
DIRECTION = (0.2, 0.4)  # the length of the wide matte's mean direction from the subject (0: all round, 1: one
# side) from which the shadow's direction counts at all, and fully
FACING = (0.0, 0.5)  # how far the outline faces away from that direction (the cosine) from which the thin matte
# there is left out, and wholly
CLOSE = 4  # the outline is the core's, holes filled and closed by an ellipse CLOSE x THIN wide (notches between
# leaves, where the shadow shows through, are no outline)
BASE = 0.15  # the subject's lowest share of its height, where the thin matte is kept (its contact shadow)
SOFT = 1.5  # the blur of the result at the working size, px
TEXTURED = (0.15, 0.2)  # the backdrop fit's spread (matting.backdrop: the clean surface's RMS deviation from a
# smooth fit, relative to its light) up to which the matte is kept whole, and from which the surface is textured and
# the matte left empty (it fades between)
TEXTURED_NOTE = (
    "no shadow kept: the surface behind the subject is textured or patterned, and its own dark patches cannot be "
    "told from a shadow."
)


@dataclass
class Found:
    """A shadow matte (H x W float32 in [0, 1]) and the note to show the user with it (None, or one sentence: why
    it is empty)."""

    matte: np.ndarray
    note: str | None = None


def describe() -> dict:
    """What decides the bytes of a shadow matte: the method and its constants (a roto job records it, so that frames
    made by another version of the estimate are not taken for finished ones)."""
    constants = ("WORK_SIDE", "SUBJECT", "SURFACE_SIGMA", "FEW", "DARKER", "NEAR", "ROUNDS", "LOW", "FULL")
    constants += (  # (one a line: ruff's format)
        "HIGH",
        "GROW",
        "REGION_SIGMA",
        "OPENING",
        "CHROMA",
        "RELAX",
        "REACH",
        "MAX_AREA",
        "CORE",
        "PATTERN",
        "SOFT",
    )
    constants += ("SHADING_BAND", "SHADING_DEGREE", "SHADING_TRIM", "TEXTURED", "PATTERN_CHROMA", "FRINGE", "MIXED")
    constants += ("THIN", "DIRECTION", "FACING", "CLOSE", "BASE")
    method = "darkening against a surface estimate filled in by the backdrop's fit; none on a textured surface"
    return {"method": method, **{name.lower(): globals()[name] for name in constants}}


def estimate(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The shadow matte (H x W float32 in [0,1]) that the subject of ``alpha`` (H x W) casts in ``image``
    (H x W x 3|4 sRGB); all zeros when there is no subject or the surface is textured (:func:`found`)."""
    return found(image, alpha).matte


def found(image: np.ndarray, alpha: np.ndarray) -> Found:
    """:func:`estimate`'s matte with its note: on a textured surface (the spread of the backdrop's fit,
    :func:`mattekit.matting.backdrop.backdrop_behind` at the working size, past :data:`TEXTURED`) or a patterned
    one (:func:`pattern_share`) the matte is empty and the note (:data:`TEXTURED_NOTE`) says why."""
    height, width = alpha.shape
    scale = min(1.0, WORK_SIDE / max(height, width))
    small = (max(1, round(height * scale)), max(1, round(width * scale)))
    colours = unit_float(np.asarray(image)[..., :3])
    if scale < 1.0:
        colours = resize(colours, *small, method="area")
        subject = resize(np.asarray(alpha, np.float32), *small, method="area")
    else:
        subject = np.asarray(alpha, np.float32)
    colours = np.ascontiguousarray(colours, dtype=np.float32)
    if not (subject > SUBJECT).any():
        return Found(np.zeros((height, width), np.float32))
    behind = backdrop_behind(srgb_to_linear(colours), subject)
    plain = float(np.clip((TEXTURED[1] - behind.spread) / (TEXTURED[1] - TEXTURED[0]), 0.0, 1.0))
    if plain == 0.0:
        return Found(np.zeros((height, width), np.float32), TEXTURED_NOTE)
    matte, pattern = small_estimate(colours, subject, linear_to_srgb(behind.light))
    if pattern == 0.0:
        return Found(np.zeros((height, width), np.float32), TEXTURED_NOTE)
    matte *= plain * pattern
    if scale < 1.0:
        matte = resize(matte, height, width)
    return Found(np.clip(matte, 0.0, 1.0))


def small_estimate(colours: np.ndarray, subject: np.ndarray, backdrop: np.ndarray) -> tuple[np.ndarray, float]:
    """:func:`estimate` at the working size: ``colours`` h x w x 3, ``subject`` h x w alpha, ``backdrop`` h x w x 3
    (the backdrop's light, sRGB) -> (h x w matte, the factor in [0, 1] a patterned floor leaves it: not applied)."""
    inside = subject > SUBJECT
    colours = gaussian_blur(colours, 1.0)
    surface, support = surface_estimate(colours, inside, backdrop)
    darkening = 1.0 - _grey(colours) / np.maximum(_grey(surface), 1e-3)
    shaded = darkening - floor_shading(darkening, inside)  # what is left once the floor's slow shading is taken out
    chroma = np.linalg.norm(_chromaticity(colours) - _chromaticity(surface), axis=-1)
    tolerance = CHROMA * (1.0 + RELAX * (1.0 - np.clip(support / SUPPORT, 0.0, 1.0)))
    kept = np.exp(-np.square(chroma / tolerance) * np.log(2.0))
    kept *= 1.0 - np.clip(mixed_share(colours, surface, subject) / MIXED, 0.0, 1.0)
    matte = np.clip(shaded, 0.0, 1.0) * np.clip((shaded - LOW) / (FULL - LOW), 0.0, 1.0) * kept
    core = subject > CORE
    if not core.any():
        core = inside
    smooth = np.where(inside, shaded, _floor_blur(shaded, inside)) * kept
    ellipse = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (OPENING, OPENING))
    candidates = cv2.morphologyEx((smooth > GROW).astype(np.uint8), cv2.MORPH_OPEN, ellipse) > 0
    matte *= near_subject(candidates, candidates & (smooth > HIGH), core)
    matte *= lit_side(matte, core)
    alike = np.exp(-np.square(chroma / (PATTERN_CHROMA * CHROMA)) * np.log(2.0))  # (a wall of another colour: no)
    share = pattern_share(darkening * alike, inside)
    pattern = float(np.clip((PATTERN[1] - share) / (PATTERN[1] - PATTERN[0]), 0.0, 1.0))
    return gaussian_blur(matte.astype(np.float32), SOFT), pattern


def surface_estimate(colours: np.ndarray, inside: np.ndarray, backdrop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The surface behind (h x w x 3): the colours outside the subject (``inside``: h x w bool) blurred by a
    normalised convolution, in :data:`ROUNDS` rounds that each leave out what is :data:`DARKER` than the last
    round's estimate; where their weights within reach are fewer than :data:`FEW` (under a large shadow, beside
    the subject) it is the ``backdrop``'s light (h x w x 3 sRGB: :func:`mattekit.matting.backdrop.backdrop_behind`,
    a smooth fit that follows a sweep's gradient to the frame's edge). With its
    support (h x w, 0..1): the weight the pixels outside the subject have within its blur (low next to the
    subject: guessed from farther away)."""
    sigma = SURFACE_SIGMA * max(inside.shape)
    distance = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 5)
    weight = np.clip(distance / (NEAR * sigma), 0.0, 1.0) * (distance > 2)  # (what lies next to the subject is
    # where its shadow most often is: it counts less)
    outside = weight.copy()
    surface, support = colours, gaussian_blur(weight, sigma, coarse=True)
    for _ in range(ROUNDS):
        num = gaussian_blur(colours * weight[..., None], sigma, coarse=True)
        den = gaussian_blur(weight, sigma, coarse=True)[..., None]
        surface = np.where(den > FEW, num / np.maximum(den, FEW), backdrop)
        darker = _grey(colours) < (1.0 - DARKER) * _grey(surface)
        weight = outside * ~darker
    return surface, support


def floor_shading(darkening: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """The floor's slow shading around the subject that the surface estimate missed (h x w, >= 0, in the units of
    ``darkening``, h x w): a polynomial of :data:`SHADING_DEGREE` in x and y fitted by least squares to the
    darkening of the floor within :data:`SHADING_BAND` of the diagonal from the subject (``inside``: h x w bool), in
    :data:`ROUNDS` rounds that each leave out what is :data:`SHADING_TRIM` darker than the last fit (the shadows).
    Next to the subject the surface is guessed from farther out, so a floor darkening towards it reads as darkening
    there; a shadow is compact and strong, a shading spreads smoothly: the fit takes the one and not the other.
    Zero where it would brighten (an estimate too dark is not corrected: that would only find more shadow)."""
    height, width = inside.shape
    diagonal = float(np.hypot(height, width))
    distance = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 5)
    band_rows, band_cols = np.nonzero((distance > 2) & (distance < SHADING_BAND * diagonal))
    rows, cols = np.nonzero(inside)
    centre, half = (rows.mean(), cols.mean()), 0.5 * diagonal
    powers = [(degree - i, i) for degree in range(SHADING_DEGREE + 1) for i in range(degree + 1)]  # of x, of y
    across, down = _powers((band_cols - centre[1]) / half), _powers((band_rows - centre[0]) / half)
    basis = np.stack([across[a] * down[b] for a, b in powers])  # terms x band pixels
    values = darkening[band_rows, band_cols].astype(np.float64)
    used = values < SHADING_TRIM
    for _ in range(ROUNDS):
        if np.count_nonzero(used) < 10 * len(powers):
            return np.zeros_like(darkening)
        chosen = basis[:, used]  # the normal equations: a few terms, many pixels
        coefficients = np.linalg.lstsq(chosen @ chosen.T, chosen @ values[used], rcond=None)[0]
        used = values - coefficients @ basis < SHADING_TRIM
    across, down = _powers((np.arange(width) - centre[1]) / half), _powers((np.arange(height) - centre[0]) / half)
    fit = sum(c * np.outer(down[b], across[a]) for c, (a, b) in zip(coefficients, powers))
    return np.maximum(fit, 0.0).astype(np.float32)


def _powers(values: np.ndarray) -> list[np.ndarray]:
    """``values`` (n) to the powers 0 .. :data:`SHADING_DEGREE`, by products (a power is far slower)."""
    out = [np.ones_like(values)]
    for _ in range(SHADING_DEGREE):
        out.append(out[-1] * values)
    return out


def pattern_share(darkening: np.ndarray, inside: np.ndarray) -> float:
    """The share (0..1) of the pixels farther from the subject (``inside``: h x w bool) than 4 x :data:`REACH` of the
    diagonal whose ``darkening`` (h x w, 1 - photo / surface) passes :data:`HIGH`: on a plain floor its shadows
    (few and near the subject), on a floor of dark stripes or tiles its pattern, on a floor shaded more steeply than
    the surface estimate follows its shading (which would count as shadow beside the subject too)."""
    distance = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 5)
    away = distance > 4 * REACH * np.hypot(*inside.shape)
    return float(np.count_nonzero(darkening[away] > HIGH)) / max(1, np.count_nonzero(away))


def mixed_share(colours: np.ndarray, surface: np.ndarray, subject: np.ndarray) -> np.ndarray:
    """How far (h x w, 0..1) each pixel's difference from the ``surface`` (h x w x 3) is better explained by the
    subject's nearby colour mixed in (a fringe of hair or fur: ``a F + (1 - a) B``) than by the surface darkened (a
    shadow: ``(1 - s) B``); F is the colour of the nearest pixel of the subject's core (alpha ``subject`` above
    :data:`CORE`), within :data:`FRINGE` of the diagonal (0 farther out). Where F is a darker copy of the surface's
    colour the two read alike and the share is 0."""
    share = np.zeros(subject.shape, np.float32)
    core = subject > CORE
    if not core.any():
        return share
    distance, labels = cv2.distanceTransformWithLabels(
        (~core).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    near = distance < FRINGE * np.hypot(*subject.shape)  # (the core too: its own colour, as a fringe's)
    rows, cols = np.nonzero(core)  # the labels number the core's pixels in this (row-major) order
    nearest = labels[near] - 1
    behind = surface[near]
    difference = colours[near] - behind
    errors = []
    for direction in (-behind, colours[rows[nearest], cols[nearest]] - behind):
        unit = direction / np.maximum(np.linalg.norm(direction, axis=-1, keepdims=True), 1e-4)
        along = np.clip((difference * unit).sum(-1, keepdims=True), 0.0, None)
        errors.append(np.linalg.norm(difference - along * unit, axis=-1))
    size = np.maximum(np.linalg.norm(difference, axis=-1), 1e-3)
    share[near] = np.clip((errors[0] - errors[1]) / size, 0.0, 1.0)
    return share


def lit_side(matte: np.ndarray, core: np.ndarray) -> np.ndarray:
    """The factor (h x w, 0..1) that leaves out the subject's own rim on its lit side: one light casts the shadow
    to one side, so a thin matte (``matte``: h x w, 0..1; within :data:`THIN` px either side of the outline of the
    ``core``, h x w bool, holes filled and closed by :data:`CLOSE`; no wide matte, farther out than 2 :data:`THIN`, within as
    far) where the outline faces away from the shadow (:data:`FACING`) is the subject's edge. The shadow's
    direction is the matte-weighted mean of the unit offsets from the core's centre to the wide matte; its length
    (0: a ring all round, 1: one side) past :data:`DIRECTION` is the confidence (none: all ones). The subject's
    lowest :data:`BASE` of its height is left (a contact shadow lies all round whatever the light)."""
    factor = np.ones_like(matte)
    outlines = cv2.findContours(core.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
    filled = cv2.drawContours(np.zeros(core.shape, np.uint8), outlines, -1, 1, -1)  # (a shadow seen through a hole)
    closing = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (CLOSE * THIN + 1,) * 2)
    filled = cv2.morphologyEx(filled, cv2.MORPH_CLOSE, closing)  # (or between leaves)
    distance = cv2.distanceTransform(1 - filled, cv2.DIST_L2, 5)
    wide = (distance > 2 * THIN) & (matte > LOW)
    rows, cols = np.nonzero(core)
    ys, xs = np.nonzero(wide)
    if ys.size == 0:
        return factor
    offsets = np.stack([ys - rows.mean(), xs - cols.mean()], axis=1)
    weights = matte[ys, xs]
    mean = (offsets / np.maximum(np.linalg.norm(offsets, axis=1, keepdims=True), 1.0) * weights[:, None]).sum(0)
    mean /= weights.sum()
    length = float(np.linalg.norm(mean))
    sure = float(np.clip((length - DIRECTION[0]) / (DIRECTION[1] - DIRECTION[0]), 0.0, 1.0))
    if sure == 0.0:
        return factor
    reach = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (4 * THIN + 1,) * 2)
    inner = cv2.distanceTransform(filled, cv2.DIST_L2, 5)  # (its own dark edge just inside the alpha too)
    thin = (distance <= THIN) & (inner <= THIN) & (cv2.dilate(wide.astype(np.uint8), reach) == 0)
    thin[int(rows.max() - BASE * (rows.max() - rows.min())) :] = False
    ys, xs = np.nonzero(thin)
    signed = distance - inner
    down, across = cv2.Sobel(signed, cv2.CV_32F, 0, 1)[ys, xs], cv2.Sobel(signed, cv2.CV_32F, 1, 0)[ys, xs]
    facing = -(down * mean[0] + across * mean[1]) / (length * np.maximum(np.hypot(down, across), 1e-6))  # (outward)
    factor[ys, xs] -= sure * np.clip((facing - FACING[0]) / (FACING[1] - FACING[0]), 0.0, 1.0)
    return factor


def near_subject(candidates: np.ndarray, seeds: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """h x w float32: 1 over the regions of ``candidates`` (h x w bool) that hold ``seeds`` (h x w bool) within
    :data:`REACH` of the subject (``inside``: h x w bool, its core) and are at most :data:`MAX_AREA` times its area,
    else 0, softened at the edge."""
    reach = max(1, int(round(REACH * np.hypot(*inside.shape))))
    ring = cv2.dilate(inside.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2))
    count, labels, stats, _ = cv2.connectedComponentsWithStats((candidates & ~inside).astype(np.uint8), connectivity=8)
    touching = np.unique(labels[(ring > 0) & seeds & (labels > 0)])
    keep = np.zeros(count, bool)
    keep[touching] = stats[touching, cv2.CC_STAT_AREA] <= MAX_AREA * inside.sum()
    region = keep[labels].astype(np.float32)
    return np.clip(gaussian_blur(cv2.dilate(region, np.ones((5, 5), np.uint8)), 1.5), 0.0, 1.0)


def _floor_blur(darkening: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """``darkening`` (h x w) blurred by :data:`REGION_SIGMA` over the pixels outside the subject (``inside``: h x w
    bool) alone, a normalised convolution: the subject's own colours do not dim a contact shadow beside it."""
    floor = (~inside).astype(np.float32)
    blurred = gaussian_blur((darkening * floor).astype(np.float32), REGION_SIGMA)
    return blurred / np.maximum(gaussian_blur(floor, REGION_SIGMA), 1e-3)


def _grey(colours: np.ndarray) -> np.ndarray:
    """Mean of the three channels (h x w; summed in turn, as ``mean(axis=-1)`` does, five times faster)."""
    return _sum(colours) / np.float32(3.0)


def _sum(colours: np.ndarray) -> np.ndarray:
    """The three channels' sum (h x w)."""
    return colours[..., 0] + colours[..., 1] + colours[..., 2]


def _chromaticity(colours: np.ndarray) -> np.ndarray:
    """Each channel's share of the sum (h x w x 3); grey where the sum is near black."""
    total = _sum(colours)[..., None]
    return np.where(total > 0.03, colours / np.maximum(total, 1e-6), 1.0 / 3.0)
