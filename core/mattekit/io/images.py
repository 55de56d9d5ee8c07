"""Reading and writing pictures.

Inside mattekit a picture is a float32 array H x W x C in [0, 1], C = 3 (RGB) or 4 (RGBA with
straight alpha), sRGB-encoded. ``read_image`` brings any supported file to that form;
``write_image`` stores such an array (or an H x W / H x W x 1 mask) by the file's extension.

Reading: PNG, JPEG, TIFF, WebP, BMP (and whatever else Pillow opens) via Pillow, except the
pixels of 16-bit colour PNG/TIFF and of float TIFF, which Pillow cuts to 8 bits or cannot open,
come from OpenCV. EXIF orientation is applied. An embedded ICC profile is converted to sRGB for
8-bit images; 16-bit and float images are taken as they are (a non-sRGB profile gives a
warning), since Pillow's colour management only handles 8-bit colour.
Before any pixel is decoded, the size the file declares is checked against :func:`pixel_budget`
(``MATTEKIT_MAX_PIXELS``, else what the free memory allows), so a small file declaring a huge
image is refused in one sentence instead of exhausting memory. Animated images and multi-page
TIFFs give their first frame, with a warning saying so.
EXR (via the OpenEXR bindings) is scene-linear and premultiplied: colour is un-premultiplied,
clipped to [0, 1] (no tone mapping: highlights above 1.0 become white, negative values black)
and sRGB-encoded; alpha is only clipped. A file with only an A channel reads as a grey picture
of that matte, untouched.

Writing is atomic: the file is written under a temporary name in the same folder, then renamed
over the destination, so a failed write leaves no partial file and keeps any old one; temporaries
of the same destination that a killed earlier write left behind are removed first.
EXR output is linear (unless ``linear_exr=False``) and premultiplied, half float unless
``bit_depth=32``; a mask is written untouched as a single A channel (coverage is linear already).
"""
from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import os
import struct
import warnings
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

try:
    import resource
except ImportError:  # Windows: no address-space limits to honour
    resource = None

import cv2
import numpy as np
import OpenEXR
from PIL import Image, ImageCms, UnidentifiedImageError

from mattekit.errors import InputError, OutputError
from mattekit.fsutil import atomic_write, stale_temporaries
from mattekit.provenance import from_xmp, to_xmp
from mattekit.ops import linear_to_srgb, quantise, srgb_to_linear, unit_float, with_channels

READABLE = "PNG, JPEG, TIFF, WebP, EXR"
_WRITERS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
            ".webp": "WebP", ".exr": "EXR"}
_DEPTHS = {"PNG": (8, 16), "TIFF": (8, 16), "JPEG": (8,), "WebP": (8,)}
_EXR_MAGIC = b"\x76\x2f\x31\x01"
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)
# Peak bytes a task needs per input pixel: RSS growth from 0.75 to 12 MP on the CPU measured 81 for
# remove and matte, 93 for bokeh --mask-only, 158 for enhance (upscale's larger result is checked
# by mattekit.tiling before it is allocated).
BYTES_PER_PIXEL = 160

# mattekit checks declared sizes itself (pixel_budget), before decoding: Pillow's own bomb check,
# fixed at 89 MP (warning) / 179 MP (error), would otherwise override MATTEKIT_MAX_PIXELS.
Image.MAX_IMAGE_PIXELS = None
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # OpenCV's own log lines (not its exceptions) stay off the user's terminal


@dataclass
class Picture:
    """A picture as read from a file."""

    pixels: np.ndarray  # float32 HxWx3 or HxWx4 in [0,1], sRGB-encoded, straight alpha (read_image(integers=True): uint8/uint16 for 8/16-bit sources)
    bit_depth: int  # 8, 16 or 32 (float) of the source
    source: str  # the path, for messages
    has_alpha: bool
    format: str = ""  # "PNG", "JPEG", "EXR", ...
    mode: str = ""  # the source's pixel layout: Pillow's mode ("P", "CMYK", "I;16"), "RGB;16", "EXR RGBA half"


