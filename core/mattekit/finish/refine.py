"""The network's prediction as the photo's mask (:func:`mask_from_prediction`): resized to the photo as the model's
own pipeline does (:func:`~mattekit.ops.resizing.resized_map`) and, where the model is unsure, moved onto the photo's edges (:func:`refine_mask`).

Only the model's uncertain band is worked on: where the network is sure, the mask is its own prediction rounded to
0 or 1; the edge-aware refinement runs in the band's tiles here, or over the whole photo on a model's GPU
(:mod:`.refine_device`). Images are sRGB H x W x 3|4 (float32 in [0,1], or uint8/uint16 where said); predictions
are 1 x 1 x h x w tensors or h x w arrays in [0,1]; masks H x W float32 in [0,1].
"""

from __future__ import annotations

import cv2
import numpy as np

from ..matting import trimap as trimaps
from ..ops.filters import guided_filter
from ..ops.pixels import STRIP_VALUES, between, unit_float
from ..ops.regions import each_row_strip, each_tile, grown, tiles_holding
from ..ops.resizing import prediction_array, resized_map

# The uncertain band, in multiples of the upsampling factor (chosen on grabcut50's tuning half):
GROW = 0.5  # how far the band reaches beyond the unsure pixels
RADIUS = 2.0  # the guided filter's radius
EPS = 1e-4  # the guided filter's regulariser (squared colour units)
TILE = 512  # px: the band's work is done in tiles this size that hold unsure pixels
REFINE_TILE = 128  # px: the refinement's tiles where it runs at full resolution (its margin is then <= 26 px)
# The guided filter's coefficients are solved at this many photo px per network px, or more (subsampled)
COEFFICIENTS = 2.0


def unsure(mask: np.ndarray) -> np.ndarray:
    """Where the model is unsure: probabilities strictly between the trimap's known levels (0.1, 0.9). H x W bool."""
    return between(mask, trimaps.BG_AT, trimaps.FG_AT)


def edge_band(mask: np.ndarray, grow: int, box: tuple[slice, slice] | None = None) -> np.ndarray:
    """The uncertain band of a probability map (H x W): :func:`unsure` pixels widened by ``grow`` px
    (a disc). ``box`` (row and column slices) limits the work and the result to that region; the
    result is the same there as for the whole image. H x W (or the box's size) bool."""
    box = box or (slice(0, mask.shape[0]), slice(0, mask.shape[1]))
    outer, inner = grown(box, grow, mask.shape)
    doubt = unsure(mask[outer]).astype(np.uint8)
    if grow > 0:
        doubt = cv2.dilate(doubt, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    return doubt[inner].astype(bool)


def round_sure(mask: np.ndarray) -> np.ndarray:
    """Where the model is sure (outside :func:`unsure`) its probability rounded to 0 or 1, in place (in strips of rows
    over the cores); returns it."""

    def strip(rows: slice) -> None:
        part = mask[rows]
        np.copyto(part, 1.0, where=part >= trimaps.FG_AT)
        np.copyto(part, 0.0, where=part <= trimaps.BG_AT)

    each_row_strip(strip, mask.shape[0], mask[:1].size, STRIP_VALUES)
    return mask


def refine_mask(
    image: np.ndarray,
    low: np.ndarray,
    soft: bool = False,
    upsampling: str = "bilinear",
    device=None,
    refine_above: float = 1.0,
) -> np.ndarray:
    """Upsample a low-resolution probability map (h x w) to the image (H x W x 3: float32 [0,1], or
    uint8/uint16, made float a tile at a time), touching only where the model is unsure.

    Upsampling by ``upsampling`` (:func:`~mattekit.ops.resizing.resized_map`); where the model is sure (probability <= 0.1 or >= 0.9) the result is 0 or 1.
    In the uncertain band (unsure pixels widened by ``GROW`` x the upsampling factor) a colour guided
    filter of radius ``RADIUS`` x the factor moves the edge onto the photo's edges, its coefficients solved on the
    photo shrunk to about ``COEFFICIENTS`` px per network px (from factor 3 on: the fast guided filter); it runs in the
    band's tiles only (on every core: :func:`mattekit.ops.regions.each_tile`; ``REFINE_TILE`` px, or ``TILE`` where the
    filter subsamples), so its cost follows the band, not the image. Where the network saw the photo
    at full resolution or more (factor <= 1), or at most ``refine_above`` times coarser, only the rounding applies. ``soft``: no rounding (the map
    is a matting model's alpha). Returns float32 H x W in [0,1]: the only full-size array made (the
    tiles' results are kept until all tiles have read the upsampled map, then written into it). ``device``: the
    finish's device (:func:`mattekit.finish.device.device_of`; None: here); the band is filtered there (its
    ``refine_band``: :func:`mattekit.finish.refine_device.refine_band_on` on a GPU, the whole photo's filter, not the
    tiles'), or here where its memory runs out.
    """
    height, width = image.shape[:2]
    mask = resized_map(low, height, width, upsampling)
    factor = max(height / low.shape[0], width / low.shape[1])
    if factor <= max(1.0, refine_above):
        return mask if soft else round_sure(mask)
    grow, radius, subsample = band_filter(factor)
    margin = 2 * radius + 2 * subsample
    if device is not None and device.refine_band(image, mask, grow, radius, EPS, subsample):
        return mask if soft else round_sure(mask)

    def filtered(box):
        band = edge_band(mask, grow, box)
        outer, inner = grown(box, margin, mask.shape)
        guide = unit_float(image[outer][..., :3])
        values = guided_filter(guide, mask[outer], radius, eps=EPS, subsample=subsample)[inner]
        return box, band, np.clip(values[band], 0.0, 1.0)

    tile = REFINE_TILE if subsample == 1 else TILE  # subsampled: the coefficients follow each window's grid
    for box, band, values in each_tile(filtered, tiles_holding(unsure(mask), grow, tile)):
        mask[box][band] = values
    return mask if soft else round_sure(mask)


def band_filter(factor: float) -> tuple[int, int, int]:
    """(the band's widening, the guided filter's radius, its subsampling), in px, for an upsampling ``factor`` (photo
    px per network px, above 1): ``GROW``, ``RADIUS`` and ``COEFFICIENTS`` applied (:func:`refine_mask`)."""
    return max(1, round(GROW * factor)), max(2, round(RADIUS * factor)), max(1, round(factor / COEFFICIENTS))


def mask_from_prediction(
    image: np.ndarray,
    prediction,
    refine: bool = True,
    soft: bool = False,
    upsampling: str = "bilinear",
    device=None,
    refine_above: float = 1.0,
) -> np.ndarray:
    """The network's prediction (1 x 1 x h x w tensor or h x w array, [0,1]) as a full-resolution
    subject mask for ``image`` (H x W x 3|4): float32 H x W in [0,1]. ``refine``: :func:`refine_mask`,
    else the plain model (:func:`~mattekit.ops.resizing.resized_map` by ``upsampling``, the model's ``output.upsample``). ``soft``: the prediction is a matting model's alpha, whose
    near-0 and near-1 values are hair and motion blur, not doubt: they are not rounded. ``device``: where a GPU
    refines it (:func:`mattekit.finish.device.device_of`). ``refine_above``: see :func:`refine_mask`."""
    low = prediction_array(prediction)
    if refine:
        return refine_mask(image[..., :3], low, soft, upsampling, device, refine_above)
    return resized_map(low, *image.shape[:2], upsampling)
