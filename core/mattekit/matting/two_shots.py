"""Two shots, exact: the alpha and true colours of a subject shot twice on two backdrops (Smith & Blinn's
triangulation), with the second shot aligned to the first.

With the backdrops' light B1, B2 known per pixel (:func:`mattekit.matting.backdrop.backdrop_pair`) and the shots
C1 = aF + (1 - a) B1, C2 = aF + (1 - a) B2 in linear light (F the subject's straight colour):
``a = 1 - ((C1 - C2) . (B1 - B2)) / |B1 - B2|^2`` (least squares over RGB) and ``aF`` the mean of both shots'
``C - (1 - a) B``. The second shot is first aligned (a sub-pixel shift by phase correlation of the gradients, which
the backdrops' change does not move, and an exposure gain from the subject's pixels, which the backdrops' change
does not reach). Where the shots differ in more than the backdrop (the subject moved, another framing) the run is
refused with one sentence saying by how much. No network is involved.

Images: sRGB-encoded float32 H x W x 3|4 in [0, 1] (a fourth channel is left out); alphas H x W in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InputError
from ..ops.pixels import linear_to_srgb, srgb_to_linear, unit_float
from .backdrop import BackdropPair, backdrop_pair

WORK = 1024  # px: the long side at which the alignment is worked out (a larger photo is reduced for it)
MOST_SHIFT = 3.0  # px: a larger shift between the shots is another framing or a moved subject
GAIN_SPAN = 0.06  # the exposure gain is looked for within 1 +- this (a remote trigger leaves +-3 %)
LEAST_DIFFERENCE = 0.03  # linear light: backdrops that differ less give no alpha
DISAGREE = 0.1  # a subject pixel whose shots disagree by this (in backdrop differences) is not the backdrop's doing
SOFTEN = 1.5  # px: the Gaussian blur under which a still subject's two shots agree
MOST_DISAGREEING = 0.05  # the share of the subject's pixels that may disagree before the run is refused
LUMINANCE = np.array([0.2126, 0.7152, 0.0722], np.float32)  # Rec. 709 weights of linear RGB
CLEAR = 0.01  # an alpha this near 0 or 1 is 0 or 1
SAME = "two shots need the same subject and camera"


@dataclass
class TwoShots:
    """The result of :func:`two_shot_matte`: ``alpha`` (H x W), straight ``colours`` (H x W x 3 sRGB, the photo's
    dtype: its own colours where alpha is 0), the
    ``shift`` (dx, dy px) and exposure ``gain`` that aligned the second shot, and the backdrops (:class:`BackdropPair`,
    linear light)."""

    alpha: np.ndarray
    colours: np.ndarray
    shift: tuple[float, float]
    gain: float
    backdrops: BackdropPair


def _gradients(linear: np.ndarray) -> np.ndarray:
    """H x W float32 gradient magnitude of the luminance of ``linear`` (H x W x 3), less its blur by 4 px."""
    grey = linear @ LUMINANCE
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = cv2.magnitude(gx, gy)
    return magnitude - cv2.GaussianBlur(magnitude, (0, 0), 4.0)  # (a backdrop's slow shading is no edge)


def shift_between(first: np.ndarray, second: np.ndarray) -> tuple[float, float]:
    """(dx, dy) in pixels by which ``second`` (H x W x 3 linear) shows the scene moved against ``first``: phase
    correlation of their gradient magnitudes (:func:`_gradients`, whose edges stay where they are when a backdrop
    turns from white to black), under a Hann window."""
    a, b = _gradients(first), _gradients(second)
    window = cv2.createHanningWindow((a.shape[1], a.shape[0]), cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(a, b, window)
    return float(dx), float(dy)


def _taps(offset: float) -> np.ndarray:
    """The 8 Lanczos (a = 4) weights that sample a row at ``offset`` in [0, 1) past a pixel: taps at -3..4."""
    t = np.arange(-3, 5, dtype=np.float64) - offset
    weights = np.sinc(t) * np.sinc(t / 4.0)
    return (weights / weights.sum()).astype(np.float32)


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` (H x W x C float32) moved by (``dx``, ``dy``) px (a pixel takes the value ``(dx, dy)`` before it:
    as :func:`cv2.warpAffine` moves by the matrix's translation), Lanczos-4 as two separable 8-tap filters, the
    border's pixels repeated."""
    (nx, fx), (ny, fy) = [(int(np.floor(-d)), float(-d - np.floor(-d))) for d in (dx, dy)]
    pad = 4 + max(abs(nx), abs(ny))
    grown = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    grown = cv2.sepFilter2D(grown, -1, _taps(fx), _taps(fy), anchor=(3, 3), borderType=cv2.BORDER_REPLICATE)
    h, w = image.shape[:2]
    return grown[pad + ny : pad + ny + h, pad + nx : pad + nx + w].reshape(image.shape)