# ----------------------------------------------------------------------------------- reading

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
    import torch

    from mattekit.engines.policy import available_memory

    free = available_memory(torch.device("cpu"))  # decoding and the tasks' own arrays live in RAM
    limit = resource.getrlimit(resource.RLIMIT_AS)[0] if resource is not None else None
    if limit is not None and limit != resource.RLIM_INFINITY:
        free = min(free, max(0, limit - _address_space_used()))
    return max(1, free // BYTES_PER_PIXEL)


def check_size(src: str, width: int, height: int) -> None:
    """Raise InputError when a declared width x height exceeds :func:`pixel_budget` (or is empty)."""
    if width < 1 or height < 1:
        raise InputError(f"Cannot read {src}: it declares an empty image ({width}x{height} pixels).")
    budget = pixel_budget()
    if width * height > budget:
        raise InputError(
            f"Cannot read {src}: it declares {width}x{height} pixels ({width * height / 1e6:.1f} MP), more than the "
            f"{budget / 1e6:.1f} MP this machine's free memory allows; set MATTEKIT_MAX_PIXELS={width * height} "
            f"to try anyway.")


def _address_space_used() -> int:
    """Bytes of address space this process maps now (VmSize), 0 when unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def read_image(path, *, integers: bool = False) -> Picture:
    """Read a picture file into mattekit's internal form; raise InputError if that fails.

    integers: give 8- and 16-bit sources as they are stored, uint8 (0..255) / uint16 (0..65535), a
    quarter (half) of the float32 memory; float sources (EXR, float TIFF) and 16/32-bit grey stay float32.
    """
    src = str(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise InputError(f"Cannot read {src}: the file does not exist.") from None
    except IsADirectoryError:
        raise InputError(f"Cannot read {src}: it is a folder, not an image.") from None
    except OSError as e:
        raise InputError(f"Cannot read {src}: {_reason(e)}.") from None
    if magic == _EXR_MAGIC:
        return _read_exr(src)
    return _read_pillow(src, magic, integers)


def _read_pillow(src: str, magic: bytes, integers: bool) -> Picture:
    try:
        im = Image.open(src)
    except UnidentifiedImageError:
        if magic in _TIFF_MAGIC:  # e.g. float RGB TIFF, which Pillow cannot open
            check_size(src, *_tiff_size(src))
            return _read_opencv(src, "TIFF", "", 1, integers)
        raise InputError(f"{src} is not an image mattekit can read ({READABLE}).") from None
    except Image.DecompressionBombError:
        raise InputError(f"Cannot read {src}: the image is too large.") from None
    except _DECODE_ERRORS as e:
        raise _damaged(src, e) from None
    with im:
        check_size(src, *im.size)
        frames = getattr(im, "n_frames", 1)
        if frames > 1:
            warnings.warn(f"{src} has {frames} frames (animated or multi-page); only the first is used.", stacklevel=3)
        args = (im.tile[0][3] if im.tile else None) or ""  # (codec, extents, offset, args)
        rawmode = str(args if isinstance(args, str) else args[0])  # how the file stores a pixel
        deep = ";16" in rawmode and not im.mode.startswith("I")  # 16-bit colour: Pillow keeps 8 bits
        try:
            im.load()  # for 16-bit colour too: damage found here never reaches libpng's stderr messages in OpenCV
            orientation = im.getexif().get(0x0112, 1)  # (a PNG may keep its EXIF after the pixels)
        except _DECODE_ERRORS as e:
            raise _damaged(src, e) from None
        icc = im.info.get("icc_profile")
        if deep:
            if icc:
                _warn_profile(src, icc)
            return _read_opencv(src, im.format, im.mode, orientation, integers)
        pixels, depth = _pillow_pixels(im, icc, src, integers)
        return Picture(_orient(pixels, orientation), depth, src, pixels.shape[2] == 4, im.format or "", im.mode)


def _pillow_pixels(im: Image.Image, icc: bytes | None, src: str, integers: bool) -> tuple[np.ndarray, int]:
    """Pillow image -> (float32 HxWx3/4 sRGB, or uint8 for 8-bit sources when ``integers``; bit depth)."""
    if im.mode.startswith("I") or im.mode == "F":  # 16-bit grey ("I;16*"; "I" in old Pillows) or float grey
        if icc:
            _warn_profile(src, icc)
        scale, depth = (1.0, 32) if im.mode == "F" else (65535.0, 16)
        grey = np.clip(np.nan_to_num(np.asarray(im, np.float32) / scale), 0, 1)
        return np.repeat(grey[..., None], 3, axis=2), depth
    alpha = None
    if im.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in im.info:
        im = im.convert("LA" if im.mode in ("1", "L", "LA", "La") else "RGBA")  # un-premultiplies RGBa
        alpha = np.asarray(im.getchannel("A"))
        im = im.convert(im.mode[:-1])
    if im.mode not in ("L", "RGB", "CMYK"):
        im = im.convert("RGB")
    if icc:
        try:
            im = ImageCms.profileToProfile(im, ImageCms.ImageCmsProfile(io.BytesIO(icc)), _srgb(), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            warnings.warn(f"{src}: its colour profile could not be applied, so its colours are read as sRGB.")
    colours = im if im.mode == "RGB" else im.convert("RGB")  # (converting RGB to RGB would copy it)
    planes = [np.asarray(colours)] + ([alpha[..., None]] if alpha is not None else [])
    pixels = np.concatenate(planes, axis=2) if len(planes) > 1 else planes[0]
    return (pixels if integers else unit_float(pixels)), 8


def _read_opencv(src: str, fmt: str, mode: str, orientation: int, integers: bool) -> Picture:
    """Pixels Pillow cannot hold (16-bit colour, float colour) through OpenCV (``integers``: 8/16-bit
    samples kept as uint8/uint16 unless premultiplied alpha has to be divided out)."""
    data = cv2.imdecode(np.fromfile(src, np.uint8), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise InputError(f"Cannot read {src}: the file is damaged or truncated.")
    depth = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(data.dtype, 32)
    premultiplied = mode in ("RGBa", "La")
    if not (integers and depth < 32 and not premultiplied):
        scale = {8: 255.0, 16: 65535.0}.get(depth, 1.0)
        data = np.clip(np.nan_to_num(data.astype(np.float32) / scale), 0, 1)
    data = data[..., None] if data.ndim == 2 else data
    pixels = data[..., {1: [0, 0, 0], 2: [0, 0, 0, 1], 3: [2, 1, 0], 4: [2, 1, 0, 3]}[data.shape[2]]]
    alpha = pixels.shape[2] == 4
    if alpha and premultiplied:  # associated (premultiplied) alpha
        np.divide(pixels[..., :3], pixels[..., 3:], out=pixels[..., :3], where=pixels[..., 3:] > 0)
        pixels = np.clip(pixels, 0, 1)
    name = f"{mode or ('RGBA' if alpha else 'RGB')};{depth}"
    return Picture(_orient(pixels, orientation), depth, src, alpha, fmt, name)


def _tiff_size(src: str) -> tuple[int, int]:
    """(width, height) from the first directory of a TIFF file, without reading its pixels."""
    try:
        with open(src, "rb") as f:
            order = "<" if f.read(2) == b"II" else ">"
            f.seek(4)
            f.seek(struct.unpack(order + "I", f.read(4))[0])
            count = struct.unpack(order + "H", f.read(2))[0]
            size = {}
            for _ in range(count):
                tag, kind, _n, raw = struct.unpack(order + "HHI4s", f.read(12))
                if tag in (256, 257):
                    size[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), raw[:2] if kind == 3 else raw)[0]
        return size[256], size[257]
    except (OSError, struct.error, KeyError):
        raise InputError(f"Cannot read {src}: the file is damaged or truncated.") from None


def _read_exr(src: str) -> Picture:
    try:
        header = OpenEXR.File(src, header_only=True).header()
        for name in ("dataWindow", "displayWindow"):
            (x0, y0), (x1, y1) = header[name]
            check_size(src, int(x1) - int(x0) + 1, int(y1) - int(y0) + 1)
        f = OpenEXR.File(src, separate_channels=True)
        if not f.parts:  # a truncated file opens with no parts (OpenEXR reports it on stderr)
            raise ValueError
        header, channels = f.header(), f.channels()
    except (RuntimeError, ValueError):
        raise InputError(f"Cannot read {src}: the file is damaged, truncated or not a valid EXR image.") from None
    if header.get("type") in (OpenEXR.deepscanline, OpenEXR.deeptile):
        raise InputError(f"Cannot read {src}: it is a deep EXR, which mattekit does not support.")
    if any(c.xSampling != 1 or c.ySampling != 1 for c in channels.values()):
        raise InputError(f"Cannot read {src}: it uses subsampled (luminance/chroma) channels, which mattekit does not support.")
    names = ["R", "G", "B"] if {"R", "G", "B"} <= channels.keys() else ["Y"] if "Y" in channels else []
    if not names and "A" not in channels:
        raise InputError(f"Cannot read {src}: it has no R, G, B, Y or A channel (multi-layer EXRs are not supported).")
    plane = lambda n: _paste(channels[n].pixels.astype(np.float32), header["dataWindow"], header["displayWindow"])
    alpha = plane("A") if "A" in channels else None
    half = all(c.type() == OpenEXR.HALF for c in channels.values())
    mode = f"EXR {''.join(names) + ('A' if alpha is not None else '')} {'half' if half else 'float'}"
    if not names:  # a bare matte: coverage values, kept as they are
        grey = np.clip(np.nan_to_num(alpha), 0, 1)
        return Picture(np.repeat(grey[..., None], 3, axis=2), 32, src, False, "EXR", mode)
    rgb = np.nan_to_num(np.stack([plane(n) for n in names] * (3 // len(names)), axis=2))
    if alpha is not None:  # EXR colour is premultiplied; where alpha is 0 keep it as it is
        alpha = np.nan_to_num(alpha)[..., None]
        np.divide(rgb, alpha, out=rgb, where=alpha > 0)
    planes = [linear_to_srgb(np.clip(rgb, 0, 1))] + ([np.clip(alpha, 0, 1)] if alpha is not None else [])
    return Picture(np.concatenate(planes, axis=2).astype(np.float32), 32, src, alpha is not None, "EXR", mode)


def _paste(data: np.ndarray, data_window, display_window) -> np.ndarray:
    """Place an EXR data window inside its display window (zeros where there is no data)."""
    (x0, y0), (x1, y1) = (tuple(int(v) for v in p) for p in data_window)
    (X0, Y0), (X1, Y1) = (tuple(int(v) for v in p) for p in display_window)
    if (x0, y0, x1, y1) == (X0, Y0, X1, Y1):
        return data
    out = np.zeros((Y1 - Y0 + 1, X1 - X0 + 1), data.dtype)
    ys, ye, xs, xe = max(y0, Y0), min(y1, Y1) + 1, max(x0, X0), min(x1, X1) + 1
    if ys < ye and xs < xe:
        out[ys - Y0:ye - Y0, xs - X0:xe - X0] = data[ys - y0:ye - y0, xs - x0:xe - x0]
    return out


def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8), as Pillow's ImageOps.exif_transpose does."""
    if orientation not in range(2, 9):
        return pixels
    if orientation >= 5:  # 5-8 are 1-4 after a transpose
        pixels, orientation = pixels.swapaxes(0, 1), orientation - 4
    flip_rows, flip_cols = {1: (False, False), 2: (False, True), 3: (True, True), 4: (True, False)}[orientation]
    return np.ascontiguousarray(pixels[::-1 if flip_rows else 1, ::-1 if flip_cols else 1])


@lru_cache(maxsize=1)
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _warn_profile(src: str, icc: bytes) -> None:
    with contextlib.suppress(Exception):
        if "srgb" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).lower():
            return
    warnings.warn(f"{src}: the colour profile of a 16-bit or float image is not applied, so its colours are read as sRGB.")


