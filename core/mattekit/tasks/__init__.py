"""Tasks, each declared once (:mod:`.registry`): options, pixel ports and stages over arrays.

One module per task (``segment`` = remove, ``matte``, ``upscale``, ``bokeh``, ``enhance``, ``depth``,
``preview`` = mask-preview), each with a module-level ``TASK``; :mod:`.cutout` holds what the cut-out
tasks share. Adding a task is adding a module here: the CLI, the worker, GIMP and the API find it.
"""
