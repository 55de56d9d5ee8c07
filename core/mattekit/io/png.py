"""PNG writing: rows in strips compressed in parallel threads, streamed into the file as one zlib stream
(:func:`write_png`). PNGs are read through Pillow or OpenCV (:mod:`mattekit.io.photo`)."""

from __future__ import annotations

import errno
import struct
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mattekit.io.formats import PNG_XMP_KEY
from mattekit.io.metadata import Metadata
from mattekit.machine import cpu_count

STRIP_BYTES = 2 << 20  # bytes of rows compressed as one strip
PNG_LEVEL = 1  # zlib level: 1 compresses photos within a few per cent of 3 at a fraction of the time
PNG_THREADS = 8  # at most this many strips are compressed at once, whatever the cores: the write's memory is bounded
_COLOUR = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (grey, grey+alpha, RGB, RGBA)


def write_png(tmp: Path, ints: np.ndarray, fmt: str, meta: Metadata) -> None:
    """A PNG streamed into ``tmp``: IHDR, ``meta``'s chunks (iCCP profile, pHYs dpi, eXIf, and the XMP in iTXt,
    uncompressed, key "XML:com.adobe.xmp"), then one IDAT chunk per strip of rows (:func:`_png_strip`), the strips compressed in parallel
    threads (zlib lets go of the GIL) and written in order as one zlib stream at :data:`PNG_LEVEL`.
    Memory: one filtered and compressed strip per thread (at most :data:`PNG_THREADS`), and one more, on top of ``ints``; 16-bit samples are written big-endian."""
    h, w, c = ints.shape
    depth = ints.dtype.itemsize * 8
    if w * c * ints.dtype.itemsize + 1 > 2**31 - 1 or h > 2**31 - 1:
        raise OSError(errno.EFBIG, "the image is too large for a PNG file")
    rows = max(1, STRIP_BYTES // (w * c * ints.dtype.itemsize + 1))
    tops = range(0, h, rows)
    threads = max(1, min(len(tops), cpu_count(), PNG_THREADS))
    checksum = zlib.adler32(b"")
    with ThreadPoolExecutor(threads) as pool, open(tmp, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, _COLOUR[c], 0, 0, 0)))
        if meta.icc:
            f.write(_png_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(meta.icc)))
        if meta.dpi:
            f.write(_png_chunk(b"pHYs", struct.pack(">IIB", *(round(d / 0.0254) for d in meta.dpi), 1)))
        if meta.exif:
            f.write(_png_chunk(b"eXIf", meta.exif))
        if meta.xmp:
            f.write(_png_chunk(b"iTXt", PNG_XMP_KEY + b"\0\0\0\0\0" + meta.xmp))
        header = b"\x78\x01"  # the zlib stream's header (deflate, 32 KiB window, fastest), before the first strip
        pending: deque = deque()
        for top in tops:
            pending.append(pool.submit(_png_strip, ints[top : top + rows], top + rows >= h))
            while pending and (len(pending) > threads or top + rows >= h):
                lines, packed = pending.popleft().result()
                checksum = zlib.adler32(lines, checksum)
                del lines  # the strip's scanlines are done with before the next is waited for
                _write_chunk(f, b"IDAT", header, *packed)
                header = b""
        _write_chunk(f, b"IDAT", struct.pack(">I", checksum))  # the stream's end: the Adler-32 of all rows
        _write_chunk(f, b"IEND", b"")


def _png_strip(ints: np.ndarray, last: bool) -> tuple[memoryview, tuple[bytes, ...]]:
    """Rows of ``ints`` as PNG scanlines, each with the Sub filter (the difference to the pixel on its left,
    bytewise modulo 256), and those compressed as a raw deflate stream of their own: ended with a sync flush
    (byte-aligned, not final) so that strips concatenate into one stream, or with the final block when
    ``last``. Returns (scanlines, the compressed bytes in pieces: never joined, so never copied)."""
    raw = np.ascontiguousarray(ints, dtype=">u2" if ints.dtype.itemsize == 2 else np.uint8)
    raw = raw.view(np.uint8).reshape(raw.shape[0], -1)
    step = ints.shape[2] * ints.dtype.itemsize  # bytes per pixel
    lines = np.empty((raw.shape[0], raw.shape[1] + 1), np.uint8)
    lines[:, 0] = 1  # filter type Sub
    lines[:, 1 : 1 + step] = raw[:, :step]
    np.subtract(raw[:, step:], raw[:, :-step], out=lines[:, 1 + step :])
    packer = zlib.compressobj(PNG_LEVEL, zlib.DEFLATED, -15)
    data, step = lines.data.cast("B"), 1 << 18  # fed 256 KiB at a time: zlib's growing output buffer stays small
    pieces = [packer.compress(data[i : i + step]) for i in range(0, len(data), step)]
    return lines.data, (*pieces, packer.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH))


def _write_chunk(f, kind: bytes, *pieces: bytes) -> None:
    """One PNG chunk whose data is ``pieces`` joined, written piece by piece (never joined, so never copied);
    empty IDAT data writes nothing."""
    size = sum(len(p) for p in pieces)
    if size or kind != b"IDAT":
        f.write(struct.pack(">I", size) + kind)
        crc = zlib.crc32(kind)
        for piece in pieces:
            f.write(piece)
            crc = zlib.crc32(piece, crc)
        f.write(struct.pack(">I", crc))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
