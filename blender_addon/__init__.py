"""AI Matte: rotoscope plates with mattekit and wire the mattes into Blender's compositor.

A panel "AI Matte" in the Compositor's and the Movie Clip editor's sidebar picks the plate (an
image sequence or movie, by default the active Image / Movie Clip node's), the output folder and
the roto job's options, which come from the worker's schema (the model menu from a running
worker, so new catalog models appear without reinstalling; see :mod:`.schema`). Its operator runs a roto job on the local mattekit worker (progress in Blender,
Esc cancels, a re-run resumes), then creates or updates a plain "AI Matte" node group after the
plate: an Image node on the matte sequence (Non-Color) and Set Alpha in "Apply Mask" mode.
Works in Blender 4.2+ (4.5 LTS and 5.0 tested). No torch or numpy here: pixels never pass
through Blender's Python.
"""

import atexit

import bpy

from . import operators, schema, ui

_CLASSES = ui.CLASSES + operators.CLASSES
_registered = False
_job_class = None


def register():
    """Register the panel, the operators and the settings; the job options come from the recorded schema."""
    global _registered, _job_class
    if _registered:
        return
    _job_class = schema.job_group_class(schema.job_options())
    ui.MattekitAIMatteSettings.__annotations__["job"] = bpy.props.PointerProperty(
        type=_job_class, name="Job", description="The roto job's options (the mattekit worker's schema)"
    )
    _registered = True  # from here on, unregister() undoes whatever got registered
    atexit.register(_unregister_at_exit)  # bpy as a module hangs at exit with classes still registered
    try:
        for cls in (_job_class,) + _CLASSES:
            bpy.utils.register_class(cls)
        bpy.types.Scene.mattekit_ai_matte = bpy.props.PointerProperty(type=ui.MattekitAIMatteSettings)
    except Exception:
        unregister()
        raise


def unregister():
    global _registered
    if not _registered:
        return
    operators.RunState.current = None
    if hasattr(bpy.types.Scene, "mattekit_ai_matte"):
        del bpy.types.Scene.mattekit_ai_matte
    for cls in reversed((_job_class,) + _CLASSES):
        if cls.is_registered:
            bpy.utils.unregister_class(cls)
    atexit.unregister(_unregister_at_exit)
    _registered = False


def _unregister_at_exit():
    try:
        unregister()
    except Exception:  # interpreter shutdown: nothing more can be done
        pass
