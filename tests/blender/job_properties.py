"""Register the AI Matte add-on found in ADDON_PARENT (bpy as a module, no worker running) and describe the
job properties it built from the recorded roto schema. Run by tests/test_blender_e2e.py:

    python job_properties.py ADDON_PARENT     -> one line ``RESULT {json}``
"""
import json
import os
import sys

import bpy

sys.path.insert(0, sys.argv[1])
import mattekit_ai_matte as addon  # noqa: E402
from mattekit_ai_matte import schema  # noqa: E402

addon.register()
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
job.rgba = os.path.join(sys.argv[1], "cut.####.png")  # a pattern inside the test's own folder
result["changed"] = schema.job_values(job, schema.job_options())
try:
    job.model = "not-a-model"
    result["unknown_model"] = "accepted"
except TypeError:
    result["unknown_model"] = "refused"
plate = os.path.join(sys.argv[1], "plate", "p.0001.exr")  # the test wrote it: a two-frame EXR sequence
if os.path.isfile(plate):  # the colour space the add-on sends for the plate as Blender reads it
    from mattekit_ai_matte import operators

    image = bpy.data.images.load(plate)
    image.source = "SEQUENCE"
    settings = bpy.context.scene.mattekit_ai_matte
    settings.source, settings.image, settings.output_dir = "IMAGE", image, os.path.join(sys.argv[1], "mattes")
    bpy.context.scene.frame_start, bpy.context.scene.frame_end = 1, 2
    result["colorspaces"] = {}
    for name in ("ACEScg", "Linear Rec.709", "Filmic Log", "sRGB", "Non-Color"):
        image.colorspace_settings.name = name
        result["colorspaces"][name] = operators.Plan(bpy.context).options.get("colorspace")
    job.colorspace = "ACES2065-1"  # chosen in the job: it wins
    result["colorspaces"]["job's own"] = operators.Plan(bpy.context).options.get("colorspace")
addon.unregister()
result["unregistered"] = not hasattr(bpy.types.Scene, "mattekit_ai_matte")
print("RESULT " + json.dumps(result), flush=True)
os._exit(0)
