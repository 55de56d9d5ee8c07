"""The Gimp stand-in's procedures (Gimp.py re-exports them): choices, a procedure's arguments and config, its run
with GIMP's return values, and the plug-in base class."""

from . import GObject
from ._gimp_base import PDBStatusType

# ---------------------------------------------------------------- procedures


class Choice:
    def __init__(self):
        self.items = []

    @classmethod
    def new(cls):
        return cls()

    def add(self, nick, id, label, help):  # noqa: A002 - GIMP's own parameter names
        self.items.append((nick, id, label, help))

    def list_nicks(self):
        return [i[0] for i in self.items]


class ProcedureConfig:
    def __init__(self, procedure):
        self.procedure = procedure
        self.values = {name: arg["default"] for name, arg in procedure.arguments.items()}

    def get_property(self, name):
        return self.values[name]

    def set_property(self, name, value):
        arg = self.procedure.arguments[name]
        if arg["kind"] == "choice" and value not in arg["choice"].list_nicks():
            raise ValueError("%r is not one of %s" % (value, arg["choice"].list_nicks()))
        if arg["kind"] in ("double", "int") and not arg["min"] <= value <= arg["max"]:
            raise ValueError("%s out of range" % name)
        if arg["kind"] == "string" and not isinstance(value, str):
            raise TypeError("%s takes a string, not %r" % (name, value))
        self.values[name] = value


class ImageProcedure:
    def __init__(self, plugin, name, proc_type, run_func, data):
        self.plugin, self.name, self.run_func, self.data = plugin, name, run_func, data
        self.arguments, self.menu_paths, self.menu_label, self.return_values = {}, [], None, []
        self.image_types = self.sensitivity = self.documentation = None

    @classmethod
    def new(cls, plugin, name, proc_type, run_func, data):
        return cls(plugin, name, proc_type, run_func, data)

    def get_name(self):
        return self.name

    def set_image_types(self, types):
        self.image_types = types

    def set_sensitivity_mask(self, mask):
        self.sensitivity = mask

    def set_menu_label(self, label):
        self.menu_label = label

    def add_menu_path(self, path):
        self.menu_paths.append(path)

    def set_documentation(self, blurb, help, help_id):  # noqa: A002
        self.documentation = (blurb, help, help_id)

    def set_attribution(self, authors, copyright, date):  # noqa: A002
        pass

    def add_choice_argument(self, name, nick, blurb, choice, value, flags):
        assert value in choice.list_nicks(), "default %r is not a choice" % value
        self.arguments[name] = {"kind": "choice", "nick": nick, "choice": choice, "default": value}

    def add_boolean_argument(self, name, nick, blurb, value, flags):
        self.arguments[name] = {"kind": "boolean", "nick": nick, "default": bool(value)}

    def add_double_argument(self, name, nick, blurb, min, max, value, flags):  # noqa: A002
        assert min <= value <= max
        self.arguments[name] = {"kind": "double", "nick": nick, "default": value, "min": min, "max": max}

    def add_int_argument(self, name, nick, blurb, min, max, value, flags):  # noqa: A002
        assert min <= value <= max
        self.arguments[name] = {"kind": "int", "nick": nick, "default": value, "min": min, "max": max}

    def add_string_argument(self, name, nick, blurb, value, flags):
        assert isinstance(value, str)
        self.arguments[name] = {"kind": "string", "nick": nick, "default": value}

    def create_config(self):
        return ProcedureConfig(self)

    def add_image_return_value(self, name, nick, blurb, none_ok, flags):
        self.return_values.append(name)

    def new_return_values(self, status, error):
        """Like GIMP: [status, error message] on failure, [status, return values...] on success."""
        if status is PDBStatusType.SUCCESS:
            return ValueArray([status] + [None] * len(self.return_values))
        return ValueArray([status, error.message if error is not None else None])

    def run(self, run_mode, image, drawables, config=None):
        """What GIMP does when the procedure is called: returns the ValueArray."""
        return self.run_func(self, run_mode, image, drawables, config or self.create_config(), self.data)


class ValueArray:
    """GimpValueArray as PyGObject shows it: index(i) (unwrapping GObject.Value), remove(i), insert(i, v)."""

    def __init__(self, items):
        self.items = list(items)

    def index(self, i):
        item = self.items[i]
        return item.value if isinstance(item, GObject.Value) else item

    def remove(self, i):
        del self.items[i]

    def insert(self, i, value):
        self.items.insert(i, value)

    def length(self):
        return len(self.items)


class PlugIn:
    __gtype__ = "GimpPlugIn"
