"""A subject mask's uncertain edge matted into the subject's alpha (:func:`alpha_from_mask`), tile by tile, on the
photo shrunk to a working scale where the network saw it coarsely (:func:`working_scale`) and carried back to full
size through the colours' local linear model (:func:`carried`).

The matte decides how soft the edge is, not where it lies: a pixel keeps the mask's side of 0.5. Each tile is matted
by :func:`mattekit.finish.matte.matte_edge`. Images are sRGB H x W x 3|4 (float32 in [0,1], or uint8/uint16 where
said); masks and alphas H x W float32 in [0,1].
"""

from __future__ import annotations

import numpy as np

from ..matting import trimap as trimaps
from ..matting.alpha import AlphaOptions, auto_scale
from ..matting.colour_linear import colour_linear_apply, colour_linear_fit, enlarged
from ..ops.pixels import between, unit_float
from ..ops.regions import each_tile, grown, tiles_holding
from ..ops.resizing import shrunk
from .matte import MattingOptions, matte_edge
from .refine import TILE, round_sure, unsure

MATTE_TILE = 1024  # px: the matting's tiles (larger: its windows carry a wider margin)
# The edge matte's solver iterations and colour-sample rings, chosen on the tuning halves: 8 iterations and one ring
# matched 20 and two (u2netp; grabcut50's MAE and alphamatting's SAD at 1x and 4x) at about 0.75x the band's CPU
# time; 5 matched too, but tiles then drift from the one-piece solve (AVX2, 2026-11-26).
# The matte task (a trimap or a mask: GIMP's Refine Edges) keeps its own iterations and two rings.
EDGE_ITERATIONS = 8
EDGE_SAMPLE_RINGS = 1


def alpha_from_mask(
    image: np.ndarray, mask: np.ndarray, matting: bool = True, in_place: bool = False, detail: float = 1.0, device=None
) -> np.ndarray:
    """The subject's alpha (H x W float32 [0,1]) for a full-resolution mask (H x W) of ``image`` (H x W x 3|4:
    float32 [0,1], or uint8/uint16, made float a window at a time): the mask itself, or
    with ``matting`` its uncertain edge matted (:func:`mattekit.finish.matte.matte_edge`) in the
    ``MATTE_TILE`` blocks holding unsure pixels (one at a time, for the memory), each from a window with ``matte_margin`` px of context
    and the whole photo's size-dependent choices. ``detail``: photo px per network px
    (:func:`mattekit.subject.answer.detail_of`); where it
    allows a working scale above 1 (:func:`working_scale`) the edge is matted on the photo and mask shrunk that many
    times and carried back through the colours' local linear model (:func:`carried`), so the cost follows the edge's
    length, not the photo's pixels. The matte decides how soft the edge is, not where it
    lies: a pixel keeps the mask's side of 0.5. ``in_place``: the alpha is written into ``mask`` (no
    full-size copy; the tiles' results wait until every window has read the mask). ``device``: the finish's device
    (:func:`mattekit.finish.device.device_of`; None: here), where each tile's Laplacian and solve run (its
    ``solve``)."""
    if not matting:
        return mask
    doubt = unsure(mask)
    if not doubt.any():
        return mask
    scale = working_scale(detail, *mask.shape)
    if scale == 1:
        done = matted_tiles(image, mask, doubt, device=device)
    else:
        small_image, small_mask = shrunk(image, scale), shrunk(mask, scale)
        small_alpha = round_sure(small_mask.copy())
        for box, values in matted_tiles(
            small_image, small_mask, unsure(small_mask), auto_scale(*mask.shape) // scale, device
        ):
            small_alpha[box] = values
        done = carried(image, small_image, small_mask, small_alpha, scale)
    out = mask if in_place else mask.copy()
    for box, values in done:
        region = mask[box]
        out[box] = np.where((values >= 0.5) == (region >= 0.5), values, region)
    return out


