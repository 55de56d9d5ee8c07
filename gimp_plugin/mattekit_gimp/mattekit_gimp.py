#!/usr/bin/env python3
"""mattekit for GIMP 3: one Filters > AI procedure per task that the worker's schema gives a menu label.

No task is named here. Procedures, their arguments and where results go all come from the schema
(``GET /v1/operations``: each task's ports and options, and the catalog's models): a running
worker's when there is one (never started just to list procedures), else the one the installer
recorded in ``mattekit_worker.json``. GIMP asks a plug-in for its procedures only when the plug-in
file changes, which the installer makes happen whenever the recorded schema changes: so a new task
or option appears after the installer runs, while new models appear at once, because the dialog
fills its model menus from the live worker.

A thin client: pixels go to the local mattekit worker (``mattekit serve``, started on demand with
the interpreter and settings the installer recorded) and results come back as a layer mask, a new
layer or a new image. No numpy and no torch here: this runs in GIMP's Python.
"""
import json
import os
import sys

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, GLib, GObject  # noqa: E402

HERE = os.path.dirname(os.path.realpath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
try:
    from mattekit_wire import client  # the copy of mattekit.wire the installer put next to this file
except ImportError:  # running from a source checkout
    from mattekit.wire import client

MENU = "<Image>/Filters/AI"
SELECT_MENU = "<Image>/Select"
PREFIX = "mattekit-"
RW = GObject.ParamFlags.READWRITE
BABL_TYPE = {"u8": "u8", "u16": "u16", "f32": "float"}
DEFAULT = "default"  # the choice (and model menu entry) meaning "the task's own default"
MATTES = ("mask", "alpha")  # port kinds whose 1-channel results become a layer mask or a cut-out
NEEDS_MASK = ("matte",)  # operations that in GIMP refine the user's rough mask, so one must be given
HINT_PORT = "hint_mask"  # a mask input saying where the subject is (not a mask to work on): see mask_input()
SELECTION_PORT = "selection"  # an output that becomes the image's selection (Select Subject): see placements()
BIG = 2 ** 31 - 1  # bounds of numeric arguments whose option declares none
PROVENANCE = "mattekit-provenance"  # the parasite holding what made a result (JSON), saved in XCF files
KEEP_SHADOW = "keep"  # the shadow option's value that keeps the photo's own shadow (its own layer here)


class PlugInError(Exception):
    """A problem to show the user as one sentence."""


# ---------------------------------------------------------------- pixels between GIMP and the worker

def pixel_type(image):
    """The worker dtype that holds this image's precision without loss: u8, u16 or f32."""
    name = image.get_precision().value_nick  # e.g. "u8-non-linear", "u16-perceptual", "float-linear"
    kind = name.split("-")[0]
    return kind if kind in ("u8", "u16") else "f32"


def read_pixels(drawable, rect, components, dtype, abyss=Gegl.AbyssPolicy.CLAMP):
    """Pixels of ``drawable`` (or of the image's selection channel) in ``rect`` = (x, y, w, h).

    components: "R'G'B'" / "R'G'B'A" (sRGB-encoded colour, as the models expect) or "Y" (a
    mask or selection: linear coverage). Returns client.Pixels.
    """
    x, y, w, h = rect
    fmt = "%s %s" % (components, BABL_TYPE[dtype])
    data = drawable.get_buffer().get(Gegl.Rectangle.new(x, y, w, h), 1.0, fmt, abyss)
    channels = len(components.replace("'", ""))
    return client.Pixels(_little_endian(bytes(data), dtype), w, h, channels, dtype)


def write_pixels(drawable, x, y, pixels, through_selection=True, matte=False):
    """Write client.Pixels at (x, y); ``matte``: one channel of linear coverage (else sRGB colour).

    ``through_selection`` goes through the shadow buffer, which GIMP merges through the selection
    (an undo step); otherwise the buffer is written directly (where the selection was an input).
    """
    components = ("Y" if matte else {1: "Y'", 2: "Y'A", 3: "R'G'B'", 4: "R'G'B'A"}[pixels.channels])
    fmt = "%s %s" % (components, BABL_TYPE[pixels.dtype])
    rect = Gegl.Rectangle.new(x, y, pixels.width, pixels.height)
    buffer = drawable.get_shadow_buffer() if through_selection else drawable.get_buffer()
    buffer.set(rect, fmt, _little_endian(pixels.data, pixels.dtype))
    buffer.flush()
    if through_selection:
        drawable.merge_shadow(True)
    drawable.update(x, y, pixels.width, pixels.height)


def selection_box(layer, what="selection"):
    """(x, y, w, h) in layer coordinates of the selection's bounds within the layer; PlugInError when none."""
    found, x, y, w, h = layer.mask_intersect()
    if not found or w == 0 or h == 0:
        raise PlugInError("The %s does not touch the layer." % what)
    return x, y, w, h


def selection_pixels(image, layer, dtype, what="selection"):
    """The image's selection over the layer (the selection is in image coordinates; 0 beyond the image)."""
    selection_box(layer, what)
    _, ox, oy = layer.get_offsets()
    rect = (ox, oy, layer.get_width(), layer.get_height())
    return read_pixels(image.get_selection(), rect, "Y", dtype, Gegl.AbyssPolicy.NONE)


def path_pixels(image, layer, dtype, paths):
    """The area of ``paths`` over the layer, read through a temporary selection: only called when nothing is
    selected, and nothing is selected afterwards."""
    for i, path in enumerate(paths):
        image.select_item(Gimp.ChannelOps.ADD if i else Gimp.ChannelOps.REPLACE, path)
    try:
        return selection_pixels(image, layer, dtype, "path")
    finally:
        Gimp.Selection.none(image)


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
        raise PlugInError("Select at most two open paths: the upper one's anchors are on the subject, the other's "
                          "off it.")
    include, exclude = [points for _, points in opened] + [[]] * (2 - len(opened))
    return [path for path, _ in closed], include, exclude, [path.get_name() for path, _ in opened]


def crop(pixels, x, y, width, height):
    """The part of ``pixels`` placed at (x, y) that lies in the rectangle (0, 0, width, height), as
    (x, y, client.Pixels) there; None when no part does."""
    left, top = max(x, 0), max(y, 0)
    right, bottom = min(x + pixels.width, width), min(y + pixels.height, height)
    if right <= left or bottom <= top:
        return None
    if (left, top, right - left, bottom - top) == (x, y, pixels.width, pixels.height):
        return x, y, pixels
    size = pixels.channels * {"u8": 1, "u16": 2, "f32": 4}[pixels.dtype]
    row = pixels.width * size
    data = b"".join(pixels.data[(r - y) * row + (left - x) * size:(r - y) * row + (right - x) * size]
                    for r in range(top, bottom))
    return left, top, client.Pixels(data, right - left, bottom - top, pixels.channels, pixels.dtype)


def _little_endian(data, dtype):
    """GEGL buffers are in native byte order; the worker speaks little-endian."""
    if sys.byteorder == "little" or dtype == "u8":
        return data
    import array
    values = array.array({"u16": "H", "f32": "f"}[dtype], data)
    values.byteswap()
    return values.tobytes()


# ---------------------------------------------------------------- the worker and its schema

def known_schema():
    """{"operations": [...], "models": {...}}: a running worker's (none is started), else the installer's record."""
    record = client.read_record(HERE)
    worker = client.find_worker(client.recorded_state_file(record))
    if worker is not None:
        try:
            return worker.schema()
        except client.WorkerError:
            pass
    return record.get("schema") or {"operations": [], "models": {}}


def connect():
    """The running worker, or one started with the interpreter and settings the installer recorded."""
    return client.connect_recorded(client.read_record(HERE))


def run_on_worker(worker, op, inputs, options):
    """Run one operation with GIMP's progress bar (connecting first when ``worker`` is None); its outputs (the
    result first, then a kept shadow's matte where one was asked for)."""
    title = menu_title(op)
    Gimp.progress_init(title)
    state = {"message": ""}

    def progress(fraction, message):
        if message and message != state["message"]:
            state["message"] = message
            Gimp.progress_set_text("%s: %s" % (title, message))
        Gimp.progress_update(fraction)

    try:
        return (worker or connect()).run(op["name"], inputs, options, progress=progress)
    finally:
        Gimp.progress_end()


def procedure_name(menu):
    """'Remove _Background...' -> 'mattekit-remove-background'."""
    return PREFIX + "-".join(menu.replace("_", "").replace(".", "").lower().split())


def menu_title(op):
    return op["menu"].replace("_", "").rstrip(".")


def argument(option_name):
    return option_name.replace("_", "-")


def shown_options(op):
    """{option name: schema} of the options that become arguments (paths are for files, not dialogs)."""
    return dict((name, opt) for name, opt in op["options"].items() if not opt.get("path"))


def makes_matte(op):
    """Whether the result can be one channel of coverage: a mask/alpha port, or a ``result`` that can be alpha."""
    return op["outputs"][0]["kind"] in MATTES or "alpha" in op["options"].get("result", {}).get("choices", ())


def placements(op):
    """The "output" argument's choices: (nick, label) pairs; none when there is one place for the result."""
    if op["outputs"][0]["name"] == SELECTION_PORT:
        return [("selection", "Selection (replaces it)"), ("mask", "Layer mask on the layer")]
    if makes_matte(op):
        return [("mask", "Layer mask on the layer"), ("layer", "New cut-out layer")]
    if op["outputs"][0]["size"] == "scaled":
        return [("image", "New image"), ("layer", "New layer (the image is scaled too)")]
    return []


# ---------------------------------------------------------------- arguments from options, and back

def choice(items):
    """A Gimp.Choice from (nick, label) pairs."""
    c = Gimp.Choice.new()
    for i, (nick, label) in enumerate(items):
        c.add(nick, i, label, "")
    return c


def add_option(procedure, name, opt):
    """One GIMP argument for one option. Models and free text are strings (a model: "" = the default);
    a number that may be left to the task is text too ("" = automatic)."""
    label, blurb, default, kind = "_" + opt["label"], opt["help"], opt["default"], opt["type"]
    if "choices" in opt and "model" not in opt:
        items = ([(DEFAULT, "Default")] if opt["nullable"] else []) + [(str(c), str(c)) for c in opt["choices"]]
        procedure.add_choice_argument(name, label, blurb, choice(items), DEFAULT if default is None else str(default), RW)
    elif kind == "bool":
        procedure.add_boolean_argument(name, label, blurb, bool(default), RW)
    elif kind == "str" or opt["nullable"]:
        if kind != "str":
            blurb += " (empty: automatic)"
        procedure.add_string_argument(name, label, blurb, "" if default is None else str(default), RW)
    elif kind == "int":
        procedure.add_int_argument(name, label, blurb, int(opt.get("minimum", -BIG)), int(opt.get("maximum", BIG)),
                                   default, RW)
    else:
        procedure.add_double_argument(name, label, blurb, float(opt.get("minimum", -BIG)),
                                      float(opt.get("maximum", BIG)), default, RW)


def option_value(opt, raw):
    """The option's value from its GIMP argument's (None: the task's default)."""
    kind = opt["type"]
    if "choices" in opt and "model" not in opt:
        if raw == DEFAULT and opt["nullable"]:
            return None
        return dict((str(c), c) for c in opt["choices"]).get(raw, raw)
    if kind == "bool":
        return bool(raw)
    if kind == "str":
        empty = raw in ("", DEFAULT) if "model" in opt else raw == ""
        return None if empty and opt["nullable"] else raw
    if not opt["nullable"]:
        return int(raw) if kind == "int" else float(raw)
    text = (raw or "").strip()
    if not text:
        return None
    try:
        return int(text) if kind == "int" else float(text)
    except ValueError:
        raise PlugInError("%s must be %s, or empty for automatic, not %r."
                          % (opt["label"], "a whole number" if kind == "int" else "a number", text))


def option_values(op, config):
    return dict((name, option_value(opt, config.get_property(argument(name))))
                for name, opt in shown_options(op).items())


# ---------------------------------------------------------------- the dialog

def ask(procedure, config, op, models, note=None):
    """The procedure's dialog, model menus filled from the live worker's ``models``, ``note`` (what the
    mask input will be) as a line below; True when accepted."""
    gi.require_version("GimpUi", "3.0")
    gi.require_version("Gtk", "3.0")
    from gi.repository import GimpUi, Gtk
    GimpUi.init("mattekit_gimp")
    dialog = GimpUi.ProcedureDialog.new(procedure, config, menu_title(op))
    options = shown_options(op)
    menus = dict((argument(n), o) for n, o in options.items() if "model" in o)
    dialog.fill(([] if not placements(op) else ["output"]) + [argument(n) for n in options if argument(n) not in menus])
    combos = {}
    for name, opt in menus.items():
        combos[name] = combo = Gtk.ComboBoxText.new()
        tasks = opt["model"] if isinstance(opt["model"], list) else [opt["model"]]
        entries = [m for task in tasks for m in models.get(task, [])]
        default = [m["name"] for m in entries if m.get("default")]
        combo.append(DEFAULT, "Default" + (" (%s)" % default[0] if default else ""))
        if opt.get("none"):  # the value "none": no model of this kind, something else answers (the option says what)
            combo.append("none", "None: %s" % opt["none"])
        for m in entries:
            combo.append(m["name"], "%s: %s" % (m["name"], m.get("description", "")))
        if not combo.set_active_id(config.get_property(name) or DEFAULT):
            combo.set_active_id(DEFAULT)
        label = Gtk.Label.new_with_mnemonic("_" + opt["label"])
        label.set_mnemonic_widget(combo)
        row = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=12)
        row.pack_start(label, False, False, 0)
        row.pack_start(combo, True, True, 0)
        dialog.get_content_area().pack_start(row, False, False, 0)
        row.show_all()
    if note:
        label = Gtk.Label.new(note)
        label.set_xalign(0.0)
        dialog.get_content_area().pack_start(label, False, False, 0)
        label.show()
    accepted = dialog.run()
    if accepted:
        for name, combo in combos.items():
            chosen = combo.get_active_id()
            config.set_property(name, "" if chosen in (None, DEFAULT) else chosen)
    dialog.destroy()
    return accepted


