"""Depth (task ``depth``): a relative depth map of a photo from a catalog depth model (Depth Anything V2).

The prediction becomes an H x W map by :func:`mattekit.lens.disparity.depth_from_prediction`; larger
values are nearer.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..lens.disparity import depth_from_prediction, normalize_depth
from ..options import ModelChoice, option
from .common import ModelOptions
from .registry import Port, Task, model_input


@dataclass
class DepthOptions(ModelOptions):
    model: ModelChoice | None = option(
        None, "depth model (see `mattekit models list`); default: the catalog's", model="depth"
    )
    normalize: bool = option(True, "rescale the map to [0,1] (1 = nearest); off: the raw prediction (>= 0)")


def _finish(models, inputs, options: DepthOptions, context, prediction, device=None) -> dict:
    depth = depth_from_prediction(prediction, *inputs["image"].shape[:2])
    return {"depth": normalize_depth(depth) if options.normalize else depth}


TASK = Task(
    name="depth",
    summary="A relative depth map (1 = nearest) of each photo from a depth model.",
    options=DepthOptions,
    inputs=(Port("image", "image", (3, 4)),),
    outputs=(Port("depth", "depth"),),
    prepare=model_input,
    finish=_finish,
    streams=True,
    suffix="_depth",
    output_format=lambda options, source, named: ".exr" if named == ".exr" or source == ".exr" else ".png",
)