def _damaged(src: str, e: Exception) -> InputError:
    what = "truncated" if "truncat" in str(e).lower() else "damaged or truncated"
    return InputError(f"Cannot read {src}: the file is {what}.")


def _reason(e: OSError) -> str:
    reasons = {errno.EACCES: "permission denied", errno.EPERM: "permission denied",
               errno.ENOSPC: "the disk is full", errno.EROFS: "the disk is read-only"}
    return reasons.get(e.errno, (e.strerror or str(e)).rstrip(".").lower())


# ----------------------------------------------------------------------------------- writing

def write_image(path, pixels, *, bit_depth: int = 8, linear_exr: bool = True, provenance: dict | None = None) -> None:
    """Write a picture (HxWx3/4) or mask (HxW, HxWx1) by the file's extension: floats in [0,1], or
    uint8/uint16 values (0..255 / 0..65535), which are stored as they are at their own bit depth.

    bit_depth: 8 or 16 for PNG/TIFF, 8 for JPEG/WebP; for EXR 32 writes float, anything else half.
    linear_exr: convert sRGB colour to linear for EXR (False writes the values as they are).
    provenance: a :mod:`mattekit.provenance` record to embed: XMP in PNG (iTXt), TIFF (tag 700),
    JPEG (APP1) and WebP; header attributes in EXR (``software``, ``mattekitProvenance`` JSON,
    ``digitalSourceType``). :func:`read_provenance` reads it back.
    JPEG cannot hold transparency: an RGBA picture that is not fully opaque raises OutputError.
    Memory: floats are rounded to integers in strips of rows (:func:`mattekit.ops.quantise`) and PNG is compressed
    strip by strip straight into the file, so a write needs the integer copy and a strip on top of the
    caller's array, never a full-size float copy.
    """
    path = Path(path)
    fmt = _WRITERS.get(path.suffix.lower())
    if fmt is None:
        raise OutputError(f"Cannot write {path}: mattekit writes PNG, JPEG, TIFF, WebP and EXR files.")
    if fmt != "EXR" and bit_depth not in _DEPTHS[fmt]:
        better = "PNG or TIFF" if bit_depth == 16 else "EXR"
        raise OutputError(f"Cannot write {path}: {fmt} cannot store {bit_depth}-bit images; use {better} instead.")
    if fmt == "EXR":
        px = _as_float(pixels)
        _atomic(path, lambda tmp: _write_exr(tmp, px, bit_depth == 32, linear_exr, provenance))
        return
    ints = quantise(pixels, bit_depth)
    if fmt == "JPEG" and ints.shape[2] == 4:
        if (ints[..., 3] < np.iinfo(ints.dtype).max).any():
            raise OutputError(f"Cannot write {path}: JPEG cannot store transparency; use PNG, TIFF, WebP or EXR instead.")
        ints = ints[..., :3]
    writer = {"PNG": _write_png, "TIFF": _write_tiff}.get(fmt, _write_pillow)
    xmp = to_xmp(provenance) if provenance else None
    _atomic(path, lambda tmp: writer(tmp, ints, fmt, xmp))


