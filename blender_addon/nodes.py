"""The compositor side: where a plate's frames are, and the "AI Matte" node group.

The node group is a plain CompositorNodeGroup (no custom node class), so a .blend that uses it
renders on a machine without this add-on (a render farm). Inside it, an Image node reads the
matte sequence (Non-Color, with the plate node's frame mapping) and a Set Alpha node in
"Apply Mask" mode puts the matte on the plate.

Blender maps scene frame F to file number ``F - frame_start + 1 + frame_offset`` for image
sequences and movies alike (movie frames counted from 1), so the matte sequence is written with
the plate's own file numbers and its Image node copies the plate's frame_start/frame_offset.
"""

import os
import re

import bpy

GROUP_NAME = "AI Matte"
IS_50 = bpy.app.version >= (5, 0, 0)
_NUMBER = re.compile(r"^(.*?)(\d+)(\D*)$")


class Plate:
    """A plate as Blender shows it: a file (one frame of a sequence, or a movie) and its frame mapping."""

    def __init__(self, kind, path, movie, frame_start, frame_offset, frame_duration, datablock):
        self.kind = kind  # "IMAGE" or "CLIP"
        self.path = path  # absolute path of a frame file or of the movie
        self.movie = movie
        self.frame_start = frame_start
        self.frame_offset = frame_offset
        self.frame_duration = frame_duration
        self.datablock = datablock

    def file_number(self, scene_frame):
        """The plate file number (movie frame from 1) shown at ``scene_frame``."""
        return scene_frame - self.frame_start + 1 + self.frame_offset

    def file_range(self, scene_start, scene_end):
        """(first, last) file numbers for the scene range, clipped to the plate's frames; None if none."""
        first = max(scene_start, self.frame_start)
        last = min(scene_end, self.frame_start + self.frame_duration - 1)
        if last < first:
            return None
        return self.file_number(first), self.file_number(last)

    def matte_pattern(self, folder, suffix=".png"):
        """``folder/<plate name>_matte.####<suffix>``, padded like the plate's file names."""
        stem, ext = os.path.splitext(os.path.basename(self.path))
        m = None if self.movie else _NUMBER.match(stem)
        if m:
            name = m.group(1).rstrip("._- ") or os.path.basename(os.path.dirname(self.path)) or "plate"
            digits = len(m.group(2))
        else:
            name, digits = stem, 4
        return os.path.join(folder, "%s_matte.%s%s" % (name, "#" * digits, suffix))


def plate_from_image(image, node=None):
    """The Plate of an Image datablock (sequence or movie), framed as ``node`` shows it; without a
    node, from scene frame 1 on, as Blender frames a sequence it loads (offset = first number - 1)."""
    if image is None or image.source not in {"SEQUENCE", "MOVIE", "FILE"}:
        return None
    path = os.path.normpath(bpy.path.abspath(image.filepath, library=image.library))
    movie = image.source == "MOVIE"
    if node is not None:
        return Plate("IMAGE", path, movie, node.frame_start, node.frame_offset, node.frame_duration, image)
    m = None if movie else _NUMBER.match(os.path.splitext(os.path.basename(path))[0])
    if m is None:
        return Plate("IMAGE", path, movie, 1, 0, max(1, image.frame_duration), image)
    first, width = int(m.group(2)), len(m.group(2))
    head, tail = os.path.join(os.path.dirname(path), m.group(1)), m.group(3) + os.path.splitext(path)[1]
    count = 0
    while os.path.isfile("%s%0*d%s" % (head, width, first + count, tail)):
        count += 1
    return Plate("IMAGE", path, movie, 1, first - 1, max(1, count), image)


def plate_from_clip(clip):
    if clip is None:
        return None
    path = os.path.normpath(bpy.path.abspath(clip.filepath, library=clip.library))
    offset = clip.frame_offset
    if clip.source == "SEQUENCE":  # clip sequences count from the first file's number
        m = _NUMBER.match(os.path.splitext(os.path.basename(path))[0])
        offset += int(m.group(2)) - 1 if m else 0
    return Plate("CLIP", path, clip.source == "MOVIE", clip.frame_start, offset, clip.frame_duration, clip)


