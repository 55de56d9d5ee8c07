"""Writing pictures and masks (:func:`write_image`) by the file's extension, atomically: the file is
written under a temporary name in the same folder, then renamed over the destination, so a failed
write leaves no partial file and keeps any old one; temporaries of the same destination that a
killed earlier write left behind are removed first.

EXR output is linear and premultiplied, half float unless
``bit_depth=32``; a mask is written untouched as a single A channel (coverage is linear already).
PNG (:mod:`mattekit.io.png`) and TIFF (:mod:`mattekit.io.tiff`) have writers of their own, EXR is written
through OpenImageIO (:mod:`mattekit.io.oiio`, as is :func:`write_layers`, roto's layered EXR for compositors);
JPEG and WebP go through Pillow.
"""

from __future__ import annotations

import contextlib
import errno
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from . import colour
from mattekit.errors import OutputError
from mattekit.fsutil import Confinement, atomic_write, check_folder, stale_temporaries
from mattekit.io.oiio import plate_spec, write_exr
from mattekit.io.oiio import write_layers as oiio_layers
from mattekit.io.formats import DEPTHS, EXR_RECORD, WRITERS, reason
from mattekit.io.metadata import Metadata, merged_xmp
from mattekit.io.png import write_png
from mattekit.io.tiff import write_tiff
from mattekit.ops.pixels import finite, quantise, srgb_to_linear, with_channels
from mattekit.provenance import seal, sealed, to_xmp


def write_image(
    path,
    pixels,
    *,
    bit_depth: int = 8,
    provenance: dict | None = None,
    colorspace: str | None = None,
    metadata: Metadata | None = None,
    confine: Confinement | None = None,
) -> None:
    """Write a picture (HxWx3/4) or mask (HxW, HxWx1) by the file's extension: floats in [0,1], or
    uint8/uint16 values (0..255 / 0..65535), which are stored as they are at their own bit depth.

    bit_depth: 8 or 16 for PNG/TIFF, 8 for JPEG/WebP; for EXR 32 writes float, anything else half.
    provenance: a :mod:`mattekit.provenance` record to embed: XMP in PNG (iTXt), TIFF (tag 700),
    JPEG (APP1) and WebP; header attributes in EXR (``software``, ``mattekitProvenance`` JSON,
    ``digitalSourceType``), sealed with the written file's own digest (:func:`mattekit.provenance.seal`).
    :func:`mattekit.io.read.read_provenance` reads it back.
    JPEG cannot hold transparency: an RGBA picture that is not fully opaque raises OutputError.
    colorspace: the pixels are a plate's own values in this OCIO colour space (any range): EXR gets them neither
    converted from sRGB nor clipped (premultiplied all the same), its header naming the colour space
    (:func:`mattekit.io.colour.exr_attributes`); the other formats clip them to [0, 1].
    metadata: the source's ICC profile, dpi, EXIF and XMP (:class:`mattekit.io.metadata.Metadata`) for PNG, JPEG,
    TIFF and WebP (WebP holds no dpi but the EXIF's); its XMP and the provenance share one packet. EXR keeps none.
    Memory: floats are rounded to integers in strips of rows (:func:`mattekit.ops.pixels.quantise`) and PNG is compressed
    strip by strip straight into the file, so a write needs the integer copy and a strip on top of the
    caller's array, never a full-size float copy.
    confine: the folders the file may land in (:func:`mattekit.fsutil.check_folder`), asked as it is written.
    """
    path = Path(path)
    provenance = sealed(provenance) if provenance else None
    fmt = WRITERS.get(path.suffix.lower())
    if fmt is None:
        raise OutputError(f"Cannot write {path}: mattekit writes PNG, JPEG, TIFF, WebP and EXR files.")
    if fmt != "EXR" and bit_depth not in DEPTHS[fmt]:
        better = "PNG or TIFF" if bit_depth == 16 else "EXR"
        raise OutputError(f"Cannot write {path}: {fmt} cannot store {bit_depth}-bit images; use {better} instead.")
    if fmt == "EXR":
        px, names = _exr_planes(_as_float(pixels, clip=not colorspace), colorspace)
        attributes = (colour.exr_attributes(colorspace) if colorspace else {}) | _provenance_attributes(provenance)
        _atomic(path, lambda tmp: write_exr(tmp, px, names, half=bit_depth != 32, attributes=attributes), confine)
        return
    ints = quantise(pixels, bit_depth)
    if fmt == "JPEG" and ints.shape[2] == 4:
        if (ints[..., 3] < np.iinfo(ints.dtype).max).any():
            raise OutputError(
                f"Cannot write {path}: JPEG cannot store transparency; use PNG, TIFF, WebP or EXR instead."
            )
        ints = ints[..., :3]
    writer = {"PNG": write_png, "TIFF": write_tiff}.get(fmt, _write_pillow)
    meta = metadata or Metadata()
    if meta.icc and ints.shape[2] < 3:  # an RGB profile describes no grey mask
        meta = replace(meta, icc=None)
    meta = replace(meta, xmp=merged_xmp(meta.xmp, to_xmp(provenance) if provenance else None))
    _atomic(path, lambda tmp: writer(tmp, ints, fmt, meta), confine)


