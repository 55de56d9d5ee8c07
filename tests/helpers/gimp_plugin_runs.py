"""The GIMP 3 plug-in under test with the stand-ins of GIMP's API (tests/hosts/gimp/gimp_stubs/): its file, the
stand-ins' folder, the modules each test loads afresh, the schema the installer records, its procedures made and run
NONINTERACTIVE, and photos, pixels and masks as the worker takes and gives them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from mattekit.wire import client
from mattekit.runtime import ModelCache
from mattekit.worker import operations

from checkout import GIMP_PLUGIN, gimp_plugin_modules

PLUGIN = GIMP_PLUGIN / "mattekit_gimp.py"
STUBS = Path(__file__).resolve().parents[1] / "hosts" / "gimp" / "gimp_stubs"


MENU_NAMES = {
    "mattekit-remove-background",
    "mattekit-refine-edges",
    "mattekit-upscale",
    "mattekit-portrait-bokeh",
    "mattekit-enhance",
    "mattekit-mask-preview",
    "mattekit-select-subject",
}


def registry_schema():
    """What GET /v1/operations answers, made from the task registry as the installer records it."""
    return {
        "operations": [op.describe() for op in operations.build(operations.PathPolicy()).values()],
        "models": operations.model_menus(ModelCache()),
    }


def _gi_and_plugin_modules():
    """The names in sys.modules of gi (the stubs) and of the plug-in's modules, which import the stubs: each test
    loads them afresh."""
    ours = set(gimp_plugin_modules())
    return [m for m in sys.modules if m == "gi" or m.startswith("gi.") or m in ours]


def procedure(plugin, name):
    return plugin.MattekitPlugIn().do_create_procedure(name)


def run(plugin, Gimp, name, image, drawables, mode=None, **options):
    proc = procedure(plugin, name)
    config = proc.create_config()
    for key, value in options.items():
        config.set_property(key.replace("_", "-"), value)
    values = proc.run(mode or Gimp.RunMode.NONINTERACTIVE, image, drawables, config)
    return values.index(0), values.index(1) if values.length() > 1 else None


def photo(shared, name="person1", size=None):
    img = Image.open(shared / f"data/grabcut50/im/{name}.jpg").convert("RGB")
    if size:
        img = img.resize(size, Image.BILINEAR)
    return np.asarray(img, np.float32) / 255.0


def as_pixels(array, dtype="u8"):
    """float32 H x W x C in [0,1] -> client.Pixels at ``dtype``."""
    np_dtype, scale = {"u8": (np.uint8, 255), "u16": (np.uint16, 65535)}[dtype]
    return client.Pixels(
        np.rint(array * scale).astype(np_dtype).tobytes(), array.shape[1], array.shape[0], array.shape[2], dtype
    )


def as_floats(pixels):
    np_dtype, scale = {"u8": (np.uint8, 255), "u16": (np.uint16, 65535)}[pixels.dtype]
    return np.frombuffer(pixels.data, np_dtype).reshape(pixels.height, pixels.width, pixels.channels) / float(scale)


def iou(alpha, gt):
    valid = gt != 128
    return ((alpha >= 0.5) & (gt > 128) & valid).sum() / (((alpha >= 0.5) | (gt > 128)) & valid).sum()
