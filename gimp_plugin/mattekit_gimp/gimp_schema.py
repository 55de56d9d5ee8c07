"""The worker and its schema, for the plug-in: where the schema comes from, how a task's entry reads in GIMP's terms
(procedure name, menu title, arguments, where its result can go), and one run on the worker with GIMP's progress bar.

A schema is what ``GET /v1/operations`` answers: {"operations": [task entries with ports and options], "models":
{task: [model entries]}}. No task is named here.
"""

import os

from gi.repository import Gimp

try:
    from mattekit_wire import client  # the copy of mattekit.wire the installer put next to the plug-in
except ImportError:  # running from a source checkout
    from mattekit.wire import client

HERE = os.path.dirname(os.path.realpath(__file__))  # the plug-in's folder, which holds the installer's record
PREFIX = "mattekit-"
MATTES = ("mask", "alpha")  # port kinds whose 1-channel results become a layer mask or a cut-out
SELECTION_PORT = "selection"  # an output that becomes the image's selection (Select Subject): see placements()


class PlugInError(Exception):
    """A problem to show the user as one sentence."""


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
    """'Remove _Background...' -> 'Remove Background': the task's name in messages and the dialog's title."""
    return op["menu"].replace("_", "").rstrip(".")


def argument(option_name):
    """A GIMP argument's name for an option: 'hint_model' -> 'hint-model'."""
    return option_name.replace("_", "-")


def shown_options(op):
    """{option name: schema} of the options that become arguments (paths are for files, not dialogs)."""
    return dict((name, opt) for name, opt in op["options"].items() if not opt.get("path"))


def layer_inputs(op):
    """The inputs of ``op`` that the layer below can fill (a port's "below": the label of its checkbox, such as
    Remove Background's second shot); each becomes a boolean argument named like the port."""
    return [port for port in op["inputs"] if port.get("below")]


def keyword(op, name, value):
    """The keyword of ``op``'s option ``name`` that ``value`` is (the schema's "keywords": words a text option takes
    besides its text form, such as the shadow option's keep; case and surrounding spaces aside), else None."""
    words = op["options"].get(name, {}).get("keywords") or ()
    text = value.strip().lower() if isinstance(value, str) else None
    return text if text in words else None


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
