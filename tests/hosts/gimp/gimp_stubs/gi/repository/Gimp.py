"""A small in-memory GIMP 3.0 for unit tests of the plug-in (see the package docstring)."""

import numpy as np

from . import Gegl, GObject

CALLS = []  # (name, args) of progress/display/message calls, for tests to inspect


def _record(name, *args):
    CALLS.append((name,) + args)
    return True


def progress_init(text):
    return _record("progress_init", text)


def progress_update(fraction):
    return _record("progress_update", fraction)


def progress_set_text(text):
    return _record("progress_set_text", text)


def progress_end():
    return _record("progress_end")


def displays_flush():
    return _record("displays_flush")


def message(text):
    return _record("message", text)


CONTEXT = [{"foreground": Gegl.Color.new("black")}]  # GIMP's context stack: the last is in force


def context_push():
    CONTEXT.append(dict(CONTEXT[-1]))
    return True


def context_pop():
    assert len(CONTEXT) > 1, "a pop without its push"
    CONTEXT.pop()
    return True


def context_set_foreground(color):
    CONTEXT[-1]["foreground"] = color
    return True


def main(gtype, argv):
    return _record("main", gtype, argv)


class _Enum:
    def __init__(self, name, nick):
        self.value_name, self.value_nick = name, nick

    def __repr__(self):
        return "<%s>" % self.value_name


def _enum(name, members):
    return type(name, (), {m: _Enum(m, m.lower().replace("_", "-")) for m in members})


PDBProcType = _enum("PDBProcType", ["PLUGIN"])
PDBStatusType = _enum("PDBStatusType", ["SUCCESS", "CANCEL", "EXECUTION_ERROR", "CALLING_ERROR"])
RunMode = _enum("RunMode", ["INTERACTIVE", "NONINTERACTIVE", "WITH_LAST_VALS"])
ProcedureSensitivityMask = _enum("ProcedureSensitivityMask", ["DRAWABLE", "DRAWABLES"])
ImageType = _enum("ImageType", ["RGB_IMAGE", "RGBA_IMAGE"])
ImageBaseType = _enum("ImageBaseType", ["RGB", "GRAY"])
LayerMode = _enum("LayerMode", ["NORMAL"])
AddMaskType = _enum("AddMaskType", ["WHITE", "BLACK", "ALPHA"])
MaskApplyMode = _enum("MaskApplyMode", ["APPLY", "DISCARD"])
FillType = _enum("FillType", ["TRANSPARENT", "WHITE", "BACKGROUND", "FOREGROUND"])
ChannelOps = _enum("ChannelOps", ["REPLACE", "ADD"])
PathStrokeType = _enum("PathStrokeType", ["BEZIER"])
Precision = _enum(
    "Precision",
    [
        f"{t}_{c}"
        for t in ("U8", "U16", "U32", "HALF", "FLOAT", "DOUBLE")
        for c in ("LINEAR", "NON_LINEAR", "PERCEPTUAL")
    ],
)


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


# ---------------------------------------------------------------- images and drawables

PARASITE_PERSISTENT = 1


class Parasite:
    def __init__(self, name, flags, data):
        self.name, self.flags, self.data = name, flags, bytes(data)

    @classmethod
    def new(cls, name, flags, data):
        return cls(name, flags, data)

    def get_name(self):
        return self.name

    def get_data(self):
        return list(self.data)


class _Parasites:
    """attach_parasite / get_parasite of items and images."""

    def attach_parasite(self, parasite):
        self.__dict__.setdefault("parasites", {})[parasite.get_name()] = parasite
        return True

    def get_parasite(self, name):
        return self.__dict__.get("parasites", {}).get(name)


class Item(_Parasites):
    def __init__(self, image, name):
        self.image, self.name, self.parent = image, name, None

    def get_name(self):
        return self.name

    def set_name(self, name):
        self.name = name
        return True

    def get_parent(self):
        return self.parent


