"""Tasks, each declared once (:mod:`.registry`): options, pixel ports and stages over arrays.

One module per task (``segment`` = remove, ``matte``, ``upscale``, ``bokeh``, ``enhance``, ``depth``,
``preview`` = mask-preview, ``select`` = select-subject; ``roto``, a sequence task naming its job in
:mod:`mattekit.roto` by path), each with a module-level ``TASK``; what several tasks share is declared in
:mod:`.registry` (``ModelOptions``, ``CutoutOptions``) or, for ``remove`` and ``select-subject``, in :mod:`.subject`
(the user's hint and the subject's alpha); what they compute lives below, in :mod:`mattekit.masks`, :mod:`mattekit.cutout`, :mod:`mattekit.matting`,
:mod:`mattekit.lens`, :mod:`mattekit.disparity`, :mod:`mattekit.retouch` and :mod:`mattekit.superres`. No task module imports
another (:mod:`.subject` declares none). Adding a task is adding a module here: the CLI, the worker, GIMP and the API find it.
"""