def exposure_gain(first: np.ndarray, second: np.ndarray, where: np.ndarray | None = None, gain: float = 1.0) -> float:
    """The exposure gain of ``second`` against ``first`` (aligned, H x W x 3 linear) over the pixels ``where`` (H x W
    bool; None: all): the commonest ratio of their luminances within 1 +- :data:`GAIN_SPAN`, which the subject's
    opaque pixels share (the backdrops' ratio is another, and so is a highlight's); ``gain`` where too few pixels
    show one."""
    a, b = (
        (first @ LUMINANCE, second @ LUMINANCE)
        if where is None
        else (first[where] @ LUMINANCE, second[where] @ LUMINANCE)
    )
    lit = (a > 0.05) & (b > 0.05)  # (darker pixels: 8-bit steps of several per cent)
    ratios = np.log(b[lit] / a[lit])
    ratios = ratios[np.abs(ratios) < GAIN_SPAN]
    if ratios.size < 64:
        return gain
    counts, edges = np.histogram(ratios, bins=int(2 * GAIN_SPAN / 0.002), range=(-GAIN_SPAN, GAIN_SPAN))
    peak = 0.5 * (edges[counts.argmax()] + edges[counts.argmax() + 1])
    return float(np.exp(np.median(ratios[np.abs(ratios - peak) < 0.006])))


def aligned(first: np.ndarray, second: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, tuple[float, float], float]:
    """(``second`` aligned to ``first``: shifted back and its exposure matched, (dx, dy), gain); both H x W x 3
    linear, at ``scale`` times the photo's size. InputError, one sentence, when the shift is over :data:`MOST_SHIFT`
    px of the photo."""
    dx, dy = shift_between(first, second)
    distance = float(np.hypot(dx, dy)) / scale
    if distance > MOST_SHIFT:
        raise InputError(
            f"The second shot differs from the first by {distance:.0f} px (the subject moved or the framing "
            f"changed); {SAME}."
        )
    moved = shifted(second, -dx, -dy)
    gain = exposure_gain(first, moved)
    moved *= np.float32(1.0 / gain)
    return moved, (dx, dy), gain


