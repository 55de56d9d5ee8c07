"""The user's marks as a task's inputs: the layer, its mask, the selection, and the selected paths (closed ones as
an area, open ones as include and exclude points), and which of them fills a task's mask input (:func:`mask_input`);
the layer below, where the user checked an input's "the layer below" (:func:`from_layer_below`)."""

from gi.repository import Gimp

from gimp_pixels import path_pixels, read_pixels, selection_box, selection_pixels
from gimp_schema import PlugInError, menu_title

NEEDS_MASK = ("matte",)  # operations that in GIMP refine the user's rough mask, so one must be given
HINT_PORT = "hint_mask"  # a mask input saying where the subject is (not a mask to work on): see mask_input()
SEE_THROUGH_PORT = "see_through_mask"  # the part of the subject that is see-through: see see_through_part()


def anchors(path):
    """The anchors of every stroke of ``path`` as (x, y) image coordinates, and whether any stroke is closed.
    GIMP gives a Bezier stroke's control points as x, y pairs in threes: handle, anchor, handle."""
    points, closed = [], False
    for stroke in path.get_strokes():
        _, controls, is_closed = path.stroke_get_points(stroke)
        closed = closed or is_closed
        points += [(controls[i + 2], controls[i + 3]) for i in range(0, len(controls) - 3, 6)]
    return points, closed


def path_marks(image, op):
    """The selected paths as a subject hint: (closed paths, whose area is the hint; include points; exclude points;
    the open paths' names), points as (x, y) image coordinates. For an operation taking points, open paths give
    the points of their anchors: the upper one in the Paths dialog includes, the one below it excludes."""
    closed, opened = [], []
    for path in sorted(image.get_selected_paths(), key=image.get_item_position):
        points, is_closed = anchors(path)
        (opened if "point" in op["options"] and points and not is_closed else closed).append((path, points))
    if len(opened) > 2:
        raise PlugInError(
            "Select at most two open paths: the upper one's anchors are on the subject, the other's off it."
        )
    include, exclude = [points for _, points in opened] + [[]] * (2 - len(opened))
    return [path for path, _ in closed], include, exclude, [path.get_name() for path, _ in opened]


def the_layer(drawables):
    """The one layer a procedure works on; PlugInError for anything else (several, a mask, a channel)."""
    if len(drawables) != 1 or not isinstance(drawables[0], Gimp.Layer):
        raise PlugInError("Select exactly one layer (not a mask or channel) first.")
    return drawables[0]


def mask_input(image, layer, op):
    """(port name, source, words for the dialog): the one rule for which of the user's marks fills an
    operation's mask input. A subject hint (port HINT_PORT: where to look) takes the selection, else the
    selected closed paths' area (:func:`path_marks`), never the layer mask (often an earlier result); a mask to
    work on takes the layer mask, else the selection. source: "layer mask", "selection", "path" or None (none
    given). The words also name the points that open paths give."""
    port = next((p for p in op["inputs"][1:] if p["kind"] == "mask"), None)
    if port is None:
        return None, None, None
    hint = port["name"] == HINT_PORT
    closed, include, exclude, opened = path_marks(image, op) if hint else ([], [], [], [])
    if not hint and layer.get_mask() is not None:
        source, words = "layer mask", "the layer mask"
    elif not Gimp.Selection.is_empty(image):
        _, _, x1, y1, x2, y2 = Gimp.Selection.bounds(image)
        source, words = "selection", "the selection (%dx%d px)" % (x2 - x1, y2 - y1)
    elif closed:
        source, words = "path", "the area of the path %s" % ", ".join("'%s'" % p.get_name() for p in closed)
    elif include or exclude:
        source, words = None, "no area"
    else:
        source, words = None, ("none (no selection or path): the whole layer is searched" if hint else "none")
    for count, kind, name in zip((len(include), len(exclude)), ("on", "off"), opened):
        words += "; %d point%s %s the subject (path '%s')" % (count, "" if count == 1 else "s", kind, name)
    return port["name"], source, ("Subject hint: " if hint else "Mask: ") + words


