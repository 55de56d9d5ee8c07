"""The procedure's dialog (GimpUi): the arguments GIMP lays out, plus the model menus filled from the live worker."""

import gi

from gimp_arguments import DEFAULT
from gimp_schema import argument, layer_inputs, menu_title, placements, shown_options


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
    shown = [argument(n) for n in options if argument(n) not in menus] + [argument(p["name"]) for p in layer_inputs(op)]
    dialog.fill(([] if not placements(op) else ["output"]) + shown)
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
