"""A small in-memory GIMP 3.0 for unit tests of the plug-in (see the package docstring). Its enums and shared state,
procedures and items are in _gimp_base.py, _gimp_procedures.py and _gimp_items.py beside it, re-exported here."""

import numpy as np

from ._gimp_base import (
    CALLS,
    CONTEXT,
    _record,
    AddMaskType,
    ChannelOps,
    FillType,
    ImageBaseType,
    ImageType,
    LayerMode,
    MaskApplyMode,
    PDBProcType,
    PDBStatusType,
    PathStrokeType,
    Precision,
    ProcedureSensitivityMask,
    RunMode,
)
from ._gimp_items import (
    PARASITE_PERSISTENT,
    Channel,
    Drawable,
    Item,
    Layer,
    LayerMask,
    Parasite,
    Path,
    Selection,
    _Parasites,
)
from ._gimp_procedures import Choice, ImageProcedure, PlugIn, ProcedureConfig, ValueArray

__all__ = [  # the names the plug-in and the tests read as Gimp.NAME
    "CALLS",
    "CONTEXT",
    "PDBProcType",
    "PDBStatusType",
    "RunMode",
    "ProcedureSensitivityMask",
    "ImageType",
    "ImageBaseType",
    "LayerMode",
    "AddMaskType",
    "MaskApplyMode",
    "FillType",
    "ChannelOps",
    "PathStrokeType",
    "Precision",
    "Choice",
    "ImageProcedure",
    "PlugIn",
    "ProcedureConfig",
    "ValueArray",
    "PARASITE_PERSISTENT",
    "Channel",
    "Drawable",
    "Item",
    "Layer",
    "LayerMask",
    "Parasite",
    "Path",
    "Selection",
    "Image",
    "IMAGES",
    "Display",
]


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
