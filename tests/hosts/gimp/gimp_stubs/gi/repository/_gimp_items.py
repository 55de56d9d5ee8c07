"""The Gimp stand-in's items (Gimp.py re-exports them): parasites, drawables in layer coordinates with offsets, the
selection as an image-sized channel, paths, layer masks and layers."""

import numpy as np

from . import Gegl
from ._gimp_base import CONTEXT, AddMaskType, FillType, ImageType, MaskApplyMode, PathStrokeType

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

    def get_id(self):
        return id(self)


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