# ---------------------------------------------------------------- running one operation

def the_layer(drawables):
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
        raise PlugInError("%s needs a layer mask or a selection: add a layer mask to the layer, or select the "
                          "subject roughly, first." % menu_title(op))
    elif port is None and op["outputs"][0]["size"] != "scaled":
        region = selection_box(layer)
    colour = "R'G'B'A" if layer.has_alpha() and 4 in image_port["channels"] else "R'G'B'"
    inputs[image_port["name"]] = read_pixels(layer, region, colour, dtype)
    return inputs, region, source in ("selection", "path")


def new_layer(image, layer, name, with_alpha, copy=False):
    """A new layer just above ``layer``, at its offsets: a copy of it, or transparent."""
    if copy:
        new = layer.copy()
        new.set_name(name)
    else:
        kind = Gimp.ImageType.RGBA_IMAGE if with_alpha else Gimp.ImageType.RGB_IMAGE
        new = Gimp.Layer.new(image, name, layer.get_width(), layer.get_height(), kind, 100.0, Gimp.LayerMode.NORMAL)
    image.insert_layer(new, layer.get_parent(), image.get_item_position(layer))
    _, ox, oy = layer.get_offsets()
    new.set_offsets(ox, oy)
    if not copy:
        new.fill(Gimp.FillType.TRANSPARENT)
    return new


