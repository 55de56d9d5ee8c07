"""Depth of field (task ``bokeh``): a lens blur keeping the subject, or the point in focus, sharp.

:func:`bokeh` gathers what the renderer (:func:`mattekit.lens.render`) needs: the depth map from
``depth`` or a depth model (:mod:`mattekit.lens.disparity`), the subject's mask from ``subject`` or a
segmentation model (:func:`mattekit.subject.answer.predict_mask`), the focal plane and the blur radius.
Images are sRGB float32 H x W x 3|4 in [0,1]; depth maps and masks H x W in [0,1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import lens
from ..lens.disparity import estimate_depth, refine_depth
from ..errors import MattekitError
from ..subject.answer import predict_mask
from ..options import ModelChoice, OptionError, option
from .common import DEVICE_HELP, DEVICE_PARSE, weights_option
from .registry import Port, Task, no_model_input


@dataclass
class BokehOptions:
    """How to render depth of field (strength = 2.8 / f-number; 1 blurs a full-range depth difference by
    2% of the long side, about f/2.8 on a portrait lens)."""

    focus: lens.Focus | None = option(
        None,
        "focus on this point: pixels X,Y (640,400) or percent (50%,40%); default: the subject found by segmentation",
        parse="mattekit.lens.renderer:focus_of",
    )
    focus_depth: float | None = option(
        None, "focus at this depth, 0 (farthest) .. 1 (nearest)", minimum=0.0, maximum=1.0
    )
    strength: float = option(
        1.0, "blur strength: 1 blurs the farthest background by about 2% of the long side", minimum=0.0, maximum=20.0
    )
    f_number: float | None = option(
        None,
        "blur like this f-number instead of a strength (f/2.8 = strength 1, f/1.4 = 2)",
        minimum=0.14,
        maximum=1000.0,
    )
    mask_only: bool = option(False, "no depth model: keep the subject sharp, blur everything else")
    highlight_gain: float = option(
        2.0, "extra brightness for highlights before blurring (bokeh balls); 0 = none", minimum=0.0, maximum=10.0
    )
    blades: int = option(0, "aperture blades (polygonal bokeh), 0 = round, else 3 to 16", minimum=0, maximum=16)
    rotation: float = option(0.0, "turn the aperture polygon by this angle in degrees", minimum=-360.0, maximum=360.0)
    depth_model: ModelChoice | None = option(
        None,
        "depth model (see `mattekit models list`); default: the catalog's",
        model="depth",
        missing="use --mask-only to blur without a depth model",
    )
    depth_weights: Path | None = weights_option("depth ")
    segment_model: ModelChoice | None = option(
        None, "segmentation model for the subject; default: the catalog's", model="segment"
    )
    device: str = option("auto", DEVICE_HELP, parse=DEVICE_PARSE)
    highlight_threshold = 0.6  # linear value where the highlight boost starts (not an option)

    def __post_init__(self):
        """Checks across options, before any model loads (a polygon of 1 or 2 blades; a strength and an
        f-number together, one of which would be dropped without a word)."""
        if self.blades in (1, 2):
            raise OptionError(f"Option 'blades' must be 0 (round) or from 3 to 16, not {self.blades}.")
        if self.f_number is not None and self.strength != 1.0:
            raise OptionError("Give Option 'strength' or Option 'f_number', not both: each sets the blur.")


def needs_subject(options: BokehOptions) -> bool:
    """Whether the subject mask is used: mask-only mode, or focusing on the subject (no point, no depth)."""
    return options.mask_only or (options.focus is None and options.focus_depth is None)


def bokeh(
    image: np.ndarray,
    options: BokehOptions | None = None,
    *,
    mask: np.ndarray | None = None,
    depth_model=None,
    segment_model=None,
) -> np.ndarray:
    """DSLR-like depth of field for an sRGB photo (H x W x 3|4 float32 [0,1]) -> same shape.

    Depth (H x W disparity in [0,1], 1 = nearest) comes from the ``depth_model`` predictor; with ``mask_only`` the subject mask alone stands in for depth (subject near, rest far).
    The subject mask comes from ``mask`` or the ``segment_model`` predictor, when it is needed.
    """
    options = options or BokehOptions()
    if options.blades in (1, 2):
        raise MattekitError(f"The aperture needs 0 (round) or 3 to 16 blades, not {options.blades}.")
    h, w = image.shape[:2]
    strength = 2.8 / options.f_number if options.f_number else options.strength
    radius = lens.blur_radius(h, w, strength)
    focus_point = lens.parse_point(options.focus, w, h) if options.focus else None
    need_subject = needs_subject(options)
    if need_subject and mask is None:
        mask = predict_mask(segment_model, image)
    if options.mask_only:
        depth_map = np.zeros((h, w), np.float32)  # the background plane; the subject plane is 1
        subject_depth = 1.0
        if focus_point is not None:
            focus = 1.0 if lens.focus_depth_at(mask, *focus_point) >= 0.5 else 0.0
        else:
            focus = 1.0 if options.focus_depth is None else float(options.focus_depth)
    else:
        depth_map = refine_depth(image, estimate_depth(depth_model, image))
        subject_depth = lens.subject_depth(depth_map, mask) if need_subject else None
        if focus_point is not None:
            focus = lens.focus_depth_at(depth_map, *focus_point)
        elif options.focus_depth is not None:
            focus = float(options.focus_depth)
        else:
            focus = subject_depth
    return lens.render(
        image,
        depth_map,
        focus,
        radius,
        subject=mask if need_subject else None,
        subject_depth=subject_depth,
        highlight_gain=options.highlight_gain,
        highlight_threshold=options.highlight_threshold,
        blades=options.blades,
        rotation=options.rotation,
    )


def _needs(options: BokehOptions, given: set[str]) -> dict[str, str]:
    models = {} if options.mask_only else {"depth_model": "depth"}
    if needs_subject(options) and "subject" not in given:
        models["segment_model"] = "segment"
    return models


def _finish(models, inputs, options: BokehOptions, context, prediction, device=None) -> dict:
    subject = inputs.get("subject")
    return {
        "image": bokeh(
            inputs["image"],
            options,
            mask=subject,
            depth_model=models.get("depth_model"),
            segment_model=models.get("segment_model"),
        )
    }


TASK = Task(
    name="bokeh",
    summary="Depth of field from one photo: a lens blur keeping the subject (or the focus point) sharp.",
    options=BokehOptions,
    inputs=(
        Port("image", "image", (3, 4)),
        Port("subject", "mask", optional=True, help="the subject to keep sharp (e.g. a selection)"),
    ),
    outputs=(Port("image", "image", (3, 4)),),
    prepare=no_model_input,
    finish=_finish,
    main=None,
    needs=_needs,
    suffix="_bokeh",
    menu="Portrait _Bokeh...",
)
