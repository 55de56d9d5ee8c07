"""Segmentation: a subject probability mask at full resolution, the soft alpha matted from it,
and the cut-outs built from them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import catalog, ops, runtime


@dataclass
class SegmentOptions:
    """model: catalog name (None = the catalog's default segment model); device: auto/cpu/cuda/mps;
    weights: a user-supplied weights file instead of the catalog's; refine: edge-aware upsampling;
    matting: turn the mask's uncertain edge into a soft alpha by alpha matting (tasks.matte);
    decontaminate: cut-outs carry the subject's own colours under partial alpha (no old
    background in hair and soft edges)."""

    model: str | None = None
    device: str = "auto"
    weights: str | None = None
    refine: bool = True
    matting: bool = True
    decontaminate: bool = True


def refine_mask(image: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Upsample a low-resolution probability map (h x w) to the image (H x W x 3) following its edges.

    Bilinear upsampling followed by a colour guided filter whose radius is three times the
    upsampling factor, so edges land on the photo's edges rather than on the network's grid
    (radius and eps chosen on grabcut50: `mattekit bench segment`). Returns float32 H x W in [0,1].
    """
    height, width = image.shape[:2]
    up = ops.resize(low, height, width, "bilinear")
    factor = max(height / low.shape[0], width / low.shape[1])
    if factor <= 1.0:
        return np.clip(up, 0.0, 1.0)
    radius = max(2, round(3 * factor))
    subsample = max(1, round(factor / 4))
    out = ops.guided_filter(image, up, radius, eps=1e-4, subsample=subsample)
    return np.clip(out, 0.0, 1.0)


def predict_mask(image: np.ndarray, options: SegmentOptions | None = None) -> np.ndarray:
    """Subject probability for an sRGB image (H x W x 3|4 float32 [0,1]) -> float32 H x W in [0,1]."""
    options = options or SegmentOptions()
    entry = catalog.load().get(options.model, "segment") if options.model else catalog.load().default("segment")
    predictor = runtime.get_predictor(entry, device=options.device, weights_path=options.weights)
    low = predictor.predict_map(image[..., :3])
    if options.refine:
        return refine_mask(image[..., :3], low)
    return np.clip(ops.resize(low, *image.shape[:2], "bilinear"), 0.0, 1.0)


def predict_alpha(image: np.ndarray, options: SegmentOptions | None = None) -> np.ndarray:
    """The subject's alpha (H x W float32 in [0,1]): :func:`predict_mask`, its edge matted unless ``options.matting`` is off."""
    options = options or SegmentOptions()
    return alpha_from_mask(image, predict_mask(image, options), options)


def alpha_from_mask(image: np.ndarray, mask: np.ndarray, options: SegmentOptions | None = None) -> np.ndarray:
    """The alpha for a full-resolution subject mask (H x W): its edge matted, or the mask itself when
    ``options.matting`` is off."""
    if options is not None and not options.matting:
        return mask
    from . import matte

    return matte.alpha_from_mask(image[..., :3], mask)


def foreground_colours(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The subject's own colours under ``alpha`` (H x W x 3): see :func:`mattekit.tasks.matte.foreground`."""
    from . import matte

    return matte.foreground(image[..., :3], alpha)


def cutout(image: np.ndarray, alpha: np.ndarray, *, output: str = "rgba", background=None,
           crop_margin: float | None = None, colours: np.ndarray | None = None) -> np.ndarray:
    """Build the result a user asked for from an image and its alpha (both H x W, [0,1]).

    output: "rgba" (H x W x 4, straight alpha), "mask" (H x W alpha), or "composite"
    (H x W x 3 over ``background``: an RGB triple or an H x W x 3 image).
    crop_margin: crop to the subject's box grown by this fraction of its size.
    colours: the subject's colours to use instead of the photo's (decontaminated, H x W x 3).
    """
    rgb = image[..., :3] if colours is None else colours
    if image.shape[-1] == 4:  # a transparent input stays transparent where it was
        alpha = alpha * image[..., 3]
    if output == "mask":
        result = alpha.astype(np.float32)
    elif output == "composite":
        if background is None:
            raise ValueError("composite output needs a background")
        result = ops.composite_over(rgb, alpha, background)
    else:
        result = np.concatenate([rgb, alpha[..., None]], axis=-1).astype(np.float32)
    if crop_margin is not None:
        box = ops.bounding_box(alpha, margin=crop_margin)
        if box is not None:
            top, left, bottom, right = box
            result = result[top:bottom, left:right]
    return result


def remove_background(image: np.ndarray, options: SegmentOptions | None = None, **cutout_args) -> np.ndarray:
    """Cut the subject out of ``image``; keyword arguments as :func:`cutout` (RGBA by default).

    By default the alpha is matted and the cut-out's colours decontaminated (see
    :class:`SegmentOptions`)."""
    options = options or SegmentOptions()
    alpha = predict_alpha(image, options)
    if options.decontaminate and options.matting and cutout_args.get("output", "rgba") != "mask":
        cutout_args.setdefault("colours", foreground_colours(image, alpha))
    return cutout(image, alpha, **cutout_args)
