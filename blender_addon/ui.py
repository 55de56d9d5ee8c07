"""Settings, preferences and the "AI Matte" panels (Compositor sidebar and Movie Clip editor sidebar)."""

import bpy

from . import hint_masks, operators, schema


class MattekitAIMatteSettings(bpy.types.PropertyGroup):
    """Per-scene settings of the AI Matte panel: the plate, the matte files, and ``job``, the roto job's
    options from the worker's schema (a PointerProperty added by register(), see :mod:`.schema`)."""

    source: bpy.props.EnumProperty(
        name="Plate",
        items=[
            ("IMAGE", "Image", "An image sequence or movie loaded as an Image"),
            ("CLIP", "Movie Clip", "A movie clip"),
        ],
        default="IMAGE",
    )
    image: bpy.props.PointerProperty(
        name="Image", type=bpy.types.Image, description="The plate; empty: the active Image node's image"
    )
    clip: bpy.props.PointerProperty(
        name="Clip",
        type=bpy.types.MovieClip,
        description="The plate; empty: the active Movie Clip node's (or editor's) clip",
    )
    file_format: bpy.props.EnumProperty(
        name="Format",
        items=[
            ("PNG", "PNG", "PNG matte files (Bit depth 8 or 16)"),
            ("EXR", "OpenEXR", "OpenEXR matte files (Bit depth 16: half, 32: float)"),
        ],
    )
    output_dir: bpy.props.StringProperty(
        name="Output", subtype="DIR_PATH", default="//mattes/", description="Folder for the matte sequence"
    )
    hint_mask: bpy.props.PointerProperty(
        name="Hint mask",
        type=bpy.types.Mask,
        description="A mask drawn around the subject to matte (e.g. one actor of "
        "several): used on the hint frames and carried through the shot",
    )
    hint_frames: bpy.props.StringProperty(
        name="Hint frames",
        default="",
        description="Scene frames where the hint mask outlines the subject, e.g. 1, 40 (empty: the current frame)",
    )
    shadow: bpy.props.BoolProperty(
        name="Shadow",
        default=False,
        description="Also compute the shadow the subject casts on the plate (one subject): "
        "a matte sequence beside the mattes, on the AI Matte group's Shadow "
        "output (0 none, 1 black)",
    )


class MattekitAIMattePreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    python_path: bpy.props.StringProperty(
        name="mattekit Python",
        subtype="FILE_PATH",
        default="",
        description="Interpreter of the environment where mattekit is installed (empty: the installer's record)",
    )

    def draw(self, context):
        self.layout.prop(self, "python_path")


def draw_panel(layout, context):
    settings = context.scene.mattekit_ai_matte
    layout.prop(settings, "source", expand=True)
    plate = operators.active_plate(context)
    if settings.source == "IMAGE":
        layout.prop(settings, "image")
    else:
        layout.prop(settings, "clip")
    if plate is not None and (settings.image if settings.source == "IMAGE" else settings.clip) is None:
        layout.label(text="Using: %s" % plate.datablock.name, icon="NODE")
    col = layout.column()
    col.prop(settings, "file_format")
    col.prop(settings, "output_dir")
    col.prop(settings, "shadow")
    hint = layout.column(heading="Subject")
    hint.prop(settings, "hint_mask")
    if settings.hint_mask is not None:
        hint.prop(settings, "hint_frames")
        named = hint_masks.objects(settings.hint_mask)
        if named:  # a layer per subject: one matte each
            hint.label(text="Objects: " + ", ".join(name for _, name in named))
    options = schema.job_options()
    if options:
        schema.draw(layout.column(), settings.job, options)
    else:
        layout.label(text="No worker schema recorded: run install/install_blender.py", icon="ERROR")
    run = operators.RunState.current
    if run is None:
        layout.operator(operators.MATTEKIT_OT_ai_matte.bl_idname, icon="NODE_COMPOSITING")
    else:
        if hasattr(layout, "progress"):  # Blender 4.0+
            layout.progress(factor=run.progress, type="BAR", text=run.message[:60])
        else:
            layout.label(text="%.0f%% %s" % (100 * run.progress, run.message[:60]))
        layout.operator(operators.MATTEKIT_OT_ai_matte_cancel.bl_idname, icon="CANCEL")


class MATTEKIT_PT_ai_matte_compositor(bpy.types.Panel):
    bl_label = "AI Matte"
    bl_space_type = "NODE_EDITOR"
    bl_region_type = "UI"
    bl_category = "AI Matte"

    @classmethod
    def poll(cls, context):
        return getattr(context.space_data, "tree_type", "") == "CompositorNodeTree"

    def draw(self, context):
        draw_panel(self.layout, context)


class MATTEKIT_PT_ai_matte_clip(bpy.types.Panel):
    bl_label = "AI Matte"
    bl_space_type = "CLIP_EDITOR"
    bl_region_type = "UI"
    bl_category = "AI Matte"

    def draw(self, context):
        draw_panel(self.layout, context)


CLASSES = (
    MattekitAIMatteSettings,
    MattekitAIMattePreferences,
    MATTEKIT_PT_ai_matte_compositor,
    MATTEKIT_PT_ai_matte_clip,
)
