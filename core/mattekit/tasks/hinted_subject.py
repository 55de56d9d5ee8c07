"""The subject a user's hint points at, shared by tasks ``remove`` and ``select-subject`` (a module of this
folder that declares no task): their options (:class:`SubjectOptions`), the hint read from them, the models that
answer it, and the stages that compute the subject's alpha (:mod:`mattekit.subject.answer`, then
:mod:`mattekit.finish.edge`). Arrays as the
registry's (H x W x C sRGB images in [0, 1], H x W alphas).

A hint on the subject is answered by the hint model (SAM 2.1: the one ``hint_model`` names, else the catalog's
``prompt`` default), which alone answers it. With ``hint_model`` none (or exclude points alone) the segmentation
network answers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..finish.edge import alpha_from_mask
from ..subject import answer, hints
from ..options import ModelChoice, NONE, option
from .common import ModelOptions, weights_option
from .registry import Port, segment_or_matte

BOX_PARSE, POINTS_PARSE = "mattekit.subject.hint_text:parse_box", "mattekit.subject.hint_text:parse_points"


@dataclass
class SubjectOptions(ModelOptions):
    """The subject's alpha: which model, how its mask becomes an alpha, and the user's hint."""

    model: ModelChoice | None = option(
        None,
        "segmentation model, or a trimap-free matting model (people, birefnet-matting) "
        "whose soft alpha is used as it is (see `mattekit models list`); default: the "
        "catalog's segmentation model",
        model=("segment", "matte"),
    )
    refine: bool = option(True, "edge-aware upsampling of the network's mask (off: plain bilinear)")
    matting: bool = option(
        True,
        "matte the mask's uncertain edge into a soft alpha (hair, fur) where that helps "
        "the model (IS-Net's is not: see its card; `mattekit matte` mattes any mask); off: the "
        "mask is the alpha and colours are not decontaminated",
    )
    box: hints.Box | None = option(
        None,
        "the subject lies in this box: x0,y0,x1,y1 in pixels (x1, y1 exclusive); nothing outside it is kept "
        "(answered by the hint model; with --hint-model none, a box alone gives the whole image's answer cut to the box "
        "when its subject lies in the box, else the model's answer on the box's region)",
        label="Box",
        parse=BOX_PARSE,
    )
    box_focus: bool = option(
        False,
        "with a box and --hint-model none: the model always looks at the box's region, magnified, and the "
        "whole image's answer joins it when its subject lies in the box (finer on a small subject; "
        "may take clutter in the box for the subject)",
        label="Focus on the box",
    )
    point: tuple[hints.Point, ...] | None = option(
        None,
        "a point x,y on the subject (repeatable): only the parts connected to these points are kept",
        repeat=True,
        label="Include points",
        parse=POINTS_PARSE,
    )
    exclude: tuple[hints.Point, ...] | None = option(
        None,
        "a point x,y not on the subject (repeatable): the part there is left out",
        repeat=True,
        label="Exclude points",
        parse=POINTS_PARSE,
    )
    colour: bool = option(
        True,
        "with a hint the model answers on its region: where the network is unsure, decide "
        "by the colours of the subject and the background (GrabCut inside the hint)",
        label="Colour refinement",
    )
    hint_model: ModelChoice | str | None = option(
        None,
        "the promptable model (SAM 2.1, see `mattekit models list`) that answers the hint (a box, include "
        "points or a hint mask; exclude points with them); default: the catalog's, its weights fetched on first use; "
        "none: the segmentation model answers it",
        model="prompt",
        none="the segmentation model answers the hint",
        missing="use --hint-model none to answer the hint with the segmentation model",
    )
    hint_weights: Path | None = weights_option("hint model ")

    def check_image(self, height: int, width: int) -> None:
        """InputError unless the box and points fit an image of ``height`` x ``width`` (its header's size), so that
        a point outside it is refused before any model loads."""
        hints.make(height, width, self.box, self.point, self.exclude)


HINT_MASK = Port(
    "hint_mask",
    "mask",
    optional=True,
    help="a rough mask of the subject (a selection or scribble; white = subject): the model looks there",
)


def hint_of(inputs: dict, options: SubjectOptions) -> hints.Hint:
    """The user's hint (box, points, hint mask) for ``inputs["image"]``, checked against its size."""
    height, width = inputs["image"].shape[:2]
    return hints.make(height, width, options.box, options.point, options.exclude, inputs.get("hint_mask"))


def prompted(options: SubjectOptions, given: set[str]) -> bool:
    """Whether the hint model (the named one, else the catalog's) answers: ``hint_model`` is not ``none`` and the
    hint says where the subject is (a box, an include point or a hint mask: :func:`mattekit.subject.prompting.answerable`)."""
    return options.hint_model != NONE and (options.box is not None or bool(options.point) or "hint_mask" in given)


def needs(options: SubjectOptions, given: set[str]) -> dict[str, str]:
    return {"hint_model": "prompt"} if prompted(options, given) else {"model": segment_or_matte(options.model)}


def prepare(models, inputs: dict, options: SubjectOptions) -> tuple:
    """The network input for the image and its context (:func:`mattekit.subject.answer.network_input`); with the
    hint model, no network input (context: the hint)."""
    hint = hint_of(inputs, options)
    if "hint_model" in models:
        return None, hint
    return answer.network_input(models["model"], inputs["image"], hint, options.box_focus)


def alpha(models, inputs, options: SubjectOptions, context, prediction, device=None):
    """The subject's alpha, H x W float32 in [0, 1]: the hint model's mask (:func:`mattekit.subject.answer.prompted_alpha`),
    or the network's answer (:func:`mattekit.subject.answer.network_answer`) matted at its edge
    (:func:`mattekit.finish.edge.alpha_from_mask`, where :func:`mattekit.subject.answer.edge_matted` says) and cut by
    its hint; a matting network's own alpha. ``device``: the finish's (:func:`mattekit.finish.device.device_of`;
    None: the CPU cores)."""
    image = inputs["image"]
    if "hint_model" in models:
        return answer.prompted_alpha(models["hint_model"].net, image, context, options.matting)
    predictor = models.get("model")
    answered = answer.network_answer(predictor, image, context, prediction, options.refine, options.colour, device)
    matting = not answered.soft and answer.edge_matted(predictor, options.matting)
    found = alpha_from_mask(image, answered.mask, matting, in_place=True, detail=answered.detail, device=device)
    return found if answered.cut is None else hints.constrain(found, answered.cut, select=False)