STRIP_BYTES = 2 << 20  # bytes of rows compressed (PNG) as one strip


def _as_float(pixels) -> np.ndarray:
    px = with_channels(pixels)
    if px.dtype.kind in "ui":
        px = px / float(np.iinfo(px.dtype).max)
    return np.clip(np.nan_to_num(px.astype(np.float32)), 0, 1)


def _atomic(path: Path, write) -> None:
    """Run write(temporary path) in path's folder, then move the result over path
    (:func:`mattekit.fsutil.atomic_write`); temporaries of path left by a killed earlier write are removed."""
    if not path.parent.is_dir():
        raise OutputError(f"Cannot write {path}: {path.parent} is not an existing folder.")
    if path.is_dir():
        raise OutputError(f"Cannot write {path}: it is a folder.")
    for stale in stale_temporaries(path):
        with contextlib.suppress(OSError):
            stale.unlink()
    try:
        atomic_write(path, write)
    except OSError as e:
        raise OutputError(f"Cannot write {path}: {_reason(e)}.") from None


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


PNG_LEVEL = 1  # zlib level: 1 compresses photos within a few per cent of 3 at a fraction of the time
_PNG_COLOUR = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (grey, grey+alpha, RGB, RGBA)


def _write_png(tmp: Path, ints: np.ndarray, fmt: str, xmp: bytes | None = None) -> None:
    """A PNG streamed into ``tmp``: IHDR, the XMP iTXt chunk (uncompressed, key "XML:com.adobe.xmp"),
    then one IDAT chunk per strip of rows (:func:`_png_strip`), the strips compressed in parallel
    threads (zlib lets go of the GIL) and written in order as one zlib stream at :data:`PNG_LEVEL`.
    Memory: one filtered and compressed strip per thread, and one more, on top of ``ints``; 16-bit samples are written big-endian."""
    h, w, c = ints.shape
    depth = ints.dtype.itemsize * 8
    if w * c * ints.dtype.itemsize + 1 > 2**31 - 1 or h > 2**31 - 1:
        raise OSError(errno.EFBIG, "the image is too large for a PNG file")
    rows = max(1, STRIP_BYTES // (w * c * ints.dtype.itemsize + 1))
    tops = range(0, h, rows)
    threads = max(1, min(len(tops), len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
    checksum = zlib.adler32(b"")
    with ThreadPoolExecutor(threads) as pool, open(tmp, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, _PNG_COLOUR[c], 0, 0, 0)))
        if xmp:
            f.write(_png_chunk(b"iTXt", _PNG_XMP_KEY + b"\0\0\0\0\0" + xmp))
        header = b"\x78\x01"  # the zlib stream's header (deflate, 32 KiB window, fastest), before the first strip
        pending: deque = deque()
        for top in tops:
            pending.append(pool.submit(_png_strip, ints[top : top + rows], top + rows >= h))
            while pending and (len(pending) > threads or top + rows >= h):
                lines, packed = pending.popleft().result()
                checksum = zlib.adler32(lines, checksum)
                _write_chunk(f, b"IDAT", header + packed)
                header = b""
        _write_chunk(f, b"IDAT", struct.pack(">I", checksum))  # the stream's end: the Adler-32 of all rows
        _write_chunk(f, b"IEND", b"")


def _png_strip(ints: np.ndarray, last: bool) -> tuple[memoryview, bytes]:
    """Rows of ``ints`` as PNG scanlines, each with the Sub filter (the difference to the pixel on its left,
    bytewise modulo 256), and those compressed as a raw deflate stream of their own: ended with a sync flush
    (byte-aligned, not final) so that strips concatenate into one stream, or with the final block when
    ``last``. Returns (scanlines, compressed bytes)."""
    raw = np.ascontiguousarray(ints, dtype=">u2" if ints.dtype.itemsize == 2 else np.uint8)
    raw = raw.view(np.uint8).reshape(raw.shape[0], -1)
    step = ints.shape[2] * ints.dtype.itemsize  # bytes per pixel
    lines = np.empty((raw.shape[0], raw.shape[1] + 1), np.uint8)
    lines[:, 0] = 1  # filter type Sub
    lines[:, 1 : 1 + step] = raw[:, :step]
    np.subtract(raw[:, step:], raw[:, :-step], out=lines[:, 1 + step :])
    packer = zlib.compressobj(PNG_LEVEL, zlib.DEFLATED, -15)
    return lines.data, packer.compress(lines.data) + packer.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def _write_chunk(f, kind: bytes, data: bytes) -> None:
    """One PNG chunk written piece by piece (no copy of ``data``); empty IDAT data writes nothing."""
    if data or kind != b"IDAT":
        f.write(struct.pack(">I", len(data)) + kind)
        f.write(data)
        f.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(kind))))


