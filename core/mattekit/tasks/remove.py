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
from . import hinted_subject
from .common import CutoutOptions, format_for, suffix_for
from .registry import BACKDROP, RESULT, SHADOW, Port, Task
from .hinted_subject import HINT_MASK, SubjectOptions


@dataclass
class RemoveOptions(SubjectOptions, CutoutOptions):
    """Background removal: the subject's alpha (:class:`SubjectOptions`) and the cut-out options."""


def _finish(models, inputs, options: RemoveOptions, context, prediction, device=None) -> dict:
    """The subject's alpha and the cut-out, on the finish's ``device`` (None: the CPU cores); without matting the
    colours are the photo's own. With shadow keep the photo's own shadow matte too (output ``shadow``)."""
    alpha = hinted_subject.alpha(models, inputs, options, context, prediction, device)
    looks = options if options.matting else replace(options, decontaminate=False)
    return cutout.outputs(inputs["image"], alpha, looks, backdrop=inputs.get("backdrop"), device=device)


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
