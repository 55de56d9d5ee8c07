#!/usr/bin/env python3
"""mattekit for GIMP 3: Filters > AI > Remove Background, Refine Edges, Upscale, Portrait Bokeh.

A thin client: pixels go to the local mattekit worker (``mattekit serve``, started on demand
with the interpreter the installer recorded in ``mattekit_worker.json``) and the results come
back as a layer mask or a new layer. No numpy and no torch here: this runs in GIMP's Python.
"""
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
    import mattekit_client as client  # the copy the installer put next to this file
except ImportError:  # running from a source checkout
    from mattekit import client

MENU = "<Image>/Filters/AI"
RW = GObject.ParamFlags.READWRITE
BABL_TYPE = {"u8": "u8", "u16": "u16", "f32": "float"}
DEFAULT_MODEL = "default"  # choice meaning "the worker's default for this task"


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


def write_pixels(drawable, x, y, pixels, undoable=True):
    """Write client.Pixels at (x, y). ``undoable`` goes through the shadow buffer, which GIMP
    merges through the selection (an undo step); otherwise the buffer is written directly
    (for a layer this plug-in has just made)."""
    components = {1: "Y", 3: "R'G'B'", 4: "R'G'B'A"}[pixels.channels]
    fmt = "%s %s" % (components, BABL_TYPE[pixels.dtype])
    rect = Gegl.Rectangle.new(x, y, pixels.width, pixels.height)
    buffer = drawable.get_shadow_buffer() if undoable else drawable.get_buffer()
    buffer.set(rect, fmt, _little_endian(pixels.data, pixels.dtype))
    buffer.flush()
    if undoable:
        drawable.merge_shadow(True)
    drawable.update(x, y, pixels.width, pixels.height)


def layer_pixels(layer, dtype):
    """All of the layer's pixels (with its alpha channel when it has one)."""
    components = "R'G'B'A" if layer.has_alpha() else "R'G'B'"
    return read_pixels(layer, (0, 0, layer.get_width(), layer.get_height()), components, dtype)


def selection_pixels(image, layer, dtype):
    """The image's selection over the layer (the selection is in image coordinates; 0 beyond the image)."""
    _, ox, oy = layer.get_offsets()
    rect = (ox, oy, layer.get_width(), layer.get_height())
    return read_pixels(image.get_selection(), rect, "Y", dtype, Gegl.AbyssPolicy.NONE)


def _little_endian(data, dtype):
    """GEGL buffers are in native byte order; the worker speaks little-endian."""
    if sys.byteorder == "little" or dtype == "u8":
        return data
    import array
    values = array.array({"u16": "H", "f32": "f"}[dtype], data)
    values.byteswap()
    return values.tobytes()


# ---------------------------------------------------------------- the worker

def connect():
    """The running worker, or one started with the interpreter recorded by the installer."""
    record = client.read_record(HERE)
    python = os.environ.get("MATTEKIT_PYTHON") or record.get("python")
    path = os.environ.get(client.STATE_ENV) or record.get("state_file") or client.state_path()
    return client.connect(python=python, path=path, idle_timeout=record.get("idle_timeout"))


def run_on_worker(operation, inputs, options, title):
    """Run one worker operation with GIMP's progress bar; returns the output Pixels."""
    Gimp.progress_init(title)
    state = {"message": ""}

    def progress(fraction, message):
        if message and message != state["message"]:
            state["message"] = message
            Gimp.progress_set_text("%s: %s" % (title, message))
        Gimp.progress_update(fraction)

    try:
        return connect().run(operation, inputs, options, progress=progress)
    finally:
        Gimp.progress_end()


def model_option(config, name="model"):
    value = config.get_property(name)
    return None if value in ("", DEFAULT_MODEL) else value


# ---------------------------------------------------------------- the procedures

def the_layer(image, drawables):
    if len(drawables) != 1 or not isinstance(drawables[0], Gimp.Layer):
        raise PlugInError("Select exactly one layer (not a mask or channel) first.")
    return drawables[0]


def new_layer(image, name, pixels, above=None):
    """A new RGB(A) layer holding ``pixels``: just above the layer ``above``, at its offsets, else on top."""
    kind = Gimp.ImageType.RGBA_IMAGE if pixels.channels == 4 else Gimp.ImageType.RGB_IMAGE
    new = Gimp.Layer.new(image, name, pixels.width, pixels.height, kind, 100.0, Gimp.LayerMode.NORMAL)
    if above is None:
        image.insert_layer(new, None, 0)
    else:
        image.insert_layer(new, above.get_parent(), image.get_item_position(above))
        _, ox, oy = above.get_offsets()
        new.set_offsets(ox, oy)
    write_pixels(new, 0, 0, pixels, undoable=False)
    return new


