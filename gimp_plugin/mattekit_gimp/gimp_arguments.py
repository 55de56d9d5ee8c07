"""A procedure's GIMP arguments from the schema's options, and the options' values back from the arguments."""

from gi.repository import Gimp, GObject

from gimp_schema import PlugInError, argument, shown_options

RW = GObject.ParamFlags.READWRITE
DEFAULT = "default"  # the choice (and model menu entry) meaning "the task's own default"
BIG = 2**31 - 1  # bounds of numeric arguments whose option declares none


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
        procedure.add_choice_argument(
            name, label, blurb, choice(items), DEFAULT if default is None else str(default), RW
        )
    elif kind == "bool":
        procedure.add_boolean_argument(name, label, blurb, bool(default), RW)
    elif kind == "str" or opt["nullable"]:
        if kind != "str":
            blurb += " (empty: automatic)"
        procedure.add_string_argument(name, label, blurb, "" if default is None else str(default), RW)
    elif kind == "int":
        procedure.add_int_argument(
            name, label, blurb, int(opt.get("minimum", -BIG)), int(opt.get("maximum", BIG)), default, RW
        )
    else:
        procedure.add_double_argument(
            name, label, blurb, float(opt.get("minimum", -BIG)), float(opt.get("maximum", BIG)), default, RW
        )


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
        raise PlugInError(
            "%s must be %s, or empty for automatic, not %r."
            % (opt["label"], "a whole number" if kind == "int" else "a number", text)
        )


def option_values(op, config):
    """{option name: value} of ``op``'s shown options, read from the procedure's ``config``."""
    return dict(
        (name, option_value(opt, config.get_property(argument(name)))) for name, opt in shown_options(op).items()
    )
