"""The formats mattekit reads and writes: one table of them, their magic numbers and metadata keys, the
encoded data being read (:class:`Source`), and the words for what went wrong with it."""

from __future__ import annotations

import errno
import io
import os
import re
import struct
import warnings
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from mattekit.errors import InputError

READABLE = "PNG, JPEG, TIFF, WebP, HEIC/HEIF, AVIF, EXR, DPX"
WRITERS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WebP",
    ".exr": "EXR",
}  # extension -> the format written
DEPTHS = {"PNG": (8, 16), "TIFF": (8, 16), "JPEG": (8,), "WebP": (8,)}  # bits per sample (EXR: 32 float, else half)
EXR_MAGIC = b"\x76\x2f\x31\x01"
TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
DPX_MAGIC = (b"SDPX", b"XPDS")
MAGIC = (
    (b"\x89PNG", ".png"),
    (b"\xff\xd8", ".jpg"),
    (TIFF_MAGIC[0], ".tif"),
    (TIFF_MAGIC[1], ".tif"),
    (b"BM", ".bmp"),
    (EXR_MAGIC, ".exr"),
)  # how a file starts -> its usual extension (WebP: see extension_of)
PNG_XMP_KEY = b"XML:com.adobe.xmp"  # the iTXt keyword of an XMP packet
EXR_RECORD = "mattekitProvenance"  # the EXR header attribute holding mattekit's provenance record
AVIF_BRANDS = (b"avif", b"avis")  # ftyp's major brands of AVIF images
HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1") + AVIF_BRANDS  # ftyp's
#               major brands of HEIF and AVIF images (an MP4 or MOV video names others)
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


def heif_brand(data: bytes) -> bytes | None:
    """The major brand of a HEIF or AVIF image that ``data`` (its first 12 bytes suffice) starts like: such a file
    opens with an ISO-BMFF ``ftyp`` box naming one of :data:`HEIF_BRANDS`; None for any other data."""
    brand = data[8:12]
    return brand if data[4:8] == b"ftyp" and brand in HEIF_BRANDS else None


def extension_of(data: bytes) -> str:
    """The usual extension of the image format that ``data`` (its first 12 bytes suffice) starts like; .png when
    unknown."""
    brand = heif_brand(data)
    if brand is not None:
        return ".avif" if brand in AVIF_BRANDS else ".heic"
    return next((ext for magic, ext in MAGIC if data.startswith(magic)), ".webp" if data[8:12] == b"WEBP" else ".png")


def known_image(data: bytes) -> bool:
    """Whether ``data`` (its first 12 bytes suffice) starts like an image format mattekit knows: a file that does
    and yet cannot be opened is damaged, not of another kind."""
    return (
        heif_brand(data) is not None
        or data[8:12] == b"WEBP"
        or any(data.startswith(magic) for magic, _ in MAGIC)
        or data.startswith(DPX_MAGIC)
    )


@dataclass
class Source:
    """Encoded image data being read: a seekable binary stream over a file or over bytes in memory, what
    messages call it (``name``: the path, "the given bytes", "standard input") and the word for its
    contents (``noun``: "the file", or "the data" where there is no file)."""

    stream: BinaryIO
    name: str
    noun: str = "the file"

    def everything(self) -> bytes:
        """All of the data, from its start (for decoders that take a buffer)."""
        self.stream.seek(0)
        return self.stream.read()

    def damaged(self, e: Exception | None = None) -> InputError:
        """The sentence for data a decoder could not read (``e``: the decoder's exception, if any)."""
        text = str(e) if e is not None else ""
        if "MAX_TEXT_CHUNK" in text or "MAX_TEXT_MEMORY" in text:  # Pillow's guard against decompression bombs
            return InputError(
                f"Cannot read {self.name}: {self.noun} carries a text or colour-profile chunk that "
                "unpacks to more than Pillow's safety limit; save the image again without its metadata."
            )
        if "Security limit exceeded" in text:  # libheif's own limit on a declared size
            limit = re.findall(r"\d{4,}", text)
            return InputError(
                f"Cannot read {self.name}: {self.noun} declares more pixels than libheif decodes"
                + (f" (its security limit: {int(limit[-1]):,} pixels)." if limit else ".")
            )
        what = "truncated" if "truncat" in text.lower() else "damaged or truncated"
        return InputError(f"Cannot read {self.name}: {self.noun} is {what}.")

    def open_image(self) -> Image.Image:
        """The data opened by Pillow (its header read, not its pixels; :func:`pillow_open`). A PNG whose colour
        profile unpacks past Pillow's MAX_TEXT_CHUNK (1 MB, its guard against decompression bombs) is opened again
        without the profile, with a warning (once a process for a file). Pillow's UnidentifiedImageError and
        DecompressionBombError pass; any other failure is :meth:`damaged`'s InputError."""
        try:
            return pillow_open(self.stream)
        except (UnidentifiedImageError, Image.DecompressionBombError):
            raise
        except DECODE_ERRORS as e:
            stripped = png_without(self.everything(), b"iCCP") if "MAX_TEXT_CHUNK" in str(e) else None
            if stripped is None:
                raise self.damaged(e) from None
        try:
            im = pillow_open(io.BytesIO(stripped))
        except DECODE_ERRORS as e:
            raise self.damaged(e) from None
        warnings.warn(
            f"{self.name}: its colour profile unpacks to more than {PngImagePlugin.MAX_TEXT_CHUNK >> 20} MB, "
            f"Pillow's limit against decompression bombs; read without it, as sRGB."
        )
        return im

    def unknown(self) -> InputError:
        """The sentence for data that is no image mattekit reads; for data that starts like one
        (:func:`known_image`) but cannot be opened, :meth:`damaged`'s."""
        self.stream.seek(0)
        if known_image(self.stream.read(12)):
            return self.damaged()
        if self.noun == "the file":
            return InputError(f"{self.name} is not an image mattekit can read ({READABLE}).")
        return InputError(f"Cannot read {self.name}: {self.noun} is not an image mattekit can read ({READABLE}).")


