"""Running tasks over inputs: :mod:`.pipeline` keeps read, inference and write busy at once on many images, and
:mod:`.runner` runs every front end's task (prepare -> infer -> finish) through it, from a source to a sink."""