def layer_below(image, layer):
    """The layer directly below ``layer`` in its stack (its group's, else the image's), or None."""
    parent = layer.get_parent()
    stack = parent.get_children() if parent is not None else image.get_layers()
    place = [item.get_id() for item in stack].index(layer.get_id()) + 1
    return stack[place] if place < len(stack) else None


def from_layer_below(image, layer, ports, region, dtype):
    """{port name: Pixels}: for each of ``ports`` (inputs the user checked "the layer below" for, see
    gimp_schema.layer_inputs), the layer below ``layer`` in the same ``region`` (x, y, w, h); PlugInError when
    there is none or it has another size."""
    found = {}
    for port in ports:
        below = layer_below(image, layer)
        if below is None:
            raise PlugInError('"%s" is checked, but no layer lies below "%s".' % (port["below"], layer.get_name()))
        width, height = layer.get_width(), layer.get_height()
        if (below.get_width(), below.get_height()) != (width, height):
            raise PlugInError(
                '"%s" is checked, but the layer below, "%s", is %dx%d px and "%s" is %dx%d px; they must be the '
                "same size."
                % (
                    port["below"],
                    below.get_name(),
                    below.get_width(),
                    below.get_height(),
                    layer.get_name(),
                    width,
                    height,
                )
            )
        colour = "R'G'B'" if 3 in port["channels"] else "R'G'B'A"
        found[port["name"]] = read_pixels(below, region, colour, dtype)
    return found


def see_through_part(op, options, inputs):
    """``inputs`` (from gather()) with the subject hint given instead as the part of the subject that is see-through
    (port SEE_THROUGH_PORT) where the see-through option is on and the operation takes such a mask: with the
    checkbox, the selection (else the closed paths' area) marks the glass, not where to look."""
    if options.get("see_through") and HINT_PORT in inputs and SEE_THROUGH_PORT in [p["name"] for p in op["inputs"]]:
        inputs[SEE_THROUGH_PORT] = inputs.pop(HINT_PORT)
    return inputs


def point_options(image, layer, op, options):
    """``options`` with the open paths' anchors as the include and exclude points, in layer coordinates
    ("x,y;x,y"), where the dialog left those options empty."""
    if HINT_PORT not in [p["name"] for p in op["inputs"]] or "point" not in op["options"]:
        return options
    _, include, exclude, _ = path_marks(image, op)
    _, ox, oy = layer.get_offsets()
    for name, points in (("point", include), ("exclude", exclude)):
        if points and not options.get(name):
            options[name] = ";".join("%d,%d" % (int(round(x - ox)), int(round(y - oy))) for x, y in points)
    return options


def gather(image, layer, op, dtype):
    """({port name: Pixels}, region (x, y, w, h) in layer coordinates, whether the selection is an input).

    The first input is the layer's pixels. A task taking a mask sees the whole layer, and the mask that
    mask_input() chooses; the others see the selection's box (filters act on the selection). Scaled
    outputs always take the whole layer.
    """
    image_port = op["inputs"][0]
    port, source, _ = mask_input(image, layer, op)
    region = (0, 0, layer.get_width(), layer.get_height())
    inputs = {}
    if source == "layer mask":
        inputs[port] = read_pixels(layer.get_mask(), region, "Y", dtype)
    elif source == "selection":
        inputs[port] = selection_pixels(image, layer, dtype)
    elif source == "path":
        inputs[port] = path_pixels(image, layer, dtype, path_marks(image, op)[0])
    elif op["name"] in NEEDS_MASK:
        raise PlugInError(
            "%s needs a layer mask or a selection: add a layer mask to the layer, or select the "
            "subject roughly, first." % menu_title(op)
        )
    elif port is None and op["outputs"][0]["size"] != "scaled":
        region = selection_box(layer)
    colour = "R'G'B'A" if layer.has_alpha() and 4 in image_port["channels"] else "R'G'B'"
    inputs[image_port["name"]] = read_pixels(layer, region, colour, dtype)
    return inputs, region, source in ("selection", "path")