def remove_background(image, drawables, config, interactive):
    """Alpha of the subject as a layer mask on the layer, or as a new cut-out layer.

    Only the selection's bounding box is analysed, and the mask is merged through the
    selection: outside it the subject is taken to be absent.
    """
    layer = the_layer(image, drawables)
    found, x, y, w, h = layer.mask_intersect()
    if not found or w == 0 or h == 0:
        raise PlugInError("The selection does not touch the layer.")
    dtype = pixel_type(image)
    options = {"model": model_option(config), "refine": bool(config.get_property("refine")), "result": "alpha"}
    alpha, = run_on_worker("remove", [read_pixels(layer, (x, y, w, h), "R'G'B'", dtype)], options,
                           "Removing background")
    target = layer
    if config.get_property("output") == "layer":
        target = layer.copy()
        target.set_name(layer.get_name() + " (cut out)")
        image.insert_layer(target, layer.get_parent(), image.get_item_position(layer))
        if target.get_mask() is not None:
            target.remove_mask(Gimp.MaskApplyMode.APPLY)
        if not target.has_alpha():
            target.add_alpha()
        layer.set_visible(False)
    mask = target.get_mask()
    if mask is None:
        mask = target.create_mask(Gimp.AddMaskType.BLACK)
        target.add_mask(mask)
    write_pixels(mask, x, y, alpha)
    if target is not layer:
        target.remove_mask(Gimp.MaskApplyMode.APPLY)
    return target


def refine_edges(image, drawables, config, interactive):
    """Alpha matting of the edge of the layer's mask: its layer mask, else the selection.

    The result replaces the layer mask (merged through the selection, like any filter), or
    becomes the layer mask made from the selection; or it is a new cut-out layer with
    decontaminated colours. The layer's own pixels are never changed.
    """
    layer = the_layer(image, drawables)
    dtype = pixel_type(image)
    mask = layer.get_mask()
    if mask is not None:
        edge = read_pixels(mask, (0, 0, layer.get_width(), layer.get_height()), "Y", dtype)
    elif not Gimp.Selection.is_empty(image):
        edge = selection_pixels(image, layer, dtype)
    else:
        raise PlugInError("Refine Edges needs a layer mask or a selection: add a layer mask to the layer, "
                          "or select the subject roughly, first.")
    to_layer = config.get_property("output") == "layer"
    options = {"band": config.get_property("band") or None, "result": "rgba" if to_layer else "alpha"}
    result, = run_on_worker("matte", {"image": layer_pixels(layer, dtype), "mask": edge}, options, "Refining edges")
    if to_layer:
        layer.set_visible(False)
        return new_layer(image, layer.get_name() + " (cut out)", result, above=layer)
    if mask is None:  # a new mask from the selection: all of the refined edge, inside and outside the selection
        mask = layer.create_mask(Gimp.AddMaskType.BLACK)
        layer.add_mask(mask)
        write_pixels(mask, 0, 0, result, undoable=False)
    else:
        write_pixels(mask, 0, 0, result)
    return layer


def upscale(image, drawables, config, interactive):
    """The layer upscaled by the network: into a new image, or as a new layer over the
    (GIMP-resampled) image scaled by the same factor."""
    layer = the_layer(image, drawables)
    scale = int(config.get_property("scale"))
    dtype = pixel_type(image)
    options = {"model": model_option(config), "scale": float(scale)}
    result, = run_on_worker("upscale", [layer_pixels(layer, dtype)], options, "Upscaling x%d" % scale)
    name = "%s (x%d)" % (layer.get_name(), scale)
    if config.get_property("output") == "image":
        target_image = Gimp.Image.new_with_precision(result.width, result.height, Gimp.ImageBaseType.RGB,
                                                     image.get_precision())
        new_layer(target_image, name, result)
        if interactive:
            Gimp.Display.new(target_image)
        return target_image
    image.scale(image.get_width() * scale, image.get_height() * scale)  # the layer's offsets scale with it
    return new_layer(image, name, result, above=layer)


def portrait_bokeh(image, drawables, config, interactive):
    """A new layer with depth of field: the subject (or the selection, when there is one) stays sharp."""
    layer = the_layer(image, drawables)
    dtype = pixel_type(image)
    inputs = [layer_pixels(layer, dtype)]
    if not Gimp.Selection.is_empty(image):  # the selection is the subject
        inputs.append(selection_pixels(image, layer, dtype))
    options = {"strength": float(config.get_property("strength")),
               "mask_only": config.get_property("depth") == "subject",
               "segment_model": model_option(config, "segment-model")}
    result, = run_on_worker("bokeh", inputs, options, "Rendering bokeh")
    return new_layer(image, layer.get_name() + " (bokeh)", result, above=layer)


# ---------------------------------------------------------------- registration

def choice(*items):
    """A Gimp.Choice from (nick, label) pairs."""
    c = Gimp.Choice.new()
    for i, (nick, label) in enumerate(items):
        c.add(nick, i, label, "")
    return c


def model_choice(task):
    """The models the installer found in the catalog for ``task``, after "default"."""
    models = client.read_record(HERE).get("models", {}).get(task, [])
    items = [(DEFAULT_MODEL, "Default")] + [(m["name"], "%s: %s" % (m["name"], m["description"])) for m in models]
    return choice(*items)