def write_layers(
    path,
    rgb: np.ndarray,
    foreground: np.ndarray,
    coverage: np.ndarray,
    *,
    half: bool,
    colorspace: str | None,
    source=None,
    provenance: dict | None = None,
    objects: dict[str, np.ndarray] | None = None,
    personal: bool = False,
    confine: Confinement | None = None,
) -> None:
    """Write the layered EXR for compositors (:func:`mattekit.io.oiio.write_layers`: ``R G B A`` the cut-out and
    ``fg.R fg.G fg.B fg.A`` the foreground, premultiplied) atomically. rgb, foreground: H x W x 3 float32 in OCIO
    colour space ``colorspace`` (any range; None: sRGB-encoded, stored linear); coverage: H x W in [0, 1];
    source: the plate frame's path, whose data window and metadata the file keeps (all of it with ``personal``, else
    what :func:`mattekit.io.kept.attribute` allows); half: 16-bit float samples;
    objects: {name: matte} of several objects, one ``NAME.A`` layer each (``coverage`` their union); confine: as
    :func:`write_image`'s."""
    path = Path(path)
    if path.suffix.lower() != ".exr":
        raise OutputError(f"Cannot write {path}: a layered file is an EXR.")
    provenance = sealed(provenance) if provenance else None
    if not colorspace:
        rgb, foreground, colorspace = srgb_to_linear(rgb), srgb_to_linear(foreground), colour.LINEAR_SRGB
    spec = plate_spec(source) if source else None
    attributes = colour.exr_attributes(colorspace) | _provenance_attributes(provenance)
    _atomic(
        path,
        lambda tmp: oiio_layers(
            tmp,
            rgb,
            foreground,
            np.clip(coverage, 0, 1),
            half=half,
            source=spec,
            attributes=attributes,
            objects=objects,
            personal=personal,
        ),
        confine,
    )


def _exr_planes(px: np.ndarray, colorspace: str | None) -> tuple[np.ndarray, tuple[str, ...]]:
    """(pixels, channel names) an EXR stores for ``px`` (H x W x 1|3|4 float32, straight alpha): a mask as a bare
    ``A`` (coverage, untouched); colour premultiplied, converted from sRGB to linear unless ``colorspace`` says the
    values are a plate's own."""
    if px.shape[2] == 1:
        return px, ("A",)
    rgb = srgb_to_linear(px[..., :3]) if not colorspace else px[..., :3]
    if px.shape[2] == 3:
        return rgb, ("R", "G", "B")
    return np.concatenate([rgb * px[..., 3:], px[..., 3:]], axis=2), ("R", "G", "B", "A")


def _provenance_attributes(provenance: dict | None) -> dict:
    """EXR header attributes carrying a :mod:`mattekit.provenance` record (none for None)."""
    if not provenance:
        return {}
    return {
        "software": provenance.get("software", ""),
        "digitalSourceType": provenance.get("digital_source_type", ""),
        EXR_RECORD: json.dumps(provenance, sort_keys=True),
    }


def _as_float(pixels, clip: bool = True) -> np.ndarray:
    """``pixels`` as a float32 copy with 1 or more channels: integers scaled to 0..1, NaN to 0, then clipped to
    [0, 1] (``clip``) or with +-inf as the largest finite values (:func:`mattekit.ops.pixels.finite`)."""
    px = with_channels(pixels)
    if px.dtype.kind in "ui":
        px = px / float(np.iinfo(px.dtype).max)
    px = px.astype(np.float32)  # a copy, worked on in place
    return finite(px, 0, 1) if clip else finite(px)


def _atomic(path: Path, write, confine: Confinement | None = None) -> None:
    """Run write(temporary path) in path's folder, seal the provenance record it holds, if any
    (:func:`mattekit.provenance.seal`), then move the result over path (:func:`mattekit.fsutil.atomic_write`);
    temporaries of path left by a killed earlier write are removed."""
    check_folder(path.parent, confine)  # before the stale temporaries are removed too
    if not path.parent.is_dir():
        raise OutputError(f"Cannot write {path}: {path.parent} is not an existing folder.")
    if path.is_dir():
        raise OutputError(f"Cannot write {path}: it is a folder.")
    for stale in stale_temporaries(path):
        with contextlib.suppress(OSError):
            stale.unlink()
    try:
        atomic_write(path, lambda tmp: (write(tmp), seal(tmp)), confine=confine)
    except OSError as e:
        raise OutputError(f"Cannot write {path}: {reason(e)}.") from None


def _write_pillow(tmp: Path, ints: np.ndarray, fmt: str, meta: Metadata) -> None:
    """JPEG (XMP and EXIF in APP1 segments, the profile in APP2, dpi in JFIF) and WebP (XMP, EXIF, ICCP chunks)
    through Pillow."""
    im = Image.fromarray(ints[..., 0] if ints.shape[2] == 1 else ints)
    options = {"JPEG": {"quality": 95, "subsampling": 0}, "WebP": {"quality": 95}}[fmt]
    found = {
        "xmp": meta.xmp,
        "icc_profile": meta.icc,
        "exif": meta.exif and b"Exif\0\0" + meta.exif,
        "dpi": meta.dpi if fmt == "JPEG" else None,
    }
    options.update({key: value for key, value in found.items() if value})
    try:
        im.save(tmp, format=fmt.upper(), **options)
    except ValueError as e:  # e.g. larger than the format allows
        raise OSError(errno.EINVAL, str(e)) from None
