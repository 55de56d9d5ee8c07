"""Super-resolution (task ``upscale``): the image at ``scale`` x its size through an SR network.

Grey stays grey, alpha stays straight alpha, 16-bit input is written back 16-bit by the front ends;
large images run in feathered, overlapping tiles (:mod:`mattekit.upscaling.superres`). The predictor is
passed in as ``models["model"]``; everything happens in ``finish`` (tiling needs the model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..options import ModelChoice, OptionError, option
from .common import ModelOptions
from .registry import Port, Task, no_model_input

MAX_SCALE = 16.0
ALPHA_METHODS = ("model", "bicubic")
MIN_TILE = 64  # input pixels: under it the tiles are mostly overlap (tiling clamps to 16 px; --tile 1 ran for hours)


@dataclass
class UpscaleOptions(ModelOptions):
    """Super-resolution: model, output size, detail strength, tiling, how alpha is upscaled."""

    model: ModelChoice | None = option(
        None, "upscale model (see `mattekit models list`); default: the catalog's", model="upscale"
    )
    scale: float | None = option(
        None, "output size / input size (default: the model's own factor, 2 or 4)", minimum=0.01, maximum=MAX_SCALE
    )
    width: int | None = option(
        None, "output width in pixels, the height keeping the aspect (instead of scale)", minimum=1, maximum=1 << 18
    )
    strength: float = option(
        1.0, "1 = network detail only, 0 = plain bicubic, between = a blend of the two", minimum=0.0, maximum=1.0
    )
    tile: int | None = option(
        None, "tile side in input pixels (default: chosen from free memory; 0 = no tiling)", minimum=0, maximum=1 << 16
    )
    alpha: str = option(
        "model", "how transparency is upscaled: model (sharp) or bicubic (soft, faster)", choices=ALPHA_METHODS
    )

    def __post_init__(self):
        """Checks across options, before any model loads: a tile under :data:`MIN_TILE`, and both a scale
        and a width (one of them would be dropped without a word)."""
        if self.tile is not None and 0 < self.tile < MIN_TILE:
            raise OptionError(f"Option 'tile' must be 0 (no tiling) or at least {MIN_TILE}, not {self.tile}.")
        if self.scale is not None and self.width is not None:
            raise OptionError("Give Option 'scale' or Option 'width', not both: each sets the output size.")


def is_grey(pixels: np.ndarray) -> bool:
    """Whether an H x W x 3|4 image's colour channels are all equal."""
    return bool(np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 0], pixels[..., 2]))


def _finish(models, inputs, options: UpscaleOptions, context, prediction, device=None, progress=None) -> dict:
    """Grey images (equal channels, or 1-2 channels) go through the net once, as grey; the result keeps
    the input's channel count except that grey RGB(A) comes back as 1 (grey) or 2 (grey + alpha) channels,
    and the input's dtype (float32 in [0,1], or uint8/uint16: see :func:`mattekit.upscaling.superres.upscale`)."""
    from ..upscaling import superres

    pixels = inputs["image"]
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4) and is_grey(pixels):
        pixels = pixels[..., [0, 3]] if pixels.shape[-1] == 4 else pixels[..., 0]
    result = superres.upscale(
        models["model"],
        pixels,
        scale=options.scale,
        width=options.width,
        strength=options.strength,
        tile=options.tile,
        alpha=options.alpha,
        progress=progress,
    )
    return {"image": result}


def _suffix(options: UpscaleOptions) -> str:
    if options.width:
        return f"_w{options.width}"
    return f"_x{options.scale:g}" if options.scale is not None else "_x{scale}"


TASK = Task(
    name="upscale",
    summary="Super-resolution: the image (grey, RGB, with or without alpha) at scale x its size.",
    options=UpscaleOptions,
    inputs=(Port("image", "image", (1, 2, 3, 4), integers=True),),
    outputs=(Port("image", "image", (1, 2, 3, 4), size="scaled"),),
    prepare=no_model_input,
    finish=_finish,
    progress=True,
    suffix=_suffix,
    menu="_Upscale...",
)
