"""What a photo says of itself that its outputs keep (:class:`Metadata`): its ICC profile, dpi, EXIF and XMP, read
from an opened Pillow image (:func:`of_image`), made fit to publish (:func:`without_personal`, the default of every
output: only the EXIF tags and XMP properties of :mod:`mattekit.io.kept`), and the result's colours put back into
the source's colour space (:func:`in_source_colours`). IPTC IIM (JPEG APP13, TIFF tag 33723, the Photoshop
resources) is never copied into an output.

The networks see sRGB; an output carries the source's own profile and, where the task left a pixel's colour as it
was, the source's own values (a Display P3 red stays the P3 red, never clipped to sRGB and back).
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageCms

from mattekit.io import kept
from mattekit.io import xmp as xmp_packet
from mattekit.ops.pixels import quantise
from mattekit.provenance import NS_MATTEKIT

ORIENTATION = 0x0112
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
ARTIST, HOST_COMPUTER = 0x013B, 0x013C
# IFD0 tags that describe the photo (a TIFF source's IFD0 also holds its own layout: those are not EXIF to keep)
DESCRIPTIVE = {
    0x010E,
    0x010F,
    0x0110,
    ORIENTATION,
    0x011A,
    0x011B,
    0x0128,
    0x0131,
    0x0132,
    ARTIST,
    HOST_COMPUTER,
    0x8298,
    EXIF_IFD,
    GPS_IFD,
}
XMP_ORIENTATION = re.compile(r"(tiff:Orientation\s*=\s*[\"']|<tiff:Orientation>)\s*\d")


@dataclass(frozen=True)
class Metadata:
    """icc: the ICC profile of the source's colours (RGB profiles only); dpi: (x, y) dots per inch; exif: TIFF-form
    EXIF (no ``Exif\\0\\0`` header), orientation 1 since the reader applied it; xmp: the XMP packet (UTF-8)."""

    icc: bytes | None = None
    dpi: tuple[float, float] | None = None
    exif: bytes | None = None
    xmp: bytes | None = None


def of_image(im: Image.Image) -> Metadata:
    """The metadata of an opened (loaded) Pillow image; an RGB image's RGB profile only (a CMYK or grey
    profile describes colours the reader converted away)."""
    icc = im.info.get("icc_profile") or None
    if icc and not (im.mode.startswith(("RGB", "P")) and icc[16:20] == b"RGB "):
        icc = None
    dpi = im.info.get("dpi")
    dpi = (float(dpi[0]), float(dpi[1])) if dpi and all(v > 0 for v in dpi[:2]) else None
    xmp = (
        im.info.get("xmp")
        or im.info.get("XML:com.adobe.xmp")
        or (im.tag_v2.get(700) if hasattr(im, "tag_v2") else None)
    )
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    return Metadata(
        icc, dpi, _exif(im), XMP_ORIENTATION.sub(r"\g<1>1", xmp.decode("utf-8", "replace")).encode() if xmp else None
    )


def _exif(im: Image.Image) -> bytes | None:
    """The image's EXIF with its descriptive IFD0 tags and the EXIF and GPS IFDs, orientation 1; None without any."""
    try:
        found = im.getexif()
        kept = Image.Exif()
        for tag in DESCRIPTIVE & set(found):
            kept[tag] = found.get_ifd(tag) if tag in (EXIF_IFD, GPS_IFD) else found[tag]
    except Exception:  # noqa: BLE001 - unreadable EXIF is left behind, the pixels are what matters
        return None
    if not kept:
        return None
    kept[ORIENTATION] = 1  # (Pillow applies a TIFF's orientation itself and drops the tag)
    return kept.tobytes()[6:]  # (Pillow puts "Exif\0\0" first)


def without_personal(meta: Metadata) -> Metadata:
    """``meta`` with only the EXIF tags (IFD0 and EXIF IFD; no GPS IFD) and XMP properties that
    :mod:`mattekit.io.kept` allows (:func:`xmp_without_personal`); the profile and dpi as they were."""
    exif = meta.exif
    if exif:
        found = Image.Exif()
        found.load(b"Exif\0\0" + exif)
        allowed = Image.Exif()
        for tag in kept.IFD0 & set(found):
            allowed[tag] = found[tag]
        inner = {tag: value for tag, value in found.get_ifd(EXIF_IFD).items() if tag in kept.EXIF_IFD}
        if inner:
            allowed[EXIF_IFD] = inner
        exif = allowed.tobytes()[6:] if allowed else None
    return replace(meta, exif=exif, xmp=xmp_without_personal(meta.xmp) if meta.xmp else None)


def xmp_without_personal(xmp: bytes) -> bytes | None:
    """A new XMP packet holding only the properties of ``xmp`` that :mod:`mattekit.io.kept` allows (whatever their
    prefix; no comment nor processing instruction); None (no XMP kept) when none is, or the packet is over
    :data:`mattekit.io.xmp.LIMIT` (4 MiB) or cannot be parsed. Linear in the packet's size."""
    return xmp_packet.kept(xmp, kept.xmp_property)


def merged_xmp(source: bytes | None, ours: bytes | None) -> bytes | None:
    """One XMP packet holding the source's properties and mattekit's provenance description (``ours``, a packet of
    :func:`mattekit.provenance.to_xmp`): ours is added into the source's ``rdf:RDF``. A record of mattekit's in the
    source (an earlier output, kept with --keep-personal) is never carried: it describes another file."""
    if source and NS_MATTEKIT.encode() in source:
        source = xmp_packet.kept(source, lambda uri, _: uri not in (NS_MATTEKIT, xmp_packet.RDF, xmp_packet.XML))
    if not (source and ours):
        return source or ours
    text, own = source.decode("utf-8", "replace"), ours.decode("utf-8")
    end = text.rfind("</rdf:RDF>")
    start, stop = own.find("<rdf:Description"), own.rfind("</rdf:RDF>")
    if end < 0 or start < 0:
        return ours
    return (text[:end] + own[start:stop] + text[end:]).encode("utf-8")


def in_source_colours(
    result: np.ndarray, network: np.ndarray, original: np.ndarray, icc: bytes, src: str
) -> np.ndarray | None:
    """A task's colour ``result`` (H x W x 3|4, float32 in [0,1] or uint8; sRGB, straight alpha) as uint8 in the
    colour space of profile ``icc``: pixels whose colour is the ``network`` input's (the sRGB the task saw, H x W x
    3|4) take the source's ``original`` values there, the others are converted from sRGB (littleCMS, perceptual).
    None, with a warning, when the profile cannot be applied (the result is then written as sRGB, untagged)."""
    ints = quantise(result, 8)
    rgb = np.ascontiguousarray(ints[..., :3])
    try:
        transform = ImageCms.buildTransform(
            ImageCms.createProfile("sRGB"), ImageCms.ImageCmsProfile(io.BytesIO(icc)), "RGB", "RGB"
        )
        out = np.asarray(ImageCms.applyTransform(Image.fromarray(rgb), transform)).copy()
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        warnings.warn(
            f"{src}: its colour profile could not be applied to the result, so the result is written as sRGB."
        )
        return None
    if network.shape[:2] == rgb.shape[:2]:
        same = (rgb == quantise(network, 8)[..., :3]).all(axis=2)
        out[same] = original[..., :3][same]
    return np.concatenate([out, ints[..., 3:]], axis=2) if ints.shape[2] == 4 else out
