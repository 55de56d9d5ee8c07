"""Load plates as Movie Clips in real Blender (bpy as a module) and record what the AI Matte add-on (found in
ADDON_PARENT, no worker running) would send for each: the roto job's options, with the colour space it names for the
clip; and the first frame as Blender itself reads it (the same colour space set on an Image: a float image's pixels
scene-linear Rec.709, a byte image's as its file holds them).
Run by tests/test_blender_e2e.py:

    python plate_colour.py ADDON_PARENT CASES_JSON OUTPUT_DIR   -> OUTPUT_DIR/NAME.npy, one line ``RESULT {json}``

CASES_JSON: {name: [first frame file, colour space to set or null for Blender's default]}.
"""
import json
import os
import sys

import bpy
import numpy as np

sys.path.insert(0, sys.argv[1])
import mattekit_ai_matte as addon  # noqa: E402
from mattekit_ai_matte import operators  # noqa: E402

cases, out = json.loads(sys.argv[2]), sys.argv[3]
os.makedirs(out, exist_ok=True)
addon.register()
scene = bpy.context.scene
settings = scene.mattekit_ai_matte
settings.job.model, settings.job.device = "csnet-sod", "cpu"
scene.frame_start, scene.frame_end = 1, 2
result = {"blender": bpy.app.version_string, "cases": {}}
for name, (first, space) in cases.items():
    clip = bpy.data.movieclips.load(first)
    image = bpy.data.images.load(first, check_existing=False)
    if space:
        clip.colorspace_settings.name = image.colorspace_settings.name = space
    settings.source, settings.clip, settings.output_dir = "CLIP", clip, os.path.join(out, name)
    width, height = image.size
    pixels = np.array(image.pixels[:], np.float32).reshape(height, width, 4)[::-1, :, :3]  # rows bottom-up
    np.save(os.path.join(out, name + ".npy"), pixels)
    result["cases"][name] = {"colorspace": clip.colorspace_settings.name, "float": image.is_float,
                             "options": operators.Plan(bpy.context).options}
addon.unregister()
print("RESULT " + json.dumps(result), flush=True)
