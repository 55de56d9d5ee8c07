"""Matting: a soft alpha and clean foreground colours from a trimap, a mask or a matting network.

- :func:`alpha_from_trimap` - learning-free matting inside a trimap's unknown band;
- :func:`alpha_from_mask` - the same from a segmentation probability map (the trimap is made
  from the mask, and the mask stays in the estimate where colours say little);
- :func:`predict_alpha` - a trimap-free matting network from the catalog (``modnet-portrait``);
- :func:`matte` - whichever of the three the inputs call for;
- :func:`foreground` / :func:`cutout` - decontaminated colours, and the RGBA cut-out.

Images are sRGB float32 H x W x 3|4 in [0,1]; alphas, masks and trimaps H x W.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import catalog, matting, ops, runtime
from ..matting import trimap as trimaps


@dataclass
class MatteOptions:
    """model: a catalog matting network (task "matte", e.g. modnet-portrait) for trimap-free
    matting; device / weights: as for segmentation. band: half-width in pixels of the unknown
    band of trimaps made from masks (None = from the image size); iterations / refine: solver
    iterations at the solve resolution / extra ones at full resolution."""

    model: str | None = None
    device: str = "auto"
    weights: str | None = None
    band: int | None = None
    iterations: int = 20
    refine: int = 0

    def alpha_options(self) -> matting.AlphaOptions:
        return matting.AlphaOptions(iterations=self.iterations, refine=self.refine)


def trimap_from_mask(mask: np.ndarray, band: int | None = None) -> np.ndarray:
    """Trimap (0 / 0.5 / 1) from a subject probability map; see :func:`mattekit.matting.trimap.from_mask`."""
    return trimaps.from_mask(mask, band=band)


def alpha_from_trimap(image: np.ndarray, trimap: np.ndarray, options: MatteOptions | None = None) -> np.ndarray:
    """Alpha (H x W float32) of ``image`` for a trimap (0 / 0.5 / 1 floats, or a 0/128/255 image)."""
    options = options or MatteOptions()
    t = np.asarray(trimap)
    if t.dtype != np.float32 or t.ndim != 2:
        t = trimaps.normalise(t)
    return matting.estimate_alpha(image[..., :3], t, options.alpha_options())


def alpha_from_mask(image: np.ndarray, mask: np.ndarray, options: MatteOptions | None = None) -> np.ndarray:
    """Alpha refined from a subject mask (probabilities, or a 0/255 image) by matting its uncertain edge."""
    options = options or MatteOptions()
    m = np.clip(ops.grey_map(mask), 0.0, 1.0)
    trimap = trimaps.from_mask(m, band=options.band)
    return matting.estimate_alpha(image[..., :3], trimap, options.alpha_options(), guess=m)


def predict_alpha(image: np.ndarray, options: MatteOptions) -> np.ndarray:
    """Trimap-free alpha from the catalog matting network ``options.model`` (H x W float32 in [0,1])."""
    entry = catalog.load().get(options.model, "matte")
    predictor = runtime.get_predictor(entry, device=options.device, weights_path=options.weights)
    low = predictor.predict_map(image[..., :3])
    h, w = image.shape[:2]
    method = "area" if low.shape[0] > h else "bilinear"
    return np.clip(ops.resize(low, h, w, method), 0.0, 1.0)


def matte(image: np.ndarray, *, trimap: np.ndarray | None = None, mask: np.ndarray | None = None,
          options: MatteOptions | None = None) -> np.ndarray:
    """Alpha for ``image`` from a trimap, else from a mask, else from the matting network ``options.model``."""
    options = options or MatteOptions()
    if trimap is not None:
        return alpha_from_trimap(image, trimap, options)
    if mask is not None:
        return alpha_from_mask(image, mask, options)
    if options.model:
        return predict_alpha(image, options)
    raise ValueError("matte() needs a trimap, a mask or a matting model")


def foreground(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Decontaminated foreground colours (H x W x 3): the subject's own colour under partial alpha."""
    return matting.estimate_foreground(image[..., :3], alpha)


def cutout(image: np.ndarray, alpha: np.ndarray, decontaminate: bool = True) -> np.ndarray:
    """RGBA cut-out (H x W x 4, straight alpha) with decontaminated colours unless ``decontaminate`` is False.

    A transparent input stays transparent where it was (its alpha multiplies the matte).
    """
    if image.shape[-1] == 4:
        alpha = alpha * image[..., 3]
    rgb = foreground(image, alpha) if decontaminate else image[..., :3]
    return np.concatenate([rgb, alpha[..., None]], axis=-1).astype(np.float32)