class Drawable(Item):
    def __init__(self, image, name, pixels, offsets=(0, 0)):
        super().__init__(image, name)
        self.pixels = pixels  # float32 H x W x C
        self.offsets = list(offsets)
        self.updates = []
        self.shadow = None

    def get_width(self):
        return self.pixels.shape[1]

    def get_height(self):
        return self.pixels.shape[0]

    def get_offsets(self):
        return True, self.offsets[0], self.offsets[1]

    def has_alpha(self):
        return self.pixels.shape[2] == 4

    def get_buffer(self):
        return Gegl.Buffer(self.pixels)

    def get_shadow_buffer(self):
        self.shadow = Gegl.Buffer(self.pixels.copy())
        return self.shadow

    def _selection_here(self):
        """The selection over this drawable (H x W x 1), or None when nothing is selected."""
        if self.image is None or Selection.is_empty(self.image):
            return None
        ox, oy = self.offsets
        rect = Gegl.Rectangle(ox, oy, self.get_width(), self.get_height())
        data = self.image.selection.get_buffer().get(rect, 1.0, "Y float", Gegl.AbyssPolicy.NONE)
        return np.frombuffer(data, np.float32).reshape(self.get_height(), self.get_width(), 1)

    def merge_shadow(self, undo):
        sel = self._selection_here()
        new = self.shadow.array
        self.pixels[...] = new if sel is None else new * sel + self.pixels * (1.0 - sel)
        if undo:
            self.image.undo_steps += 1
        return True

    def update(self, x, y, w, h):
        self.updates.append((x, y, w, h))
        return True

    def mask_intersect(self):
        """Bounds of the selection within this drawable, in its own coordinates."""
        w, h = self.get_width(), self.get_height()
        if self.image is None or Selection.is_empty(self.image):
            return True, 0, 0, w, h
        _, _, x1, y1, x2, y2 = Selection.bounds(self.image)
        ox, oy = self.offsets
        left, top = max(x1 - ox, 0), max(y1 - oy, 0)
        right, bottom = min(x2 - ox, w), min(y2 - oy, h)
        if right <= left or bottom <= top:
            return False, 0, 0, 0, 0
        return True, left, top, right - left, bottom - top


class Channel(Drawable):
    @classmethod
    def new(cls, image, name, width, height, opacity, color):
        """A channel the image's size filled with ``color`` (black: 0)."""
        assert (width, height) == (image.width, image.height) and color.name == "black"
        return cls(image, name, np.zeros((height, width, 1), np.float32))


class Selection(Channel):
    @staticmethod
    def is_empty(image):
        return not image.selection.pixels.any()

    @staticmethod
    def none(image):
        image.selection.pixels[...] = 0.0
        return True

    @staticmethod
    def bounds(image):
        ys, xs = np.nonzero(image.selection.pixels[..., 0] > 0)
        if ys.size == 0:
            return True, False, 0, 0, image.width, image.height
        return True, True, int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


class Path(Item):
    """A path; ``area`` (H x W x 1 in image pixels) is what selecting it selects (GIMP fills its outline);
    ``strokes``: (control points x, y, ... in threes per anchor: handle, anchor, handle; closed) per stroke."""

    def __init__(self, image, name, area, strokes):
        super().__init__(image, name)
        self.area, self.strokes = area, strokes

    def get_strokes(self):
        return list(range(1, len(self.strokes) + 1))

    def stroke_get_points(self, stroke):
        controls, closed = self.strokes[stroke - 1]
        return PathStrokeType.BEZIER, list(controls), closed


class LayerMask(Channel):
    def __init__(self, layer, pixels):
        super().__init__(layer.image, layer.name + " mask", pixels)
        self.layer = layer
        self.offsets = layer.offsets  # a mask moves with its layer


class Layer(Drawable):
    def __init__(self, image, name, pixels, offsets=(0, 0)):
        super().__init__(image, name, pixels, offsets)
        self.mask = None
        self.visible = True

    @classmethod
    def new(cls, image, name, width, height, kind, opacity, mode):
        channels = 4 if kind is ImageType.RGBA_IMAGE else 3
        return cls(image, name, np.zeros((height, width, channels), np.float32))

    def copy(self):
        new = Layer(self.image, self.name + " copy", self.pixels.copy(), self.offsets)
        if self.mask is not None:
            new.mask = LayerMask(new, self.mask.pixels.copy())
        return new

    def fill(self, kind):
        if kind is FillType.FOREGROUND:  # opaque, in the context's foreground colour
            self.pixels[...] = CONTEXT[-1]["foreground"].rgb + (1.0,) * (self.pixels.shape[2] - 3)
            return True
        assert kind is FillType.TRANSPARENT and self.has_alpha()
        self.pixels[...] = 0.0
        return True

    def set_offsets(self, x, y):
        self.offsets[:] = [x, y]
        return True

    def set_visible(self, visible):
        self.visible = visible
        return True

    def get_visible(self):
        return self.visible

    def add_alpha(self):
        if not self.has_alpha():
            ones = np.ones(self.pixels.shape[:2] + (1,), np.float32)
            self.pixels = np.concatenate([self.pixels, ones], axis=2)
        return True

    def get_mask(self):
        return self.mask

    def create_mask(self, kind):
        h, w = self.pixels.shape[:2]
        if kind is AddMaskType.ALPHA:
            values = self.pixels[..., 3:4].copy() if self.has_alpha() else np.ones((h, w, 1), np.float32)
        else:
            values = np.full((h, w, 1), 1.0 if kind is AddMaskType.WHITE else 0.0, np.float32)
        return LayerMask(self, values)

    def add_mask(self, mask):
        assert self.mask is None, "the layer already has a mask"
        self.mask = mask
        return True

    def remove_mask(self, mode):
        if mode is MaskApplyMode.APPLY:
            self.add_alpha()
            self.pixels[..., 3:4] *= self.mask.pixels
        self.mask = None
        return True

    def scale(self, width, height, local_origin):
        ys = np.arange(height) * self.get_height() // height
        xs = np.arange(width) * self.get_width() // width
        self.pixels = self.pixels[ys][:, xs].copy()
        return True


