"""TIFF: the size and samples per pixel TIFF data declares, read without its pixels (:func:`tiff_size`), and baseline TIFF writing
(:func:`write_tiff`). Pixels are read through Pillow or OpenCV (:mod:`mattekit.io.photo`)."""

from __future__ import annotations

import errno
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, TiffImagePlugin

from mattekit.io.formats import Source
from mattekit.io.metadata import EXIF_IFD, GPS_IFD, Metadata


def tiff_size(source: Source) -> tuple[int, int, int]:
    """(width, height, samples per pixel) from the first directory of TIFF data, without reading its pixels."""
    f = source.stream
    try:
        f.seek(0)
        order = "<" if f.read(2) == b"II" else ">"
        f.seek(4)
        f.seek(struct.unpack(order + "I", f.read(4))[0])
        count = struct.unpack(order + "H", f.read(2))[0]
        size = {277: 1}  # samples per pixel: 1 unless the directory says
        for _ in range(count):
            tag, kind, _n, raw = struct.unpack(order + "HHI4s", f.read(12))
            if tag in (256, 257, 277):
                size[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), raw[:2] if kind == 3 else raw)[0]
        return size[256], size[257], size[277]
    except (OSError, ValueError, struct.error, KeyError):
        raise source.damaged() from None


def write_tiff(tmp: Path, ints: np.ndarray, fmt: str, meta: Metadata) -> None:
    """A baseline little-endian TIFF: header, directory, one deflate strip with horizontal prediction; alpha is
    marked unassociated (OpenCV leaves it unspecified, Pillow cannot write 16-bit colour). ``meta``: the XMP in tag
    700, the ICC profile in 34675, dpi in 282/283, the EXIF's IFD0 tags with its EXIF and GPS IFDs (Pillow's
    directory writer lays them out)."""
    h, w, c = ints.shape
    bits = ints.dtype.itemsize * 8
    diff = ints.copy()
    diff[:, 1:] -= ints[:, :-1]  # predictor 2, wrapping as the decoder expects
    strip = zlib.compress(diff.astype(f"<u{bits // 8}").tobytes(), 3)
    if len(strip) > 2**32 - 1024:
        raise OSError(errno.EFBIG, "the image is too large for a TIFF file")
    short, long_, rational, undefined = 3, 4, 5, 7
    directory = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    if meta.exif:
        exif = Image.Exif()
        exif.load(b"Exif\0\0" + meta.exif)
        for tag in exif:
            directory[tag] = exif.get_ifd(tag) if tag in (EXIF_IFD, GPS_IFD) else exif[tag]
    tags = [
        (256, long_, w),
        (257, long_, h),
        (258, short, (bits,) * c),
        (259, short, 8),
        (262, short, 1 if c == 1 else 2),
        (273, long_, 0),
        (277, short, c),
        (278, long_, h),
        (279, long_, len(strip)),
        (284, short, 1),
        (317, short, 2),
    ] + ([(338, short, 2)] if c == 4 else [])
    tags += [(700, undefined, meta.xmp)] if meta.xmp else []
    tags += [(34675, undefined, meta.icc)] if meta.icc else []
    tags += [(282, rational, meta.dpi[0]), (283, rational, meta.dpi[1]), (296, short, 2)] if meta.dpi else []
    for tag, kind, value in tags:
        directory[tag] = value
        directory.tagtype[tag] = kind
        # the strip follows the directory: Pillow's writer counts StripOffsets from the directory's end
    tmp.write_bytes(b"II*\x00" + struct.pack("<I", 8) + directory.tobytes(8) + strip)
