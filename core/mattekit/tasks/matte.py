"""Matting (task ``matte``): a soft alpha and clean foreground colours from a trimap, a mask or a model.

The alpha comes from the trimap (:func:`mattekit.finish.matte.alpha_from_trimap`), from the mask's
uncertain edge (:func:`mattekit.finish.matte.matte_edge`), or with neither from ``model``: a
matting network (task "matte", e.g. modnet-portrait) directly, or a segmentation network whose mask
is matted. The result is assembled by :func:`mattekit.finish.cutout.outputs` (cut-out with decontaminated
colours by default).

Images are sRGB float32 H x W x 3|4 in [0,1]; alphas, masks and trimaps H x W.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..finish.refine import mask_from_prediction
from ..finish import cutout
from ..ops.pixels import grey_map
from ..subject.answer import upsampling_of
from ..errors import MattekitError
from ..finish.matte import MattingOptions, alpha_from_trimap, check_edge, matte_edge
from ..options import ModelChoice, option
from .common import CutoutOptions, ModelOptions, format_for, suffix_for
from .registry import BACKDROP, RESULT, SHADOW, Port, Task, model_input, no_model_input, segment_or_matte


@dataclass
class MatteOptions(ModelOptions, CutoutOptions):
    """Matting: where the alpha comes from and how hard the solver works, plus the cut-out options."""

    model: ModelChoice | None = option(
        None,
        "without a trimap or mask: a matting model (e.g. modnet-portrait) or a "
        "segmentation model whose mask is matted; default: the catalog's segmentation model",
        model=("segment", "matte"),
    )
    band: int | None = option(
        None,
        "half-width in pixels of the unknown band of trimaps made from masks (default: from the image size)",
        minimum=0,
        maximum=4096,
    )
    iterations: int = option(20, "solver iterations at the solve resolution", minimum=1, maximum=500)
    extra_iterations: int = option(
        0, "extra solver iterations at full resolution (slower, slightly sharper)", minimum=0, maximum=200
    )


def _needs(options: MatteOptions, given: set[str]) -> dict[str, str]:
    if "trimap" in given and "mask" in given:
        raise MattekitError("Give a trimap or a mask, not both: the alpha comes from one of them.")
    if "trimap" in given or "mask" in given:
        if options.model is not None:
            raise MattekitError("A model is for images without a trimap or a mask; leave it out or leave them out.")
        return {}
    return {"model": segment_or_matte(options.model)}


def _prepare(models, inputs, options: MatteOptions):
    """The model's input when the alpha comes from a model; nothing to infer with a trimap or a mask."""
    return (model_input if "model" in models else no_model_input)(models, inputs, options)


def _finish(models, inputs, options: MatteOptions, context, prediction, device=None) -> dict:
    image = inputs["image"]
    if inputs.get("trimap") is not None:
        alpha = alpha_from_trimap(image, _plane(inputs["trimap"], image, "trimap"), MattingOptions.of(options))
    elif inputs.get("mask") is not None:
        mask = np.clip(grey_map(_plane(inputs["mask"], image, "mask")), 0.0, 1.0)
        check_edge(mask)
        alpha = matte_edge(image, mask, MattingOptions.of(options))
    elif models["model"].task == "matte":
        alpha = models["model"].to_image(prediction, *image.shape[:2])
    else:
        mask = mask_from_prediction(image, prediction, upsampling=upsampling_of(models["model"]), device=device)
        alpha = matte_edge(image, mask, MattingOptions.of(options))
    return cutout.outputs(image, alpha, options, backdrop=inputs.get("backdrop"), device=device)


def _plane(plane: np.ndarray, image: np.ndarray, what: str) -> np.ndarray:
    """An H x W (x C) trimap or mask as H x W, checked against the image's size."""
    plane = plane[..., 0] if plane.ndim == 3 else plane
    if plane.shape != image.shape[:2]:
        raise MattekitError(
            f"The {what} is {plane.shape[1]}x{plane.shape[0]} but the image is "
            f"{image.shape[1]}x{image.shape[0]}; they must have the same size."
        )
    return plane


TASK = Task(
    name="matte",
    summary="Alpha matting: a soft alpha and decontaminated colours from a trimap, a mask's soft edge, or a model.",
    options=MatteOptions,
    inputs=(
        Port("image", "image", (3, 4)),
        Port("trimap", "trimap", optional=True, help="black = background, white = subject, grey = unknown"),
        Port("mask", "mask", optional=True, help="a soft or hard subject mask whose edge is matted"),
        BACKDROP,
    ),
    outputs=(RESULT, SHADOW),
    prepare=_prepare,
    finish=_finish,
    needs=_needs,
    suffix=lambda options: suffix_for(options, "_matte"),
    output_format=format_for,
    menu="Refine _Edges...",
)
