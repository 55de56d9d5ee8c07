"""What a photo says of itself that its outputs keep (:class:`Metadata`): its ICC profile, dpi, EXIF and XMP, read
from an opened Pillow image (:func:`of_image`), made fit to publish (:func:`without_personal`, the default of every
output), and the result's colours put back into the source's colour space (:func:`in_source_colours`).

Personal: what tells where (GPS, place names), who (owners, people's names: artist, creator, contributors, people
shown, face regions) and which camera (serial numbers, maker notes). :func:`personal` says it of a property's or
attribute's name, whatever its namespace or prefix; the EXIF tags are numbered below. IPTC IIM (JPEG APP13, TIFF
tag 33723, the Photoshop resources) is never copied into an output.

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

from mattekit.io import xmp as xmp_packet
from mattekit.ops.pixels import quantise

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
PERSONAL_IFD0 = {ARTIST, HOST_COMPUTER}  # who made it, the computer's name (often its owner's)
# personal tags of the EXIF IFD: camera owner, body serial, lens serial, photographer, image editor, the maker note,
# the user's comment and the image's unique id (a camera's running number, which ties photos to one body)
PERSONAL_EXIF = {0xA430, 0xA431, 0xA435, 0xA437, 0xA438, 0x927C, 0x9286, 0xA420}
# local names (case aside) of personal XMP properties and EXR/OIIO attributes; the keywords go too (they name the
# people and places shown)
PERSONAL_NAMES = (
    "location",
    "locationcreated",
    "locationshown",
    "city",
    "state",
    "country",
    "countrycode",
    "countryname",
    "provincestate",
    "sublocation",
    "worldregion",
    "artist",
    "creator",
    "contributor",
    "photographer",
    "imageeditor",
    "captionwriter",
    "authorsposition",
    "creatorcontactinfo",
    "personinimage",
    "personinimagewdetails",
    "regions",
    "regioninfo",
    "author",
    "owner",
    "ownername",
    "cameraownername",
    "hostcomputer",
    "imageedtor",  # (OIIO's spelling)
    "shotlocation",
    "filepath",
    "lasturl",
    "usercomment",
    "imageuniqueid",
    "people",
    "subject",
    "hierarchicalsubject",
    "keywords",
    "tagslist",
    "lastkeywordxmp",
    "lastkeywordiptc",
    "catalogsets",
)
# ... and the names that start so (a licensor's name, city, e-mail...; the Ci* contact fields)
PERSONAL_STARTS = (
    "gps",
    "makernote",
    "contactinfo",
    "licensor",
    "copyrightowner",
    "imagecreator",
    "ciadr",
    "ciemail",
    "citel",
    "ciurl",
)
# ... or hold these anywhere (serial numbers, e-mail addresses) or end so (coordinates)
PERSONAL_WITHIN, PERSONAL_ENDS = ("serial", "email", "e-mail"), ("latitude", "longitude", "longtitude", "altitude")


def _local_names() -> str:
    """The regular expression that fullmatches a personal local name (case aside): one branch per first letter
    (``[cC]...``), which a scan skips at one comparison when a name starts with another, so that a packet's scan
    costs about one test per tag (:mod:`mattekit.io.xmp`)."""
    words = [(name, "") for name in PERSONAL_NAMES] + [(start, r"[\w.-]*") for start in PERSONAL_STARTS]
    branches = []
    for letter in sorted({word[0] for word, _ in words}):
        rests = "|".join(
            re.escape(word[1:]) + tail for word, tail in sorted(words, key=lambda w: -len(w[0])) if word[0] == letter
        )
        branches.append(f"[{letter}{letter.upper()}](?i:{rests})")
    within = "|".join(map(re.escape, PERSONAL_WITHIN))
    ends = "|".join(PERSONAL_ENDS)
    branches += [rf"(?=[\w.-]*?(?i:{within}))[\w.-]*", rf"[\w.-]*(?i:{ends})"]
    return "(?:" + "|".join(branches) + r")(?![\w.-])"


_LOCAL = _local_names()
_PERSONAL_NAME = re.compile(_LOCAL)
XMP_ORIENTATION = re.compile(r"(tiff:Orientation\s*=\s*[\"']|<tiff:Orientation>)\s*\d")


def personal(name: str) -> bool:
    """Whether a metadata name tells where, who or which camera: an XMP property (``exif:GPSLatitude``,
    ``{http://purl.org/dc/elements/1.1/}creator``) or an OIIO attribute (``GPS:MapDatum``, ``cameraSerialNumber``)
    by its local name, whatever its namespace or prefix, or anything under OIIO's ``GPS:`` prefix."""
    *prefixes, local = re.split(r"[:}]", name)
    return _PERSONAL_NAME.fullmatch(local) is not None or any(p.lower() == "gps" for p in prefixes)


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
    """``meta`` without what tells who, where or which camera (module docstring): the GPS IFD, the artist, host
    computer, camera owner, serial numbers, photographer, editor and maker note of the EXIF, and every personal
    property of the XMP (:func:`xmp_without_personal`)."""
    exif = meta.exif
    if exif:
        found = Image.Exif()
        found.load(b"Exif\0\0" + exif)
        kept = Image.Exif()
        for tag in set(found) - {GPS_IFD} - PERSONAL_IFD0:
            kept[tag] = (
                found[tag]
                if tag != EXIF_IFD
                else {k: v for k, v in found.get_ifd(EXIF_IFD).items() if k not in PERSONAL_EXIF}
            )
        exif = kept.tobytes()[6:] if kept else None
    return replace(meta, exif=exif, xmp=xmp_without_personal(meta.xmp) if meta.xmp else None)


def xmp_without_personal(xmp: bytes) -> bytes | None:
    """The XMP packet ``xmp`` without its personal properties, in attribute form (double or single quotes) or element
    form (simple, structure or array), the rest of the packet as it was; None (no XMP kept) when the packet is over
    :data:`mattekit.io.xmp.LIMIT` (4 MiB), cannot be parsed, or still names a personal property once they are
    removed (a form not foreseen). Linear in the packet's size (:func:`mattekit.io.xmp.without`)."""
    return xmp_packet.without(xmp, _LOCAL)


def merged_xmp(source: bytes | None, ours: bytes | None) -> bytes | None:
    """One XMP packet holding the source's properties and mattekit's provenance description (``ours``, a packet of
    :func:`mattekit.provenance.to_xmp`): ours is added into the source's ``rdf:RDF``."""
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
