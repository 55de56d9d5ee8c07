"""mattekit: cut subjects out of images and frame sequences, and make them look better.

The Python API (one function per task: ``remove_background``, ``matte``, ``upscale``, ``bokeh``,
``enhance``, ``depth``, ``mask_preview``, and ``rotoscope`` for frame sequences; ``load_model`` and
``clear_models``) is documented in
:mod:`mattekit.api`. Importing mattekit loads neither numpy nor torch: the API loads on first use.
"""

__version__ = "0.1.0"

_API_EXTRAS = ("load_model", "clear_models")


def __getattr__(name):
    import os

    here = os.path.dirname(__file__)
    if (
        name.startswith("_")
        or os.path.exists(os.path.join(here, name + ".py"))
        or os.path.isdir(os.path.join(here, name))
    ):
        raise AttributeError(name)  # a submodule being imported, not an API function
    from . import api

    if name in _API_EXTRAS:
        return getattr(api, name)
    table = api.functions()
    if name in table:
        return table[name]
    raise AttributeError(f"module 'mattekit' has no attribute {name!r}")


def __dir__():
    from . import api

    return sorted(list(globals()) + list(_API_EXTRAS) + list(api.functions()))