# ---------------------------------------------------------------- the scene's compositor tree


def scene_tree(scene, create=False):
    """The scene's compositing node tree (4.5: scene.node_tree; 5.0: scene.compositing_node_group)."""
    if IS_50:
        tree = scene.compositing_node_group
        if tree is None and create:
            tree = bpy.data.node_groups.new("%s Compositing" % scene.name, "CompositorNodeTree")
            tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
            tree.nodes.new("NodeGroupOutput").location = (600, 0)
            scene.compositing_node_group = tree
        return tree
    if create and not scene.use_nodes:
        scene.use_nodes = True
    return scene.node_tree


def find_plate_node(tree, kind, datablock):
    """The Image ("IMAGE") or Movie Clip ("CLIP") node in ``tree`` showing ``datablock``, the active one first."""
    if tree is None or datablock is None:
        return None
    idname, attr = ("CompositorNodeImage", "image") if kind == "IMAGE" else ("CompositorNodeMovieClip", "clip")
    candidates = [tree.nodes.active] + list(tree.nodes)
    return next(
        (n for n in candidates if n is not None and n.bl_idname == idname and getattr(n, attr) == datablock), None
    )


def add_plate_node(tree, plate):
    if plate.kind == "IMAGE":
        node = tree.nodes.new("CompositorNodeImage")
        node.image = plate.datablock
        node.frame_start, node.frame_offset = plate.frame_start, plate.frame_offset
        node.frame_duration = plate.frame_duration
    else:
        node = tree.nodes.new("CompositorNodeMovieClip")
        node.clip = plate.datablock
    node.location = (-400, 0)
    return node


def output_socket(tree):
    """Where the final picture goes: Composite's Image input (4.5) or the tree's Group Output (5.0)."""
    for node in tree.nodes:
        if node.bl_idname == "NodeGroupOutput" and IS_50 and node.inputs:
            return node.inputs[0]
        if node.bl_idname == "CompositorNodeComposite":
            return node.inputs["Image"]
    return None


# ---------------------------------------------------------------- the node group


def set_apply_mask(node):
    """Set Alpha in "Apply Mask" mode (5.0: a menu input; 4.5: the node's mode)."""
    if "Type" in node.inputs:
        node.inputs["Type"].default_value = "Apply Mask"
    else:
        node.mode = "APPLY"


def load_matte_sequence(first_file):
    """The matte sequence as a Non-Color image datablock (reused and reloaded when already loaded); its
    path is relative to the saved .blend."""
    target = os.path.normpath(first_file)
    for image in bpy.data.images:
        if image.source == "SEQUENCE" and os.path.normpath(bpy.path.abspath(image.filepath)) == target:
            image.reload()
            return image
    image = bpy.data.images.load(first_file, check_existing=False)
    image.source = "SEQUENCE"
    image.colorspace_settings.name = "Non-Color"
    if bpy.data.filepath:  # relative to the .blend, so that the mattes travel with it (render farms)
        try:
            image.filepath = bpy.path.relpath(first_file)
        except ValueError:  # another drive (Windows): keep the absolute path
            pass
    return image


def sequence_node(group, label, image, plate, location):
    """An Image node in ``group`` showing the matte sequence ``image`` with the plate's own frame mapping (matte files
    carry the plate's numbers), labelled ``label``."""
    node = group.nodes.new("CompositorNodeImage")
    node.name = node.label = label
    node.image = image
    node.frame_start = plate.frame_start
    node.frame_duration = plate.frame_duration
    node.frame_offset = plate.frame_offset
    node.use_cyclic = False
    node.use_auto_refresh = True
    node.location = location
    return node


