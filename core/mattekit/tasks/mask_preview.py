"""Mask preview (task ``mask-preview``): what the segmentation network sees as the subject, fast.

The network's probability map resized to the image, with neither edge refinement nor matting: a
quick check of a model on a photo before a full cut-out. Output: H x W float32 in [0,1].
"""

from __future__ import annotations

from dataclasses import dataclass

from ..finish.refine import mask_from_prediction
from ..subject.answer import upsampling_of
from ..options import ModelChoice, option
from .common import ModelOptions
from .registry import Port, Task, model_input


@dataclass
class PreviewOptions(ModelOptions):
    model: ModelChoice | None = option(
        None, "segmentation model (see `mattekit models list`); default: the catalog's", model="segment"
    )


TASK = Task(
    name="mask-preview",
    summary="The segmentation network's raw subject mask at full size (no refinement, no matting): a quick look.",
    options=PreviewOptions,
    inputs=(Port("image", "image", (3, 4), integers=True),),
    outputs=(Port("mask", "mask"),),
    prepare=model_input,
    finish=lambda models, inputs, options, context, y, device=None: {
        "mask": mask_from_prediction(inputs["image"], y, refine=False, upsampling=upsampling_of(models.get("model")))
    },
    streams=True,
    suffix="_preview",
    output_format=lambda options, source, named: ".png",
    menu="Mask _Preview...",
)