def place(image, layer, op, output, result, region, from_selection, interactive):
    """Put the result where ``output`` says; returns the layer or new image made or changed.

    One channel of coverage: into the layer mask, or a new cut-out layer (a copy of the layer with it
    as alpha). A scaled image: a new image, or a new layer over the image scaled to match. Another
    image: a new layer above (transparent outside the region for cut-outs, else the layer's own pixels).
    Writes merge through the selection unless the selection was the input.
    """
    x, y = region[:2]
    through = not from_selection
    port = op["outputs"][0]
    if output == "selection":
        return select(image, layer, x, y, result)
    if result.channels == 1 and makes_matte(op):
        target = layer
        if output == "layer":
            target = new_layer(image, layer, layer.get_name() + " (cut out)", True, copy=True)
            if target.get_mask() is not None:
                target.remove_mask(Gimp.MaskApplyMode.APPLY)
            if not target.has_alpha():
                target.add_alpha()
            layer.set_visible(False)
        mask = target.get_mask()
        if mask is None:
            mask = target.create_mask(Gimp.AddMaskType.BLACK)
            target.add_mask(mask)
        write_pixels(mask, x, y, result, through, matte=True)
        if target is not layer:
            target.remove_mask(Gimp.MaskApplyMode.APPLY)
        return target
    if port["size"] == "scaled":
        factor = float(result.width) / layer.get_width()
        name = "%s (x%g)" % (layer.get_name(), round(factor, 3))
        if output == "image":
            made = Gimp.Image.new_with_precision(result.width, result.height, Gimp.ImageBaseType.RGB,
                                                 image.get_precision())
            target = Gimp.Layer.new(made, name, result.width, result.height, Gimp.ImageType.RGBA_IMAGE
                                    if result.channels in (2, 4) else Gimp.ImageType.RGB_IMAGE, 100.0,
                                    Gimp.LayerMode.NORMAL)
            made.insert_layer(target, None, 0)
            write_pixels(target, 0, 0, result, through_selection=False)
            if interactive:
                Gimp.Display.new(made)
            return made
        factor_y = float(result.height) / layer.get_height()
        image.scale(int(round(image.get_width() * factor)), int(round(image.get_height() * factor_y)))
        target = new_layer(image, layer, name, result.channels in (2, 4))
        write_pixels(target, 0, 0, result, through_selection=False)
        return target
    cut_out = "result" in op["options"] and result.channels in (2, 4)  # an RGBA cut-out, not a composite
    name = layer.get_name() + (" (cut out)" if cut_out else " (%s)" % op["name"])
    target = new_layer(image, layer, name, result.channels in (2, 4), copy=not cut_out)
    if cut_out:
        layer.set_visible(False)
    write_pixels(target, x, y, result, through)
    return target


