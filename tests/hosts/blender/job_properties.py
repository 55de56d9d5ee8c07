"""The job properties the AI Matte add-on built from the recorded roto schema (bpy as a module, the add-on
registered, no worker running): :func:`describe`, run by e2e_ai_matte.py (--checks) for
test_blender_e2e.py, both beside it. It changes the scene's settings; the caller resets them.
"""

import os

import bpy


def describe(schema, operators, folder):
    """What the job properties are (type, range, subtype, items), their defaults and changed values as the worker's
    types, whether an unknown model is refused, and the colour space the add-on sends for a plate (the two-frame EXR
    sequence ``folder/plate/p.####.exr``) in each colour space Blender can read it in."""
    job = bpy.context.scene.mattekit_ai_matte.job
    props = {}
    for prop in job.bl_rna.properties:
        if prop.identifier == "rna_type":
            continue
        entry = {"type": prop.type, "name": prop.name}
        if prop.type in ("INT", "FLOAT"):
            entry.update(min=prop.hard_min, max=prop.hard_max, default=prop.default)
        if prop.type == "STRING":
            entry["subtype"] = prop.subtype
        if prop.type == "ENUM" and not prop.is_enum_flag:
            entry["items"] = [item.identifier for item in prop.enum_items]
        props[prop.identifier] = entry
    result = {"properties": props, "defaults": schema.job_values(job, schema.job_options())}
    job.model = "birefnet-general-lite"  # the enum refuses a name its menu lacks (below)
    result["birefnet_model"] = job.model
    job.model = "csnet-sod"
    job.use_radius, job.radius, job.bit_depth, job.refine = True, 3, "8", False
    job.rgba = os.path.join(folder, "cut.####.png")  # a pattern inside the test's own folder
    result["changed"] = schema.job_values(job, schema.job_options())
    try:
        job.model = "not-a-model"
        result["unknown_model"] = "accepted"
    except TypeError:
        result["unknown_model"] = "refused"
    image = bpy.data.images.load(os.path.join(folder, "plate", "p.0001.exr"))
    image.source = "SEQUENCE"
    settings = bpy.context.scene.mattekit_ai_matte
    settings.source, settings.image, settings.output_dir = "IMAGE", image, os.path.join(folder, "mattes")
    bpy.context.scene.frame_start, bpy.context.scene.frame_end = 1, 2
    result["colorspaces"] = {}
    for name in ("ACEScg", "Linear Rec.709", "Filmic Log", "sRGB", "Non-Color"):
        image.colorspace_settings.name = name
        result["colorspaces"][name] = operators.Plan(bpy.context).options.get("colorspace")
    job.colorspace = "ACES2065-1"  # chosen in the job: it wins
    result["colorspaces"]["job's own"] = operators.Plan(bpy.context).options.get("colorspace")
    return result