class Image(_Parasites):
    def __init__(self, width, height, precision=Precision.U8_NON_LINEAR):
        self.width, self.height, self.precision = width, height, precision
        self.layers = []
        self.selection = Selection(self, "selection", np.zeros((height, width, 1), np.float32))
        self.undo_groups = [0, 0]  # started, ended
        self.undo_steps = 0
        self.selected_paths = []
        self.paths = []  # top first, as the Paths dialog lists them
        self.channels = []

    @classmethod
    def new_with_precision(cls, width, height, base_type, precision):
        image = cls(width, height, precision)
        IMAGES.append(image)
        return image

    def get_precision(self):
        return self.precision

    def get_width(self):
        return self.width

    def get_height(self):
        return self.height

    def get_layers(self):
        return list(self.layers)

    def get_selection(self):
        return self.selection

    def get_selected_paths(self):
        return list(self.selected_paths)

    def set_selected_paths(self, paths):
        self.selected_paths = list(paths)
        return True

    def select_item(self, operation, item):
        """The selection from a path's area or a channel's pixels (image coordinates), replaced or added to."""
        values = item.area if isinstance(item, Path) else item.pixels
        if operation is ChannelOps.ADD:
            values = np.maximum(self.selection.pixels, values)
        self.selection.pixels[...] = values
        return True

    def insert_layer(self, layer, parent, position):
        assert layer not in self.layers
        layer.image = layer.image or self
        self.layers.insert(max(position, 0), layer)
        return True

    def get_item_position(self, item):
        return (
            self.paths if isinstance(item, Path) else self.channels if isinstance(item, Channel) else self.layers
        ).index(item)

    def get_channels(self):
        return list(self.channels)

    def insert_channel(self, channel, parent, position):
        assert channel not in self.channels and parent is None
        self.channels.insert(max(position, 0), channel)
        return True

    def remove_channel(self, channel):
        self.channels.remove(channel)
        return True

    def undo_group_start(self):
        self.undo_groups[0] += 1
        return True

    def undo_group_end(self):
        self.undo_groups[1] += 1
        return True

    def scale(self, width, height):
        fx, fy = width / self.width, height / self.height
        for layer in self.layers:
            layer.scale(round(layer.get_width() * fx), round(layer.get_height() * fy), False)
            layer.offsets[:] = [round(layer.offsets[0] * fx), round(layer.offsets[1] * fy)]
        self.width, self.height = width, height
        self.selection = Selection(self, "selection", np.zeros((height, width, 1), np.float32))
        return True

    # test helpers (not GIMP API)
    def add_test_layer(self, pixels, name="Background", offsets=(0, 0)):
        layer = Layer(self, name, np.asarray(pixels, np.float32), offsets)
        self.layers.insert(0, layer)
        return layer

    def add_test_path(self, name, x, y, w, h):
        """A closed path outlining the ellipse inside the box (x, y, w, h), made the selected path."""
        rows, cols = np.mgrid[0 : self.height, 0 : self.width] + 0.5
        inside = ((cols - x - w / 2) / (w / 2)) ** 2 + ((rows - y - h / 2) / (h / 2)) ** 2 <= 1.0
        corners = [(x + w / 2, y), (x + w, y + h / 2), (x + w / 2, y + h), (x, y + h / 2)]
        path = Path(self, name, inside[..., None].astype(np.float32), [([v for p in corners for v in p * 3], True)])
        self.paths.insert(0, path)
        self.selected_paths = [path]
        return path

    def add_test_open_path(self, name, anchors):
        """An open path through ``anchors`` ((x, y) image coordinates), inserted on top and added to the selected
        paths. Selecting it selects nothing (an open outline encloses no area)."""
        path = Path(
            self,
            name,
            np.zeros((self.height, self.width, 1), np.float32),
            [([v for p in anchors for v in tuple(p) * 3], False)],
        )
        self.paths.insert(0, path)
        self.selected_paths.append(path)
        return path

    def select_test_rectangle(self, x, y, w, h, value=1.0):
        self.selection.pixels[...] = 0.0
        self.selection.pixels[y : y + h, x : x + w] = value


IMAGES = []  # images the plug-in created


class Display:
    @classmethod
    def new(cls, image):
        _record("display_new", image)
        return cls()
