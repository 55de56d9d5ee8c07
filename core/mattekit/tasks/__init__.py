"""Tasks, each declared once (:mod:`.registry`): options, pixel ports and stages over arrays.

One module per task (``segment`` = remove, ``matte``, ``upscale``, ``bokeh``, ``enhance``, ``depth``,
``preview`` = mask-preview; ``roto``, a sequence task naming its job in :mod:`mattekit.roto` by path),
each with a module-level ``TASK``; what several tasks share is declared
in :mod:`.registry` (``ModelOptions``, ``CutoutOptions``), and what they compute lives below, in
:mod:`mattekit.masks`, :mod:`mattekit.cutout`, :mod:`mattekit.matting`, :mod:`mattekit.lens`,
:mod:`mattekit.disparity`, :mod:`mattekit.retouch` and :mod:`mattekit.superres`. No task module imports
another. Adding a task is adding a module here: the CLI, the worker, GIMP and the API find it.
"""