def pillow_open(stream: BinaryIO) -> Image.Image:
    """``stream`` (seekable) opened as Pillow's ``Image.open`` opens it (the same formats, tried in the same order,
    its header read), without Pillow's size check: mattekit judges a declared size by its own pixel budget
    (:func:`mattekit.io.picture.check_size`) and leaves Pillow's process-wide ``MAX_IMAGE_PIXELS`` as the host
    program set it. UnidentifiedImageError when no format takes the data."""
    stream.seek(0)
    prefix = stream.read(16)
    for load in (Image.preinit, Image.init):  # the common formats first, then every other Pillow knows
        load()
        for name in list(Image.ID):
            factory, accept = Image.OPEN[name]
            taken = not accept or accept(prefix)
            if not taken or isinstance(taken, str):
                continue
            try:
                stream.seek(0)
                return factory(stream, "")
            except (SyntaxError, IndexError, TypeError, struct.error):
                continue
    raise UnidentifiedImageError(f"cannot identify image file {stream!r}")


def png_chunks(data: bytes) -> list[tuple[bytes, int, int]] | None:
    """The chunks of PNG ``data`` (bytes) up to IEND: (kind, start, end) with ``data[start:end]`` the whole chunk
    (length, kind, body, CRC); None where it is no PNG whose chunks can be walked to IEND."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    chunks, at = [], 8
    while at + 12 <= len(data):
        kind, end = data[at + 4 : at + 8], at + 12 + int.from_bytes(data[at : at + 4], "big")
        if end > len(data):
            return None
        chunks.append((kind, at, end))
        at = end
        if kind == b"IEND":
            return chunks
    return None


def png_whole(data: bytes) -> bool:
    """Whether PNG ``data`` has every chunk up to IEND, each with its right CRC: what libpng (OpenCV's 16-bit
    reader) needs not to print its own error on the terminal."""
    chunks = png_chunks(data)
    return chunks is not None and all(
        zlib.crc32(data[start + 4 : end - 4]) == int.from_bytes(data[end - 4 : end], "big") for _, start, end in chunks
    )


def png_without(data: bytes, kind: bytes) -> bytes | None:
    """PNG ``data`` (bytes) without its chunks of ``kind`` (b"iCCP"), or None where it has none or is no PNG whose
    chunks can be walked to IEND (what follows IEND is kept)."""
    chunks = png_chunks(data)
    if chunks is None or not any(name == kind for name, _, _ in chunks):
        return None
    kept = [data[:8]] + [data[start:end] for name, start, end in chunks if name != kind]
    return b"".join(kept) + data[chunks[-1][2] :]


def reason(e: OSError) -> str:
    """What went wrong with a file, in a few words for "Cannot write x: ...": the disk is full, permission denied."""
    if e.errno == errno.EFBIG and e.strerror == os.strerror(errno.EFBIG):  # the system's (a format's has its own)
        return "it is larger than the file size limit (ulimit -f, or the file system's own)"
    reasons = {
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOSPC: "the disk is full",
        errno.EROFS: "the disk is read-only",
    }
    return reasons.get(e.errno, (e.strerror or str(e)).rstrip(".").lower())