def _write_tiff(tmp: Path, ints: np.ndarray, fmt: str, xmp: bytes | None = None) -> None:
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


def _write_pillow(tmp: Path, ints: np.ndarray, fmt: str, xmp: bytes | None = None) -> None:
    """JPEG (XMP in an APP1 segment) and WebP (XMP chunk) through Pillow."""
    im = Image.fromarray(ints[..., 0] if ints.shape[2] == 1 else ints)
    options = {"JPEG": {"quality": 95, "subsampling": 0}, "WebP": {"quality": 95}}[fmt]
    if xmp:
        options["xmp"] = xmp
    try:
        im.save(tmp, format=fmt.upper(), **options)
    except ValueError as e:  # e.g. larger than the format allows
        raise OSError(errno.EINVAL, str(e)) from None


def _write_exr(tmp: Path, px: np.ndarray, full_float: bool, linear: bool, provenance: dict | None = None) -> None:
    dtype = np.float32 if full_float else np.float16
    if px.shape[2] == 1:
        planes = {"A": px[..., 0]}
    else:
        rgb = srgb_to_linear(px[..., :3]) if linear else px[..., :3]
        if px.shape[2] == 4:
            rgb = rgb * px[..., 3:]
        planes = {"R": rgb[..., 0], "G": rgb[..., 1], "B": rgb[..., 2]} | ({"A": px[..., 3]} if px.shape[2] == 4 else {})
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    if provenance:
        header |= {"software": provenance.get("software", ""), "digitalSourceType": provenance.get("digital_source_type", ""),
                   _EXR_RECORD: json.dumps(provenance, sort_keys=True)}
    try:
        OpenEXR.File(header, {k: np.ascontiguousarray(v, dtype) for k, v in planes.items()}).write(str(tmp))
    except RuntimeError as e:
        raise OSError(errno.EIO, str(e)) from None


