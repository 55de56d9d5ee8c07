"""Background removal (task ``remove``): the subject's mask from a segmentation network, its edge
matted into a soft alpha, and the cut-out the user asked for.

Stages (the predictor is passed in as ``models["model"]``, SAM 2.1 as ``models["hint_model"]``): prepare and the
subject's alpha as :mod:`.hinted_subject` computes them (the network on the hinted region, or the hint model
answering the hint; the mask's edge matted; a matting network's own alpha), then the cut-out
(:func:`mattekit.finish.cutout.outputs`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..finish import cutout
from ..finish.device import device_of
from . import hinted_subject
from .common import CutoutOptions, format_for, suffix_for
from ..options import option
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


def _finish(models, inputs, options: RemoveOptions, context, prediction) -> dict:
    """The subject's alpha and the cut-out; without matting the colours are the photo's own. With shadow keep the
    photo's own shadow matte too (output ``shadow``). A see-through subject's alpha and colours are read against
    the backdrop's light (:func:`mattekit.matting.see_through.see_through`) within the model's outline."""
    image = inputs["image"]
    alpha = hinted_subject.alpha(models, inputs, options, context, prediction)
    looks = options if options.matting else replace(options, decontaminate=False)
    colours = None
    if options.see_through:
        from ..matting.see_through import see_through

        alpha, colours = see_through(image, alpha)
    return cutout.outputs(
        image,
        alpha,
        looks,
        backdrop=inputs.get("backdrop"),
        device=device_of(models.get("model"), image),
        colours=colours,
    )


TASK = Task(
    name="remove",
    summary="Cut the subject out of each image: an RGBA cut-out, its alpha, or a composite.",
    options=RemoveOptions,
    inputs=(Port("image", "image", (3, 4), integers=True), BACKDROP, HINT_MASK),
    outputs=(RESULT, SHADOW),
    prepare=hinted_subject.prepare,
    finish=_finish,
    needs=hinted_subject.needs,
    streams=True,
    suffix=lambda options: suffix_for(options, "_cutout"),
    # PNG (or a named JPEG), whatever the photo's format:
    output_format=lambda options, source, named: format_for(options, "", named),
    menu="Remove _Background...",
    api="remove_background",
)
