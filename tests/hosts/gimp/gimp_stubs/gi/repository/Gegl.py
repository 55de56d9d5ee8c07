"""Gegl.Rectangle, AbyssPolicy and pixel formats over numpy arrays (H x W x C float32 storage)."""

import numpy as np


class AbyssPolicy:
    NONE, CLAMP = 0, 1


class Rectangle:
    def __init__(self, x, y, width, height):
        self.x, self.y, self.width, self.height = x, y, width, height

    @classmethod
    def new(cls, x, y, width, height):
        return cls(x, y, width, height)


class Color:
    def __init__(self, name):
        self.name = name
        self.rgb = {"black": (0.0, 0.0, 0.0), "white": (1.0, 1.0, 1.0)}.get(name)  # the two colours the plug-in names

    @classmethod
    def new(cls, name):
        return cls(name)


_TYPES = {"u8": (np.uint8, 255.0), "u16": (np.uint16, 65535.0), "float": (np.float32, 1.0)}


def parse_format(fmt):
    """("R'G'B'A", "u8") -> (channels, has_alpha, numpy dtype, scale)."""
    components, kind = fmt.split(" ")
    if kind not in _TYPES:
        raise ValueError("unknown babl type in %r" % fmt)
    letters = components.replace("'", "")
    if letters not in ("RGB", "RGBA", "Y", "YA"):
        raise ValueError("unknown babl model in %r" % fmt)
    dtype, scale = _TYPES[kind]
    return len(letters), letters.endswith("A"), dtype, scale


class Buffer:
    """A drawable's pixels: float32 H x W x C in [0,1] (C = 1, 3 or 4)."""

    def __init__(self, array, on_flush=None):
        self.array = array
        self.on_flush = on_flush

    def get(self, rect, scale, fmt, abyss):
        assert scale == 1.0
        channels, _, dtype, vmax = parse_format(fmt)
        h, w, c = self.array.shape
        out = np.zeros((rect.height, rect.width, c), np.float32)
        ys = np.arange(rect.y, rect.y + rect.height)
        xs = np.arange(rect.x, rect.x + rect.width)
        if abyss == AbyssPolicy.CLAMP:
            out = self.array[np.clip(ys, 0, h - 1)][:, np.clip(xs, 0, w - 1)]
        else:
            iy = (ys >= 0) & (ys < h)
            ix = (xs >= 0) & (xs < w)
            out[np.ix_(iy, ix)] = self.array[np.ix_(ys[iy], xs[ix])]
        out = _convert(out, channels)
        if vmax != 1.0:
            return np.rint(np.clip(out, 0, 1) * vmax).astype(dtype).tobytes()
        return out.astype(np.float32).tobytes()

    def set(self, rect, fmt, data):
        channels, _, dtype, vmax = parse_format(fmt)
        values = np.frombuffer(bytes(data), dtype).reshape(rect.height, rect.width, channels).astype(np.float32) / vmax
        c = self.array.shape[2]
        region = self.array[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]
        assert region.shape[:2] == (rect.height, rect.width), "write outside the buffer"
        region[...] = _convert(values, c)

    def flush(self):
        if self.on_flush:
            self.on_flush()


def _convert(pixels, channels):
    c = pixels.shape[2]
    if c == channels:
        return pixels
    if channels == 1:
        return pixels[..., :3].mean(axis=2, keepdims=True) if c >= 3 else pixels[..., :1]
    colour = pixels[..., :3] if c >= 3 else np.repeat(pixels[..., :1], 3, axis=2)
    if channels == 3:
        return colour
    alpha = pixels[..., -1:] if c in (2, 4) else np.ones(pixels.shape[:2] + (1,), np.float32)
    return np.concatenate([colour, alpha], axis=2)
