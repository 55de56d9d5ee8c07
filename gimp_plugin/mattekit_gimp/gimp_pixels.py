"""Pixels between GIMP and the worker: a drawable's (or the selection's) pixels as the wire's Pixels, and back.

Colour is sRGB-encoded (R'G'B'[A], as the models expect), masks and selections linear coverage (Y), at the worker
dtype that holds the image's precision: u8, u16 or f32, little-endian on the wire.
"""

import sys

from gi.repository import Gegl, Gimp

from gimp_schema import PlugInError, client

BABL_TYPE = {"u8": "u8", "u16": "u16", "f32": "float"}


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


def write_pixels(drawable, x, y, pixels, through_selection=True, matte=False):
    """Write client.Pixels at (x, y); ``matte``: one channel of linear coverage (else sRGB colour).

    ``through_selection`` goes through the shadow buffer, which GIMP merges through the selection
    (an undo step); otherwise the buffer is written directly (where the selection was an input).
    """
    components = "Y" if matte else {1: "Y'", 2: "Y'A", 3: "R'G'B'", 4: "R'G'B'A"}[pixels.channels]
    fmt = "%s %s" % (components, BABL_TYPE[pixels.dtype])
    rect = Gegl.Rectangle.new(x, y, pixels.width, pixels.height)
    buffer = drawable.get_shadow_buffer() if through_selection else drawable.get_buffer()
    buffer.set(rect, fmt, _little_endian(pixels.data, pixels.dtype))
    buffer.flush()
    if through_selection:
        drawable.merge_shadow(True)
    drawable.update(x, y, pixels.width, pixels.height)


def selection_box(layer, what="selection"):
    """(x, y, w, h) in layer coordinates of the selection's bounds within the layer; PlugInError when none."""
    found, x, y, w, h = layer.mask_intersect()
    if not found or w == 0 or h == 0:
        raise PlugInError("The %s does not touch the layer." % what)
    return x, y, w, h


def selection_pixels(image, layer, dtype, what="selection"):
    """The image's selection over the layer (the selection is in image coordinates; 0 beyond the image)."""
    selection_box(layer, what)
    _, ox, oy = layer.get_offsets()
    rect = (ox, oy, layer.get_width(), layer.get_height())
    return read_pixels(image.get_selection(), rect, "Y", dtype, Gegl.AbyssPolicy.NONE)


def path_pixels(image, layer, dtype, paths):
    """The area of ``paths`` over the layer, read through a temporary selection: only called when nothing is
    selected, and nothing is selected afterwards."""
    for i, path in enumerate(paths):
        image.select_item(Gimp.ChannelOps.ADD if i else Gimp.ChannelOps.REPLACE, path)
    try:
        return selection_pixels(image, layer, dtype, "path")
    finally:
        Gimp.Selection.none(image)


def crop(pixels, x, y, width, height):
    """The part of ``pixels`` placed at (x, y) that lies in the rectangle (0, 0, width, height), as
    (x, y, client.Pixels) there; None when no part does."""
    left, top = max(x, 0), max(y, 0)
    right, bottom = min(x + pixels.width, width), min(y + pixels.height, height)
    if right <= left or bottom <= top:
        return None
    if (left, top, right - left, bottom - top) == (x, y, pixels.width, pixels.height):
        return x, y, pixels
    size = pixels.channels * {"u8": 1, "u16": 2, "f32": 4}[pixels.dtype]
    row = pixels.width * size
    data = b"".join(
        pixels.data[(r - y) * row + (left - x) * size : (r - y) * row + (right - x) * size] for r in range(top, bottom)
    )
    return left, top, client.Pixels(data, right - left, bottom - top, pixels.channels, pixels.dtype)


def _little_endian(data, dtype):
    """GEGL buffers are in native byte order; the worker speaks little-endian."""
    if sys.byteorder == "little" or dtype == "u8":
        return data
    import array

    values = array.array({"u16": "H", "f32": "f"}[dtype], data)
    values.byteswap()
    return values.tobytes()