def build_group(group, mattes, plate, alpha_socket="Image", shadow=None):
    """Fill ``group`` (a CompositorNodeTree) for ``mattes`` ([(object name or None, matte sequence image)]):
    input Image -> Set Alpha (Apply Mask; alpha: the matte, or with several objects their union, the largest
    value) -> output Image; that alpha on output Matte, and each object's matte on output "Matte NAME"; ``shadow``
    (the shadow's sequence image, or None) on output Shadow."""
    group.nodes.clear()
    wanted = [
        ("INPUT", "Image", "NodeSocketColor"),
        ("OUTPUT", "Image", "NodeSocketColor"),
        ("OUTPUT", "Matte", "NodeSocketFloat"),
    ]
    if len(mattes) > 1:
        wanted += [("OUTPUT", "Matte %s" % name, "NodeSocketFloat") for name, _ in mattes]
    if shadow is not None:
        wanted.append(("OUTPUT", "Shadow", "NodeSocketFloat"))
    sockets = [item for item in group.interface.items_tree if item.item_type == "SOCKET"]
    if [(item.in_out, item.name, item.socket_type) for item in sockets] != wanted:  # another set of objects
        for item in sockets:
            group.interface.remove(item)
        for in_out, name, kind in wanted:
            group.interface.new_socket(name, in_out=in_out, socket_type=kind)
    inp = group.nodes.new("NodeGroupInput")
    out = group.nodes.new("NodeGroupOutput")
    links = group.links
    alpha = None
    for i, (name, image) in enumerate(mattes):
        matte = sequence_node(
            group, "Matte Sequence" + ("" if name is None else " " + name), image, plate, (-500, -150 - 250 * i)
        )
        if name is not None:
            links.new(matte.outputs[alpha_socket], out.inputs["Matte %s" % name])
        if alpha is None:
            alpha = matte.outputs[alpha_socket]
            continue
        union = group.nodes.new("ShaderNodeMath")  # a compositor node in Blender 4.5 and 5.0 alike
        union.operation = "MAXIMUM"
        union.location = (-250, -150 - 250 * i)
        links.new(alpha, union.inputs[0])
        links.new(matte.outputs[alpha_socket], union.inputs[1])
        alpha = union.outputs[0]
    apply = group.nodes.new("CompositorNodeSetAlpha")
    set_apply_mask(apply)
    inp.location, apply.location, out.location = (-500, 100), (0, 0), (250, 0)
    links.new(inp.outputs["Image"], apply.inputs["Image"])
    links.new(alpha, apply.inputs["Alpha"])
    links.new(apply.outputs["Image"], out.inputs["Image"])
    links.new(alpha, out.inputs["Matte"])
    if shadow is not None:
        cast = sequence_node(group, "Shadow Sequence", shadow, plate, (-500, -150 - 250 * len(mattes)))
        links.new(cast.outputs[alpha_socket], out.inputs["Shadow"])
    return group


def matte_group_after(tree, plate_node):
    """The AI Matte group node fed by ``plate_node`` (created and linked in when missing).

    Whatever the plate fed before (Composite, Viewer, other nodes) is fed by the group instead.
    """
    source = plate_node.outputs["Image"]
    for link in source.links:
        node = link.to_node
        if node.bl_idname == "CompositorNodeGroup" and node.node_tree and node.node_tree.name.startswith(GROUP_NAME):
            return node
    group = bpy.data.node_groups.new(GROUP_NAME, "CompositorNodeTree")
    node = tree.nodes.new("CompositorNodeGroup")
    node.node_tree = group
    node.name = node.label = GROUP_NAME
    node.location = (plate_node.location.x + 260, plate_node.location.y)
    return node


def wire(tree, plate_node, node):
    """Link plate -> group, and the group's output to where the plate went (or to the final output)."""
    source = plate_node.outputs["Image"]
    targets = [link.to_socket for link in source.links if link.to_node != node]
    for link in [other for other in source.links if other.to_node != node]:
        tree.links.remove(link)
    if not node.inputs["Image"].is_linked:
        tree.links.new(source, node.inputs["Image"])
    if not targets:
        final = output_socket(tree)
        if final is not None and not final.is_linked:
            targets = [final]
    for socket in targets:
        tree.links.new(node.outputs["Image"], socket)
