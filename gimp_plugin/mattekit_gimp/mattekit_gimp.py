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

This file is what GIMP runs (executable, named like its folder); its siblings in the folder, one job each:
gimp_schema (the worker and its schema), gimp_arguments (arguments from options and back), gimp_dialog,
gimp_pixels (pixels between GIMP and the worker), gimp_marks (the user's marks as inputs), gimp_results (where a
result goes). GIMP starts this file with its folder first on sys.path; the folder is put there in any case (a
plug-in loaded by path, as the tests do, finds its siblings too).
"""

import os
import sys

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gimp, GLib, GObject  # noqa: E402

HERE = os.path.dirname(os.path.realpath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
from gimp_arguments import RW, add_option, choice, option_values  # noqa: E402
from gimp_dialog import ask  # noqa: E402
from gimp_marks import from_layer_below, gather, mask_input, point_options, see_through_part, the_layer  # noqa: E402
from gimp_pixels import pixel_type  # noqa: E402
from gimp_results import attach_provenance, place, place_shadow  # noqa: E402
from gimp_schema import PlugInError, argument, client, connect, keyword, known_schema, menu_title  # noqa: E402
from gimp_schema import layer_inputs, placements, procedure_name, run_on_worker, shown_options  # noqa: E402

MENU = "<Image>/Filters/AI"
SELECT_MENU = "<Image>/Select"


def run_operation(op, image, layer, config, worker, interactive):
    dtype = pixel_type(image)
    output = config.get_property("output") if placements(op) else None
    options = point_options(image, layer, op, option_values(op, config))
    if "result" in op["options"] and options.get("result") is None:
        options["result"] = "alpha" if output == "mask" else "rgba"
    if keyword(op, "shadow", options.get("shadow")) and options.get("result") == "rgba":
        options["result"] = "alpha"  # keep: the subject alone; the photo's own shadow comes back as a layer under it
    inputs, region, from_selection = gather(image, layer, op, dtype)
    checked = [port for port in layer_inputs(op) if config.get_property(argument(port["name"]))]
    inputs.update(from_layer_below(image, layer, checked, region, dtype))
    outputs = run_on_worker(worker, op, see_through_part(op, options, inputs), options)
    result = outputs[0]
    target = place(image, layer, op, output, result, region, from_selection, interactive)
    if len(outputs) > 1 and options.get("result") == "alpha":
        attach_provenance(place_shadow(image, layer, target, outputs[1], region), result.provenance)
    attach_provenance(target, result.provenance)
    for note in getattr(result, "warnings", None) or []:  # a subject that came out fully transparent
        Gimp.message("%s: %s" % (menu_title(op), note))
    return target


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
            self._operations = dict(
                (procedure_name(op["menu"]), op) for op in known_schema().get("operations", []) if op.get("menu")
            )
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
        for port in layer_inputs(op):  # an input the layer below fills, when checked
            procedure.add_boolean_argument(argument(port["name"]), "_" + port["below"], port["help"], False, RW)
        if op["outputs"][0]["size"] == "scaled":
            procedure.add_image_return_value(
                "new-image", "New image", "The new image (output=image), else none", True, RW
            )
        return procedure


if __name__ == "__main__":
    Gimp.main(MattekitPlugIn.__gtype__, sys.argv)