def place_shadow(image, layer, target, shadow, region):
    """The photo's own shadow (one channel of coverage for ``region`` of ``layer``) as its own layer just under
    ``target`` (the cut-out): black, the shadow as its layer mask, so the user can move, soften or fade it."""
    shade = Gimp.Layer.new(image, layer.get_name() + " (shadow)", layer.get_width(), layer.get_height(),
                           Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
    image.insert_layer(shade, target.get_parent(), image.get_item_position(target) + 1)
    _, ox, oy = layer.get_offsets()
    shade.set_offsets(ox, oy)
    Gimp.context_push()
    try:
        Gimp.context_set_foreground(Gegl.Color.new("black"))
        shade.fill(Gimp.FillType.FOREGROUND)
    finally:
        Gimp.context_pop()
    mask = shade.create_mask(Gimp.AddMaskType.BLACK)
    shade.add_mask(mask)
    write_pixels(mask, region[0], region[1], shadow, through_selection=False, matte=True)
    return shade


def select(image, layer, x, y, result):
    """Make one channel of coverage at (x, y) of ``layer`` the image's selection (one undo step): written into a
    temporary channel the image's size, replacing the selection with it; parts beyond the image are cut off."""
    _, ox, oy = layer.get_offsets()
    channel = Gimp.Channel.new(image, "mattekit selection", image.get_width(), image.get_height(), 100.0,
                               Gegl.Color.new("black"))
    image.insert_channel(channel, None, 0)
    try:
        inside = crop(result, x + ox, y + oy, image.get_width(), image.get_height())
        if inside is not None:
            write_pixels(channel, inside[0], inside[1], inside[2], through_selection=False, matte=True)
        image.select_item(Gimp.ChannelOps.REPLACE, channel)
    finally:
        image.remove_channel(channel)
    return image.get_selection()


def run_operation(op, image, layer, config, worker, interactive):
    dtype = pixel_type(image)
    output = config.get_property("output") if placements(op) else None
    options = point_options(image, layer, op, option_values(op, config))
    if "result" in op["options"] and options.get("result") is None:
        options["result"] = "alpha" if output == "mask" else "rgba"
    if options.get("shadow") == KEEP_SHADOW and options.get("result") == "rgba":
        options["result"] = "alpha"  # the subject alone: the kept shadow comes back as its own layer, under it
    inputs, region, from_selection = gather(image, layer, op, dtype)
    outputs = run_on_worker(worker, op, inputs, options)
    result = outputs[0]
    target = place(image, layer, op, output, result, region, from_selection, interactive)
    if len(outputs) > 1 and options.get("result") == "alpha":
        attach_provenance(place_shadow(image, layer, target, outputs[1], region), result.provenance)
    attach_provenance(target, result.provenance)
    for note in getattr(result, "warnings", None) or []:  # a subject that came out fully transparent
        Gimp.message("%s: %s" % (menu_title(op), note))
    return target


def attach_provenance(target, record):
    """Keep the worker's record of what made a result (mattekit version, task, model and weights sha256,
    changed options, IPTC digital source type) with the layer or image it went to: a persistent parasite."""
    if record:
        data = list(json.dumps(record, sort_keys=True).encode("utf-8"))
        target.attach_parasite(Gimp.Parasite.new(PROVENANCE, Gimp.PARASITE_PERSISTENT, data))


def run_procedure(procedure, run_mode, image, drawables, config, op):
    interactive = run_mode == Gimp.RunMode.INTERACTIVE
    worker = None
    try:
        layer = the_layer(drawables)
        if interactive:  # the live worker's models fill the dialog's menus
            worker = connect()
            accepted = ask(procedure, config, op, worker.schema().get("models", {}), mask_input(image, layer, op)[2])
    except (PlugInError, client.WorkerError) as exc:
        return _failure(procedure, str(exc), op)
    if interactive and not accepted:
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    image.undo_group_start()
    try:
        made = run_operation(op, image, layer, config, worker, interactive)
    except (PlugInError, client.WorkerError) as exc:
        return _failure(procedure, str(exc), op)
    except Exception as exc:  # a bug: still one readable message rather than a silent failure
        return _failure(procedure, "mattekit failed: %s: %s" % (type(exc).__name__, exc))
    finally:
        image.undo_group_end()
    Gimp.displays_flush()
    values = procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())
    if isinstance(made, Gimp.Image):  # a new image is handed to the caller (else it would be a stray)
        values.remove(1)
        values.insert(1, GObject.Value(Gimp.Image, made))
    return values


