"""A picture as mattekit holds it (:class:`Picture`), what a file declares of one without its pixels
(:class:`Layout`), and how large one may be before it is decoded (:func:`pixel_budget`, :func:`check_size`)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from mattekit.errors import InputError
from mattekit.io.metadata import Metadata
from mattekit.machine import usable_ram

# Peak bytes a task needs per input pixel: RSS growth from 0.75 to 12 MP on the CPU measured 81 for
# remove and matte, 93 for bokeh --mask-only, 158 for enhance (upscale's larger result is checked
# by mattekit.upscaling.tiling before it is allocated).
BYTES_PER_PIXEL = 160


@dataclass
class Picture:
    """A picture as read from a file."""

    pixels: np.ndarray  # float32 HxWx3 or HxWx4 in [0,1], sRGB-encoded, straight alpha (read_image(integers=True): uint8/uint16 for 8/16-bit sources)
    bit_depth: int  # 8, 16 or 32 (float) of the source
    source: str  # the path, for messages
    has_alpha: bool
    format: str = ""  # "PNG", "JPEG", "EXR", ...
    mode: str = ""  # the source's pixel layout: Pillow's mode ("P", "CMYK", "I;16"), "RGB;16", "EXR RGBA half"
    # Plates (read_plate): float32 HxWx3|4 as stored, in `colorspace`, straight alpha, unclipped
    scene: np.ndarray | None = None
    colorspace: str = ""  # plates: the OCIO colour space of `scene`
    metadata: Metadata | None = None  # the source's ICC profile, dpi, EXIF, XMP, which outputs keep
    # Where an ICC profile was converted to sRGB: the source's own values, as `pixels`
    original: np.ndarray | None = None


@dataclass
class Layout:
    """What an image file declares, its pixels left undecoded (:func:`mattekit.io.read.read_layout`): the
    format, bit depth and mode that :class:`Picture` would carry, and the size after EXIF orientation."""

    format: str
    width: int
    height: int
    bit_depth: int
    mode: str


def pixel_budget() -> int:
    """The most pixels (width x height) an input may declare: ``MATTEKIT_MAX_PIXELS`` when set, else the
    memory this process can still use (free RAM, and the room left under an address-space limit such
    as ``ulimit -v``) divided by :data:`BYTES_PER_PIXEL`."""
    given = os.environ.get("MATTEKIT_MAX_PIXELS", "").strip()
    if given:
        try:
            value = float(given)
        except ValueError:
            value = float("nan")
        if not (math.isfinite(value) and value >= 1):
            raise InputError(f"MATTEKIT_MAX_PIXELS={given} is not a number of pixels; set it to e.g. 200000000 or 2e8.")
        return int(value)
    return max(1, usable_ram() // BYTES_PER_PIXEL)  # decoding and the tasks' own arrays live in RAM


def check_size(src: str, width: int, height: int) -> None:
    """Raise InputError when a declared width x height exceeds :func:`pixel_budget` (or is empty)."""
    if width < 1 or height < 1:
        raise InputError(f"Cannot read {src}: it declares an empty image ({width}x{height} pixels).")
    budget = pixel_budget()
    if width * height > budget:
        raise InputError(
            f"Cannot read {src}: it declares {width}x{height} pixels ({width * height / 1e6:.1f} MP), more than the "
            f"{budget / 1e6:.1f} MP this machine's free memory allows; set MATTEKIT_MAX_PIXELS={width * height} "
            f"to try anyway."
        )
