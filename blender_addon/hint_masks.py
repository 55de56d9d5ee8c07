"""Keyframe hints for the roto job from a Mask datablock the artist drew over the plate.

The mask is rendered through a temporary compositor scene (a Mask node into the output, at the
plate's size) on each hint frame, to ``<output>/hints/<plate>_hint.####.png`` numbered like the
plate's files; the job's ``hint_mask`` option is that pattern, so each file is a keyframe whose
white part is the subject (mattekit carries it to the other frames). A mask whose layers outline
several subjects (two or more layers with splines) gives one object per layer, named after it:
each layer is rendered alone to ``<plate>_hint_<NAME>.####.png`` and the option is
``PATTERN@NAME;PATTERN@NAME``, so the job writes one matte sequence per object. Rendering needs no
numpy and works headless (bpy as a module included).
"""

import glob
import os
import re

import bpy

from . import nodes

_RANGE = re.compile(r"^\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*)?$")
_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]+")  # what an object name (mattekit roto's) cannot hold


def parse_frames(text, current):
    """'1, 40-42' -> [1, 40, 41, 42] (scene frames); empty: [current]. ValueError when malformed."""
    frames = set()
    for part in (text or "").split(","):
        if not part.strip():
            continue
        m = _RANGE.match(part)
        if not m:
            raise ValueError("Hint frames %r: give scene frames such as 1, 40 or 10-12." % text)
        first, last = int(m.group(1)), int(m.group(2) or m.group(1))
        frames.update(range(min(first, last), max(first, last) + 1))
    return sorted(frames) or [current]


def _plate_size(plate):
    """(width, height) of the plate's frames (a sequence's size is known only once a frame was read)."""
    width, height = plate.datablock.size[:]
    if not (width and height) and os.path.isfile(plate.path):
        probe = bpy.data.images.load(plate.path, check_existing=False)
        try:
            width, height = probe.size[:]
        finally:
            bpy.data.images.remove(probe)
    if not width or not height:
        raise ValueError("Cannot read the size of the plate %s." % plate.datablock.name)
    return width, height


def objects(mask):
    """[(MaskLayer, object name)] for a mask whose layers outline several subjects (two or more layers with
    splines), names from the layers' (letters, digits, _ and -, unique whatever the case); [] otherwise."""
    layers = [layer for layer in mask.layers if len(layer.splines)]
    if len(layers) < 2:
        return []
    named, seen = [], set()
    for layer in layers:
        base = _NOT_NAME.sub("_", layer.name).strip("_") or "object"
        name, n = base, 2
        while name.lower() in seen:
            name, n = "%s_%d" % (base, n), n + 1
        seen.add(name.lower())
        named.append((layer, name))
    return named


def hint_option(mask, plate, scene_frames, folder):
    """Render ``mask`` on ``scene_frames`` into ``folder`` (hint files of earlier runs removed): the job's
    ``hint_mask`` value and the object names ([] for one subject)."""
    os.makedirs(folder, exist_ok=True)
    stem = os.path.basename(plate.matte_pattern(folder)).split("_matte.")[0]
    earlier = re.compile(r"^%s_hint(_[A-Za-z0-9_-]+)?\.\d+\.png$" % re.escape(stem))
    for old in glob.glob(os.path.join(glob.escape(folder), stem + "_hint*.png")):  # no keyframes now
        if earlier.match(os.path.basename(old)):
            os.remove(old)
    named = objects(mask)
    if not named:
        return render(mask, plate, scene_frames, os.path.join(folder, "%s_hint.####.png" % stem)), []
    hidden = [(layer, layer.hide_render) for layer in mask.layers]
    value = []
    try:
        for layer, name in named:
            for other, _ in hidden:
                other.hide_render = other != layer
            value.append(
                render(mask, plate, scene_frames, os.path.join(folder, "%s_hint_%s.####.png" % (stem, name)))
                + "@"
                + name
            )
    finally:
        for layer, was in hidden:
            layer.hide_render = was
    return ";".join(value), [name for _, name in named]


def render(mask, plate, scene_frames, pattern):
    """Render ``mask`` on ``scene_frames`` to the files of ``pattern`` (``####``: the plate's file number)."""
    width, height = _plate_size(plate)
    scene = bpy.data.scenes.new("mattekit hint mask")
    tree = None
    try:
        scene.render.resolution_x, scene.render.resolution_y = width, height
        scene.render.resolution_percentage = 100
        scene.render.use_compositing, scene.render.use_sequencer = True, False
        scene.render.image_settings.file_format = "PNG"
        scene.render.image_settings.color_mode = "BW"
        scene.render.image_settings.color_depth = "8"
        scene.view_settings.view_transform = "Standard"
        tree = nodes.scene_tree(scene, create=True)
        for node in list(tree.nodes):  # no Render Layers node: nothing 3D is rendered
            if node.bl_idname not in ("NodeGroupOutput", "CompositorNodeComposite"):
                tree.nodes.remove(node)
        if nodes.output_socket(tree) is None:
            tree.nodes.new("CompositorNodeComposite")
        source = tree.nodes.new("CompositorNodeMask")
        source.mask = mask
        tree.links.new(source.outputs[0], nodes.output_socket(tree))
        for frame in scene_frames:
            scene.frame_set(frame)
            scene.render.filepath = pattern.replace("####", "%04d" % plate.file_number(frame))
            bpy.ops.render.render(write_still=True, scene=scene.name)
    finally:
        if nodes.IS_50 and tree is not None:
            bpy.data.node_groups.remove(tree)
        bpy.data.scenes.remove(scene)
    return pattern
