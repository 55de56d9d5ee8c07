"""The formats mattekit reads and writes: one table of them, their magic numbers and metadata keys, and
the words for what went wrong with a file."""
from __future__ import annotations

import errno
import struct
import zlib

from mattekit.errors import InputError

READABLE = "PNG, JPEG, TIFF, WebP, EXR"
WRITERS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
           ".webp": "WebP", ".exr": "EXR"}  # extension -> the format written
DEPTHS = {"PNG": (8, 16), "TIFF": (8, 16), "JPEG": (8,), "WebP": (8,)}  # bits per sample (EXR: 32 float, else half)
EXR_MAGIC = b"\x76\x2f\x31\x01"
TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
PNG_XMP_KEY = b"XML:com.adobe.xmp"  # the iTXt keyword of an XMP packet
EXR_RECORD = "mattekitProvenance"  # the EXR header attribute holding mattekit's provenance record
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


def damaged(src: str, e: Exception) -> InputError:
    what = "truncated" if "truncat" in str(e).lower() else "damaged or truncated"
    return InputError(f"Cannot read {src}: the file is {what}.")


def reason(e: OSError) -> str:
    reasons = {errno.EACCES: "permission denied", errno.EPERM: "permission denied",
               errno.ENOSPC: "the disk is full", errno.EROFS: "the disk is read-only"}
    return reasons.get(e.errno, (e.strerror or str(e)).rstrip(".").lower())