def matted_tiles(
    image: np.ndarray, mask: np.ndarray, doubt: np.ndarray, solve: int | None = None, device=None
) -> list[tuple[tuple[slice, slice], np.ndarray]]:
    """(box, its matted alpha) for the ``MATTE_TILE`` blocks of ``mask`` (H x W) holding ``doubt`` (its unsure
    pixels, H x W bool), each matted from a window of ``image`` with ``matte_margin`` px of context; ``solve``:
    the solve's downscale (None: from the size, :class:`mattekit.matting.AlphaOptions`); ``device``: where the solves
    run (None: here). One at a time: a window's working set is ~60 bytes per pixel (~100 MB at 50 MP), so each
    thread's tile would add that to the peak."""
    band = trimaps.band_width(*mask.shape)
    options = MattingOptions(band=band, iterations=EDGE_ITERATIONS)
    margin = matte_margin(*mask.shape)
    done = []
    for box in tiles_holding(doubt, band, MATTE_TILE):
        window, inner = grown(box, margin, mask.shape)
        colours = unit_float(image[window][..., :3])
        done.append(
            (
                box,
                matte_edge(
                    colours,
                    mask[window],
                    options,
                    extent=mask.shape,
                    solve=solve,
                    sample_rings=EDGE_SAMPLE_RINGS,
                    device=device,
                )[inner],
            )
        )
    return done


WORK = 2.0  # the finish's working resolution keeps at least this many pixels per network pixel


def working_scale(detail: float, height: int, width: int) -> int:
    """The finish's working scale for a height x width photo whose mask's finest detail is ``detail`` photo px
    (per network px): the largest power of two ``s`` with ``s * WORK <= detail`` (the network put no detail finer
    than its own pixels there) that keeps the working photo at least twice as fine, per side, as the matte's
    solve on the whole photo (:func:`mattekit.matting.alpha.auto_scale`; the solve keeps that resolution,
    :func:`matted_tiles`): the trimap and the colour samples see the hair the matte finds. At least 1: up to
    6 MP the finish works at full size, then at half size, and from about 25 MP at a quarter (issue 45,
    2026-11-25)."""
    scale, solve = 1, auto_scale(height, width)
    while 2 * scale * WORK <= detail and 4 * scale <= solve:
        scale *= 2
    return scale


def carried(
    image: np.ndarray, small_image: np.ndarray, small_mask: np.ndarray, small_alpha: np.ndarray, scale: int
) -> list[tuple[tuple[slice, slice], np.ndarray]]:
    """The alpha matted on the photo shrunk ``scale`` times (``small_alpha``, its mask ``small_mask`` and
    colours ``small_image``, float32) carried to full size, as (box, alpha) for the ``TILE`` blocks of the photo
    around the small mask's unsure pixels and the matte's partial ones: where the small alpha, enlarged
    bilinearly, is partial, its local colour-linear model (:func:`mattekit.matting.colour_linear.colour_linear_fit`,
    fitted on the small image around the block) is applied to the photo's own colours, so hair and edges land
    on the full-size pixels; elsewhere the enlarged small alpha (0 or 1)."""
    flags = unsure(small_mask) | between(small_alpha, 0.0, 1.0)
    h, w = image.shape[:2]
    eps = AlphaOptions().upsample_eps
    reach = 6  # small px around a block: the enlargement reads 2, the fit's two box means 1 each

    def apply(small_box):
        window, _ = grown(small_box, reach, small_alpha.shape)
        (ys, xs), (wy, wx) = small_box, window
        box = (slice(ys.start * scale, min(h, ys.stop * scale)), slice(xs.start * scale, min(w, xs.stop * scale)))
        at = (
            slice(box[0].start - wy.start * scale, box[0].stop - wy.start * scale),  # the box in the window's
            slice(box[1].start - wx.start * scale, box[1].stop - wx.start * scale),
        )  # enlargement
        values = enlarged(small_alpha[window], scale, at)
        partial = between(values, 0.0, 1.0)
        if partial.any():
            coefficients = colour_linear_fit(small_image[window], small_alpha[window], eps)
            colours = unit_float(image[box][..., :3])
            values = np.where(partial, colour_linear_apply(coefficients, scale, colours, at), values)
        return box, values

    return each_tile(apply, tiles_holding(flags, 1, max(1, TILE // scale)))


def matte_margin(height: int, width: int) -> int:
    """Context (px) around a matting tile: the trimap's widening of the band (its half-width + 8) plus the
    colour-sample search's reach (1.5 % of the long side), rounded up to 64 px so windows stay on the
    solver's reduced-resolution grids (a 4x wider band margin measured no closer on the 50 MP photo)."""
    reach = trimaps.band_width(height, width) + 8 + 0.015 * max(height, width)
    return int(-(-reach // 64) * 64)
