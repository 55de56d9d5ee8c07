"""Tasks, each declared once (:mod:`.registry`): options, pixel ports and stages over arrays.

One module per task, named after its command (``remove``, ``matte``, ``upscale``, ``bokeh``, ``enhance``, ``depth``,
``mask_preview``, ``select_subject``; ``roto``, a sequence task whose job is
:mod:`mattekit.roto`'s), each with a module-level ``TASK``; what several tasks share is declared in
:mod:`.common` (``ModelOptions``, ``CutoutOptions``) or, for ``remove`` and ``select-subject``, :mod:`.hinted_subject`
(the user's hint and the subject's alpha); what they compute lives below, in :mod:`mattekit.subject`, :mod:`mattekit.finish` (the network's answer made the
cut-out's alpha and colours), :mod:`mattekit.matting`,
:mod:`mattekit.lens`, :mod:`mattekit.lens.disparity`, :mod:`mattekit.ops.retouch` and :mod:`mattekit.upscaling`. No task module imports
another (:mod:`.hinted_subject` and :mod:`.common` declare none). Adding a task is adding a module here: the CLI, the worker, GIMP and the API find it.
"""