def _failure(procedure, message, op=None):
    """The failed run's values; the worker's ``option 'name'`` of ``op``'s options said as the dialog labels it."""
    for name, opt in (op or {}).get("options", {}).items():
        message = message.replace("option '%s'" % name, '"%s"' % opt.get("label", name))
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(message))


class MattekitPlugIn(Gimp.PlugIn):
    """The plug-in: one image procedure per operation of the schema that has a menu label."""

    def menu_operations(self):
        """{procedure name: operation schema}, read once per plug-in process."""
        if getattr(self, "_operations", None) is None:
            self._operations = dict((procedure_name(op["menu"]), op)
                                    for op in known_schema().get("operations", []) if op.get("menu"))
        return self._operations

    def do_query_procedures(self):
        return sorted(self.menu_operations())

    def do_set_i18n(self, _name):
        return False

    def do_create_procedure(self, name):
        op = self.menu_operations().get(name)
        if op is None:
            return None
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run_procedure, op)
        procedure.set_image_types("RGB*")
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        procedure.set_menu_label(op["menu"])
        procedure.add_menu_path(MENU)
        where = placements(op)
        if where and where[0][0] == "selection":  # Select Subject sits with GIMP's own ways of selecting too
            procedure.add_menu_path(SELECT_MENU)
        procedure.set_documentation(op["summary"], op["summary"] + " Runs on the local mattekit worker.", name)
        procedure.set_attribution("mattekit", "mattekit contributors", "2025")
        if where:
            procedure.add_choice_argument("output", "_Output", "Where the result goes", choice(where), where[0][0], RW)
        for option_name, opt in shown_options(op).items():
            add_option(procedure, argument(option_name), opt)
        if op["outputs"][0]["size"] == "scaled":
            procedure.add_image_return_value("new-image", "New image", "The new image (output=image), else none",
                                             True, RW)
        return procedure


if __name__ == "__main__":
    Gimp.main(MattekitPlugIn.__gtype__, sys.argv)
