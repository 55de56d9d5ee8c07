"""Plates loaded as Movie Clips in real Blender (bpy as a module, the AI Matte add-on registered, no worker running):
:func:`describe` records what the add-on would send for each (the roto job's options, with the colour space it names
for the clip) and the first frame as Blender itself reads it (the same colour space set on an Image: a float image's
pixels scene-linear Rec.709, a byte image's as its file holds them). Run by e2e_ai_matte.py (--checks) for
test_blender_e2e.py, both beside it. It changes the scene's settings; the caller resets them.
"""

import os

import bpy
import numpy as np


def describe(operators, cases, out):
    """cases: {name: [first frame file, colour space to set or None for Blender's default]} -> out/NAME.npy (the first
    frame as Blender reads it) and {name: {"colorspace", "float", "options"}}."""
    os.makedirs(out, exist_ok=True)
    scene = bpy.context.scene
    settings = scene.mattekit_ai_matte
    settings.job.model, settings.job.device = "csnet-sod", "cpu"
    scene.frame_start, scene.frame_end = 1, 2
    result = {}
    for name, (first, space) in cases.items():
        clip = bpy.data.movieclips.load(first)
        image = bpy.data.images.load(first, check_existing=False)
        if space:
            clip.colorspace_settings.name = image.colorspace_settings.name = space
        settings.source, settings.clip, settings.output_dir = "CLIP", clip, os.path.join(out, name)
        width, height = image.size
        pixels = np.array(image.pixels[:], np.float32).reshape(height, width, 4)[::-1, :, :3]  # rows bottom-up
        np.save(os.path.join(out, name + ".npy"), pixels)
        result[name] = {
            "colorspace": clip.colorspace_settings.name,
            "float": image.is_float,
            "options": operators.Plan(bpy.context).options,
        }
    return result
