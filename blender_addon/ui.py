"""Settings, preferences and the "AI Matte" panels (Compositor sidebar and Movie Clip editor sidebar)."""

import bpy

from . import operators


class MattekitAIMatteSettings(bpy.types.PropertyGroup):
    """Per-scene settings of the AI Matte panel."""

    source: bpy.props.EnumProperty(
        name="Plate", items=[("IMAGE", "Image", "An image sequence or movie loaded as an Image"),
                             ("CLIP", "Movie Clip", "A movie clip")], default="IMAGE")
    image: bpy.props.PointerProperty(name="Image", type=bpy.types.Image,
                                     description="The plate; empty: the active Image node's image")
    clip: bpy.props.PointerProperty(name="Clip", type=bpy.types.MovieClip,
                                    description="The plate; empty: the active Movie Clip node's (or editor's) clip")
    model: bpy.props.StringProperty(name="Model", default="",
                                    description="mattekit segmentation model (mattekit models list); empty: the default")
    device: bpy.props.EnumProperty(name="Device", items=[("auto", "Auto", ""), ("cpu", "CPU", ""),
                                                         ("cuda", "CUDA", ""), ("mps", "Apple MPS", "")])
    temporal: bpy.props.BoolProperty(name="Temporal Consistency", default=True,
                                     description="Motion-compensated smoothing over neighbouring frames (no flicker)")
    refine: bpy.props.BoolProperty(name="Refine Edges", default=True, description="Edge-aware upsampling of the matte")
    file_format: bpy.props.EnumProperty(name="Format", items=[("PNG", "PNG 16-bit", ""), ("EXR", "OpenEXR float", "")])
    output_dir: bpy.props.StringProperty(name="Output", subtype="DIR_PATH", default="//mattes/",
                                         description="Folder for the matte sequence")
    overwrite: bpy.props.BoolProperty(name="Recompute All", default=False,
                                      description="Recompute every frame instead of keeping finished ones")


class MattekitAIMattePreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    python_path: bpy.props.StringProperty(
        name="mattekit Python", subtype="FILE_PATH", default="",
        description="Interpreter of the environment where mattekit is installed (empty: the installer's record)")

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
    col.prop(settings, "model")
    col.prop(settings, "device")
    col.prop(settings, "temporal")
    col.prop(settings, "refine")
    col.prop(settings, "file_format")
    col.prop(settings, "output_dir")
    col.prop(settings, "overwrite")
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


CLASSES = (MattekitAIMatteSettings, MattekitAIMattePreferences, MATTEKIT_PT_ai_matte_compositor,
           MATTEKIT_PT_ai_matte_clip)
