"""Select Subject (task ``select-subject``): the alpha of the subject a box, points or a rough selection point at,
as a selection: GIMP's Select > Select Subject, and one file per photo on the command line.

The same subject as ``remove``'s (:mod:`.hinted_subject`: the model, or SAM 2.1 with ``hint_model``, its edge
matted) without the cut-out. Output: H x W float32 in [0, 1] (1 = subject).
"""

from __future__ import annotations

from . import hinted_subject
from .registry import Port, Task
from .hinted_subject import HINT_MASK, SubjectOptions

TASK = Task(
    name="select-subject",
    summary="Select the subject a box, points or a rough selection point at: its soft alpha, as a selection.",
    options=SubjectOptions,
    inputs=(Port("image", "image", (3, 4), integers=True), HINT_MASK),
    outputs=(Port("selection", "alpha"),),
    prepare=hinted_subject.prepare,
    finish=lambda models, inputs, options, context, y, device=None: {
        "selection": hinted_subject.alpha(models, inputs, options, context, y, device)
    },
    needs=hinted_subject.needs,
    streams=True,
    suffix="_selection",
    output_format=lambda options, source, named: ".png",
    menu="Select _Subject...",
)
