"""Draw a Mask datablock around one subject of a plate and run the AI Matte operator with it as the hint
(bpy as a module, headless). Run by tests/unit/roto/test_roto_hints_blender.py with a bpy venv's python:

    python hint_mask.py ADDON_PARENT PLATE_FIRST_FILE OUTPUT_DIR X0 Y0 X1 Y1 [MODEL [X0 Y0 X1 Y1]]

The add-on in ADDON_PARENT/mattekit_ai_matte is registered from there; the plate (an image sequence,
scene frames 1..N) is loaded; a mask with one square spline is drawn in the mask's normalised space
from X0,Y0 to X1,Y1 (0..1 across the plate's width, y up, centred on the frame's height); the operator
runs the roto job (MODEL: u2netp unless named) on the mattekit worker with that mask as the hint on scene frame 1. A
second box draws a second layer: the layers "Dog" and "Black swan" outline two objects. Prints one line
``RESULT {json}`` (with the AI Matte group's output sockets).
"""

import json
import os
import sys

import bpy

sys.path.insert(0, sys.argv[1])
import mattekit_ai_matte as addon  # noqa: E402

first_file, output = sys.argv[2], sys.argv[3]
x0, y0, x1, y1 = map(float, sys.argv[4:8])
addon.register()
scene = bpy.context.scene
image = bpy.data.images.load(first_file)
image.source = "SEQUENCE"
count = len([n for n in os.listdir(os.path.dirname(first_file)) if n.endswith(".png")])
scene.frame_start, scene.frame_end = 1, count
scene.frame_set(1)

mask = bpy.data.masks.new("Subject")
boxes = [(x0, y0, x1, y1)] + ([tuple(map(float, sys.argv[9:13]))] if len(sys.argv) > 12 else [])
for name, (a0, b0, a1, b1) in zip(["Subject"] if len(boxes) == 1 else ["Dog", "Black swan"], boxes):
    spline = mask.layers.new(name=name).splines.new()
    spline.points.add(3)
    for point, co in zip(spline.points, [(a0, b0), (a1, b0), (a1, b1), (a0, b1)]):
        point.co = co
        point.handle_type = "VECTOR"
    spline.use_cyclic = True

settings = scene.mattekit_ai_matte
settings.source = "IMAGE"
settings.image = image
settings.output_dir = output
settings.hint_mask = mask
# (csnet-sod barely sees the small dog in a hinted crop)
settings.job.model = sys.argv[8] if len(sys.argv) > 8 else "u2netp"
settings.job.use_radius, settings.job.radius = True, 1
settings.job.bit_depth = "8"
outcome = bpy.ops.mattekit.ai_matte()
group = bpy.data.node_groups.get("AI Matte")
result = {
    "operator": sorted(outcome),
    "blender": bpy.app.version_string,
    "files": sorted(os.listdir(output)),
    "hints": sorted(os.listdir(os.path.join(output, "hints"))),
    "outputs": [
        item.name for item in group.interface.items_tree if item.item_type == "SOCKET" and item.in_out == "OUTPUT"
    ]
    if group
    else None,
    "hide_render": [layer.hide_render for layer in mask.layers],
}
addon.unregister()
print("RESULT " + json.dumps(result), flush=True)
os._exit(0)
