"""Background removal (task ``remove``): the subject's mask from a segmentation network, its edge
matted into a soft alpha, and the cut-out the user asked for.

Stages (the predictor is passed in as ``models["model"]``, SAM 2.1 as ``models["hint_model"]``): prepare and the
subject's alpha as :mod:`.hinted_subject` computes them (the network on the hinted region, or the hint model
answering the hint; the mask's edge matted; a matting network's own alpha), then the cut-out
(:func:`mattekit.finish.cutout.outputs`). With a second shot (the same subject and camera on another backdrop) no
model runs: the alpha and the subject's colours come from the two shots (:mod:`mattekit.matting.two_shots`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import MattekitError
from ..finish import cutout
from ..finish.cutout import KEEP
from ..matting.two_shots import two_shot_matte
from ..ops.pixels import unit_float
from . import hinted_subject
from ..options import option
from .common import CutoutOptions, format_for, suffix_for
from .registry import BACKDROP, RESULT, SHADOW, Port, Task
from .hinted_subject import HINT_MASK, SubjectOptions

SEE_THROUGH_HELP = (
    "the subject is see-through (glass, clear plastic, a veil) on a plain backdrop: its alpha from how much of the "
    "backdrop's light comes through, its colours from the rest; labels, caps and highlights stay. One shot cannot "
    "tell dark clear glass from grey opaque plastic, so say it only of a see-through subject (an opaque grey one "
    "comes out partly transparent); on a textured backdrop the usual alpha is kept"
)


@dataclass
class RemoveOptions(SubjectOptions, CutoutOptions):
    """Background removal: the subject's alpha (:class:`SubjectOptions`), whether it is see-through, and the
    cut-out options."""

    see_through: bool = option(False, SEE_THROUGH_HELP, label="See-through subject")


SECOND_SHOT = Port(
    "second_shot",
    "image",
    (3, 4),
    optional=True,
    help="the same subject and camera on another backdrop (a white and a black card, the backdrop light on and "
    "off): the alpha and colours come from the two shots, exact for glass, smoke and hair (no network)",
    recorded=True,
    below="Second shot: the layer below",
)
SEE_THROUGH_MASK = Port(
    "see_through_mask",
    "mask",
    optional=True,
    help="with see-through: the part of the subject that is see-through (white; a selection), the rest as the model "
    "gives it",
)
# options that choose the alpha's source, which a second shot is
HINTS = ("box", "point", "exclude", "model", "see_through")


def _needs(options: RemoveOptions, given: set[str]) -> dict[str, str]:
    """The models a run loads: none with a second shot (one sentence for options that contradict it)."""
    if "see_through_mask" in given and not options.see_through:
        raise MattekitError("A see-through mask marks the see-through part of the subject; give --see-through with it.")
    if "second_shot" not in given:
        return hinted_subject.needs(options, given)
    named = [name for name in HINTS if getattr(options, name)] + (["hint mask"] if "hint_mask" in given else [])
    if named:
        raise MattekitError(
            f"A second shot gives the alpha itself; leave out the {', '.join(named).replace('_', ' ')}."
        )
    if options.shadow == KEEP or options.result == "shadow":
        raise MattekitError(
            "With a second shot the subject's shadow is in its alpha already (black at partial alpha); "
            "leave out shadow keep."
        )
    return {}


def _prepare(models, inputs: dict, options: RemoveOptions) -> tuple:
    """The network's input (:func:`.hinted_subject.prepare`); none with a second shot."""
    if inputs.get("second_shot") is not None:
        return None, None
    return hinted_subject.prepare(models, inputs, options)


def _two_shots(inputs: dict, options: RemoveOptions) -> dict:
    """The cut-out from two shots (:func:`mattekit.matting.two_shots.two_shot_matte`): their alpha (times the
    photo's own where it has one) and the subject's true colours, of the photo's dtype."""
    image = inputs["image"]
    found = two_shot_matte(image, inputs["second_shot"])
    alpha = found.alpha if image.shape[-1] != 4 else found.alpha * unit_float(image[..., 3])
    looks = replace(options, decontaminate=False)
    return cutout.outputs(found.colours, alpha, looks, backdrop=inputs.get("backdrop"))


def _finish(models, inputs, options: RemoveOptions, context, prediction, device=None) -> dict:
    """The subject's alpha and the cut-out, on the finish's ``device`` (None: the CPU cores); without matting the
    colours are the photo's own. With shadow keep the photo's own shadow matte too (output ``shadow``). A see-through
    subject's alpha and colours are read against the backdrop's light (:func:`mattekit.matting.see_through.see_through`)
    within the model's outline, where the see-through mask (if given) marks it. With a second shot: :func:`_two_shots`."""
    if inputs.get("second_shot") is not None:
        return _two_shots(inputs, options)
    image = inputs["image"]
    alpha = hinted_subject.alpha(models, inputs, options, context, prediction, device)
    looks = options if options.matting else replace(options, decontaminate=False)
    colours = None
    if options.see_through:
        from ..matting.see_through import see_through

        alpha, colours = see_through(image, alpha, inputs.get("see_through_mask"))
    return cutout.outputs(image, alpha, looks, backdrop=inputs.get("backdrop"), device=device, colours=colours)


TASK = Task(
    name="remove",
    summary="Cut the subject out of each image: an RGBA cut-out, its alpha, or a composite.",
    options=RemoveOptions,
    inputs=(Port("image", "image", (3, 4), integers=True), BACKDROP, HINT_MASK, SECOND_SHOT, SEE_THROUGH_MASK),
    outputs=(RESULT, SHADOW),
    prepare=_prepare,
    finish=_finish,
    needs=_needs,
    streams=True,
    suffix=lambda options: suffix_for(options, "_cutout"),
    # PNG (or a named JPEG), whatever the photo's format:
    output_format=lambda options, source, named: format_for(options, "", named),
    menu="Remove _Background...",
    api="remove_background",
)