def _remove_arguments(procedure):
    procedure.add_choice_argument("output", "_Output", "Where the result goes",
                                  choice(("mask", "Layer mask on the layer"), ("layer", "New cut-out layer")),
                                  "mask", RW)
    procedure.add_choice_argument("model", "_Model", "Segmentation model", model_choice("segment"), DEFAULT_MODEL, RW)
    procedure.add_boolean_argument("refine", "_Refine edges", "Edge-aware upsampling of the mask", True, RW)


def _refine_arguments(procedure):
    procedure.add_choice_argument("output", "_Output", "Where the result goes",
                                  choice(("mask", "Layer mask on the layer"),
                                         ("layer", "New cut-out layer (decontaminated colours)")), "mask", RW)
    procedure.add_int_argument("band", "Edge _width", "Half-width in pixels of the edge band to refine "
                               "(0: from the image size)", 0, 256, 0, RW)


def _upscale_arguments(procedure):
    procedure.add_choice_argument("scale", "_Scale", "Upscaling factor", choice(("2", "2x"), ("4", "4x")), "2", RW)
    procedure.add_choice_argument("output", "_Output", "Where the result goes",
                                  choice(("image", "New image"), ("layer", "New layer (the image is scaled too)")),
                                  "image", RW)
    procedure.add_choice_argument("model", "_Model", "Super-resolution model", model_choice("upscale"), DEFAULT_MODEL, RW)
    procedure.add_image_return_value("new-image", "New image", "The upscaled image (output=image), else none", True, RW)


def _bokeh_arguments(procedure):
    procedure.add_double_argument("strength", "_Strength", "Blur strength (2.8 / f-number)", 0.1, 8.0, 1.0, RW)
    procedure.add_choice_argument("depth", "_Depth from",
                                  "A depth model, or the subject alone (sharp subject, blurred background)",
                                  choice(("model", "Depth model"), ("subject", "Subject only")), "model", RW)
    procedure.add_choice_argument("segment-model", "Subject _model", "Segmentation model for the subject",
                                  model_choice("segment"), DEFAULT_MODEL, RW)


# name -> (menu label, operation on the worker, function, arguments, documentation)
PROCEDURES = {
    "mattekit-remove-background": ("Remove _Background...", "remove", remove_background, _remove_arguments,
                                   "Cut the subject out: a layer mask on the layer, or a new cut-out layer."),
    "mattekit-refine-edges": ("Refine _Edges...", "matte", refine_edges, _refine_arguments,
                              "Matte the edge of the layer mask (or selection): soft alpha for hair and fur."),
    "mattekit-upscale": ("_Upscale...", "upscale", upscale, _upscale_arguments,
                         "Upscale the layer 2x or 4x with a super-resolution network."),
    "mattekit-portrait-bokeh": ("Portrait _Bokeh...", "bokeh", portrait_bokeh, _bokeh_arguments,
                                "Blur the background like a wide-open lens, keeping the subject sharp."),
}


def offered():
    """Procedures whose worker operation the installed mattekit has (all of them without a record)."""
    ops = client.read_record(HERE).get("operations")
    return [name for name, spec in PROCEDURES.items() if ops is None or spec[1] in ops]


def run_procedure(procedure, run_mode, image, drawables, config, _data):
    label, _op, function, _args, _doc = PROCEDURES[procedure.get_name()]
    if run_mode == Gimp.RunMode.INTERACTIVE:
        gi.require_version("GimpUi", "3.0")
        from gi.repository import GimpUi
        GimpUi.init("mattekit_gimp")
        dialog = GimpUi.ProcedureDialog.new(procedure, config, label.replace("_", "").rstrip("."))
        dialog.fill(None)
        accepted = dialog.run()
        dialog.destroy()
        if not accepted:
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    image.undo_group_start()
    try:
        made = function(image, drawables, config, run_mode == Gimp.RunMode.INTERACTIVE)
    except (PlugInError, client.WorkerError) as exc:
        return _failure(procedure, str(exc))
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


def _failure(procedure, message):
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(message))


class MattekitPlugIn(Gimp.PlugIn):
    """The plug-in: one image procedure per entry of PROCEDURES that the worker can serve."""

    def do_query_procedures(self):
        return offered()

    def do_set_i18n(self, _name):
        return False

    def do_create_procedure(self, name):
        label, _op, _function, add_arguments, doc = PROCEDURES[name]
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, run_procedure, None)
        procedure.set_image_types("RGB*")
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        procedure.set_menu_label(label)
        procedure.add_menu_path(MENU)
        procedure.set_documentation(doc, doc + " Runs on the local mattekit worker.", name)
        procedure.set_attribution("mattekit", "mattekit contributors", "2025")
        add_arguments(procedure)
        return procedure


if __name__ == "__main__":
    Gimp.main(MattekitPlugIn.__gtype__, sys.argv)