# ----------------------------------------------------------------------------------- provenance

_PNG_XMP_KEY = b"XML:com.adobe.xmp"
_EXR_RECORD = "mattekitProvenance"


def read_provenance(path) -> dict | None:
    """The provenance embedded in an image file (see :func:`write_image`): mattekit's record, or
    another program's IPTC digital source type and creator tool; None when the file carries neither.
    InputError when the file cannot be read as an image."""
    src = str(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise InputError(f"Cannot read {src}: {_reason(e)}.") from None
    if magic == _EXR_MAGIC:
        try:
            header = OpenEXR.File(src, header_only=True).header()
        except (RuntimeError, ValueError, TypeError):
            raise InputError(f"Cannot read {src}: the file is damaged, truncated or not a valid EXR image.") from None
        if _EXR_RECORD in header:
            with contextlib.suppress(ValueError):
                return json.loads(header[_EXR_RECORD])
        found = {k: header[n] for k, n in (("software", "software"), ("digital_source_type", "digitalSourceType")) if n in header}
        return found or None
    try:
        with Image.open(src) as im:
            packet = im.info.get("xmp") or im.info.get(_PNG_XMP_KEY.decode())
            if packet is None and hasattr(im, "tag_v2"):
                packet = im.tag_v2.get(700)
    except (UnidentifiedImageError, *_DECODE_ERRORS):
        raise InputError(f"{src} is not an image mattekit can read ({READABLE}).") from None
    return from_xmp(packet) if packet else None
