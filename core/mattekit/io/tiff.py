"""TIFF: the size and samples per pixel TIFF data declares, read without its pixels (:func:`tiff_size`), and baseline TIFF writing
(:func:`write_tiff`). Pixels are read through Pillow or OpenCV (:mod:`mattekit.io.read`)."""
from __future__ import annotations

import errno
import struct
import zlib
from pathlib import Path

import numpy as np

from mattekit.io.formats import Source


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


def write_tiff(tmp: Path, ints: np.ndarray, fmt: str, xmp: bytes | None = None) -> None:
    """A baseline little-endian TIFF: header, directory, one deflate strip with horizontal
    prediction; alpha is marked unassociated (OpenCV leaves it unspecified, Pillow cannot
    write 16-bit colour); ``xmp`` in the XMP tag (700)."""
    h, w, c = ints.shape
    bits = ints.dtype.itemsize * 8
    diff = ints.copy()
    diff[:, 1:] -= ints[:, :-1]  # predictor 2, wrapping as the decoder expects
    strip = zlib.compress(diff.astype(f"<u{bits // 8}").tobytes(), 3)
    if len(strip) > 2**32 - 1024:
        raise OSError(errno.EFBIG, "the image is too large for a TIFF file")
    short, long_, undefined = 3, 4, 7
    n_tags = (12 if c == 4 else 11) + (1 if xmp else 0)
    bits_at = 8 + 2 + 12 * n_tags + 4  # the BitsPerSample values follow the directory, then the XMP
    xmp_at = bits_at + 2 * c
    strip_at = xmp_at + (len(xmp) if xmp else 0)
    tags = [(256, long_, 1, w), (257, long_, 1, h), (258, short, c, bits if c == 1 else bits_at),
            (259, short, 1, 8), (262, short, 1, 1 if c == 1 else 2), (273, long_, 1, strip_at),
            (277, short, 1, c), (278, long_, 1, h), (279, long_, 1, len(strip)), (284, short, 1, 1),
            (317, short, 1, 2)] + ([(338, short, 1, 2)] if c == 4 else [])
    if xmp:
        tags.append((700, undefined, len(xmp), xmp_at))
    out = bytearray(b"II*\x00" + struct.pack("<IH", 8, n_tags))
    for tag, kind, count, value in tags:  # a single SHORT sits left-justified in the 4-byte field
        inline = kind == short and count == 1
        out += struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if inline else struct.pack("<I", value))
    out += struct.pack("<I", 0) + struct.pack(f"<{c}H", *[bits] * c) + (xmp or b"")
    tmp.write_bytes(bytes(out) + strip)

