"""Automatic photo enhancement (task ``enhance``): gentle denoise, white balance, exposure and local
contrast, each step switchable and all scaled by one ``strength`` (:func:`mattekit.ops.retouch.enhance`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ops.retouch import RetouchOptions, enhance
from ..options import option
from .registry import Port, Task, no_model_input


@dataclass
class EnhanceOptions:
    """Which steps run (all by default) and how strongly."""

    white_balance: bool = option(True, "automatic white balance")
    contrast: bool = option(True, "exposure and local contrast (mid-scale detail of lightness, colours kept)")
    denoise: bool = option(True, "gentle edge-preserving denoise (chroma more than luma)")
    strength: float = option(
        1.0, "0 = unchanged, 1 = the default correction, up to 2 = stronger", minimum=0.0, maximum=2.0
    )


def _finish(models, inputs, options: EnhanceOptions, context, prediction, device=None) -> dict:
    return {"image": enhance(inputs["image"], RetouchOptions.of(options))}


TASK = Task(
    name="enhance",
    summary="Automatic colour and tone correction: white balance, exposure and local contrast, gentle denoise.",
    options=EnhanceOptions,
    inputs=(Port("image", "image", (3, 4)),),
    outputs=(Port("image", "image", (3, 4)),),
    prepare=no_model_input,
    finish=_finish,
    main=None,
    suffix="_enhanced",
    menu="_Enhance...",
)