def _across(values: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """``values`` (H x W x 3) less their part along the unit ``direction`` (H x W x 3): what a backdrop change along it
    cannot make."""
    return values - (values * direction).sum(axis=2, keepdims=True) * direction


def refined(first: np.ndarray, second: np.ndarray, pair: BackdropPair, alpha: np.ndarray, shift, gain) -> tuple:
    """((dx, dy), gain) refined from a first alignment (``second`` as shot, ``alpha`` the first triangulation's):
    Gauss-Newton steps (:func:`_shift_step`), then the gain over the opaque subject's inside, both shots blurred by
    :data:`SOFTEN` px (what two samplings of fine detail differ by averages out)."""
    direction = pair.difference / np.maximum(np.sqrt((pair.difference**2).sum(axis=2, keepdims=True)), 1e-6)
    opaque = cv2.erode((alpha > 0.97).astype(np.uint8), np.ones((5, 5), np.uint8))
    near = cv2.dilate((alpha > 0.02).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    dx, dy = shift
    for _ in range(2):
        step = _shift_step(first, shifted(second, -dx, -dy), direction, near, opaque.astype(bool), gain)
        if step is None:
            break
        dx, dy = dx + step[0], dy + step[1]
    inside = cv2.erode(opaque, np.ones((5, 5), np.uint8)).astype(bool)
    if inside.sum() > 64:
        blurred = [cv2.GaussianBlur(x, (0, 0), SOFTEN) for x in (first, shifted(second, -dx, -dy))]
        gain = exposure_gain(*blurred, inside, gain)
    return (float(dx), float(dy)), gain


def _shift_step(first, moved, direction, near, opaque, gain) -> tuple[float, float] | None:
    """The (dx, dy) step that brings ``moved`` (the second shot shifted so far, H x W x 3 linear) onto ``first``
    to first order, from two facts of a still subject: their colours across the backdrops' difference
    (``direction``, unit H x W x 3) are the same near the subject (``near``), and the ``opaque`` subject's
    colours are the same (after the exposure ``gain``); None where the pixels hold too little detail."""
    gy, gx = np.gradient(moved, axis=(0, 1))
    rows = [np.stack([_across(gx, direction)[near], _across(gy, direction)[near]], axis=-1)]
    values = [gain * _across(first, direction)[near] - _across(moved, direction)[near]]
    if opaque.sum() > 64:
        rows.append(np.stack([gx[opaque], gy[opaque]], axis=-1))
        values.append(gain * first[opaque] - moved[opaque])
    design = np.concatenate([r.reshape(-1, 2) for r in rows]).astype(np.float64)
    normal = design.T @ design
    if np.linalg.cond(normal) > 1e6:
        return None
    step = np.linalg.solve(normal, design.T @ np.concatenate([v.ravel() for v in values]))
    return float(step[0]), float(step[1])


def triangulate(first: np.ndarray, second: np.ndarray, pair: BackdropPair) -> np.ndarray:
    """The alpha (H x W float32 in [0, 1]) of two aligned shots (H x W x 3 linear) over the backdrops ``pair``, by
    least squares over RGB; within :data:`CLEAR` of 0 or 1 it is 0 or 1 (a backdrop's noise is no haze)."""
    change = pair.difference
    size = np.maximum(np.einsum("ijk,ijk->ij", change, change), np.float32(1e-8))
    alpha = 1.0 - np.einsum("ijk,ijk->ij", first - second, change) / size
    alpha[alpha < CLEAR] = 0.0
    alpha[alpha > 1.0 - CLEAR] = 1.0
    return alpha.astype(np.float32, copy=False)


def colours_at(first: np.ndarray, second: np.ndarray, pair: BackdropPair, alpha: np.ndarray, where) -> np.ndarray:
    """The subject's straight colours (N x 3 linear, in [0, 1]) at the N pixels ``where`` (H x W bool, alpha > 0 there)
    of two aligned shots: the mean of both shots' ``(C - (1 - alpha) B) / alpha``."""
    a = alpha[where][:, None]
    total = first[where] + second[where] - (1.0 - a) * (pair.first[where] + pair.second[where])
    return np.clip(total * (np.float32(0.5) / a), 0.0, 1.0)


def disagreement(first: np.ndarray, second: np.ndarray, pair: BackdropPair, alpha: np.ndarray) -> float:
    """The share of the subject's pixels (alpha > 0.05) where the shots' difference (blurred by :data:`SOFTEN` px:
    what two samplings of fine detail differ by is no motion) is not the backdrops' difference scaled (its part across ``pair.difference`` over :data:`DISAGREE` of it): 0 for two shots of one
    still subject, large where it moved."""
    subject = alpha > 0.05
    if not subject.any():
        return 0.0
    change = pair.difference[subject]
    difference = (cv2.GaussianBlur(first - second, (0, 0), SOFTEN).reshape(first.shape))[subject]
    size = np.maximum((change * change).sum(axis=1), 1e-8)
    along = (difference * change).sum(axis=1) / size
    across = np.sqrt(((difference - along[:, None] * change) ** 2).sum(axis=1) / size)
    return float((across > DISAGREE).mean())


def _checked_pair(first: np.ndarray, second: np.ndarray, clean: np.ndarray | None = None) -> BackdropPair:
    """The backdrops of two aligned shots (:func:`backdrop_pair`); InputError when they differ too little or by a
    textured light (no confidence in the fit: :func:`mattekit.matting.backdrop.confidence`)."""
    pair = backdrop_pair(first, second, clean=clean)
    size = float(np.sqrt((pair.difference**2).sum(axis=2)).mean())
    if size < LEAST_DIFFERENCE:
        raise InputError(
            f"The two shots' backdrops differ by only {100 * size:.1f} % of full light, too little to tell the "
            "subject from them; shoot the second on another backdrop (a white and a black card, or the backdrop "
            "light on and off)."
        )
    if pair.confidence <= 0.0:
        raise InputError(
            f"The two shots' backdrops differ by a textured light (it strays {100 * pair.spread:.0f} % from a smooth "
            "one), so the backdrop behind the subject cannot be told; shoot both on plain backdrops."
        )
    return pair


def _linear(image: np.ndarray) -> np.ndarray:
    """The colours of an sRGB image (H x W x 3|4, float in [0, 1] or uint8/uint16) in linear light, H x W x 3
    float32 (integers through a table of their values)."""
    if image.dtype.kind in "ui":
        table = srgb_to_linear(np.arange(np.iinfo(image.dtype).max + 1, dtype=np.float32) / np.iinfo(image.dtype).max)
        return table[image[..., :3]]
    return srgb_to_linear(unit_float(image)[..., :3])


def _alignment(first: np.ndarray, shot: np.ndarray, scale: float) -> tuple[tuple[float, float], float, np.ndarray]:
    """((dx, dy), gain, the clean backdrop's grid) aligning ``shot`` to ``first`` (H x W x 3 linear, at ``scale``
    times the photo's size; the shift in their pixels): :func:`aligned`, a first triangulation, :func:`refined`;
    InputError, one sentence, where the shots disagree on more than :data:`MOST_DISAGREEING` of the subject."""
    other, shift, gain = aligned(first, shot, scale)
    pair = _checked_pair(first, other)
    alpha = triangulate(first, other, pair)
    shift, gain = refined(first, shot, pair, alpha, shift, gain)
    other = shifted(shot, -shift[0], -shift[1]) * np.float32(1.0 / gain)
    pair = _checked_pair(first, other, pair.grid)
    alpha = triangulate(first, other, pair)
    share = disagreement(first, other, pair, alpha)
    if share > MOST_DISAGREEING:
        raise InputError(
            f"The second shot differs from the first in more than the backdrop on {100 * share:.0f} % of the "
            f"subject after alignment (the subject moved or the framing changed); {SAME}."
        )
    return shift, gain, pair.grid


def two_shot_matte(image: np.ndarray, second: np.ndarray) -> TwoShots:
    """The subject's alpha and colours from ``image`` and ``second`` (H x W x 3|4 sRGB, float or uint8/uint16):
    aligned at most :data:`WORK` px across (:func:`_alignment`), each backdrop fitted
    (:func:`mattekit.matting.backdrop.backdrop_pair`), then :func:`triangulate` at full size. InputError, one
    sentence, for another size, a shift over :data:`MOST_SHIFT` px, backdrops too alike or textured, or shots that
    disagree on more than :data:`MOST_DISAGREEING` of the subject."""
    if second.shape[:2] != image.shape[:2]:
        raise InputError(
            f"The second shot is {second.shape[1]}x{second.shape[0]} but the first is "
            f"{image.shape[1]}x{image.shape[0]}; {SAME}."
        )
    first, shot = _linear(image), _linear(second)
    height, width = first.shape[:2]
    scale = min(1.0, WORK / max(height, width))
    small = (max(8, round(width * scale)), max(8, round(height * scale)))
    if scale < 1.0:
        shift, gain, grid = _alignment(
            *(cv2.resize(x, small, interpolation=cv2.INTER_AREA) for x in (first, shot)), scale
        )
        shift = (shift[0] * width / small[0], shift[1] * height / small[1])
    else:
        shift, gain, grid = _alignment(first, shot, 1.0)
    other = shifted(shot, -shift[0], -shift[1])
    other *= np.float32(1.0 / gain)
    pair = _checked_pair(first, other, grid)
    alpha = triangulate(first, other, pair)
    seen = alpha > 0
    colours = image[..., :3].copy()  # the photo's own where no subject is
    found = linear_to_srgb(colours_at(first, other, pair, alpha, seen))
    if colours.dtype.kind in "ui":
        found = np.round(found * np.float32(np.iinfo(colours.dtype).max))
    colours[seen] = found
    return TwoShots(alpha, colours, shift, gain, pair)
