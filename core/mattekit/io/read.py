"""Reading pictures (:func:`read_image`), what they declare without their pixels (:func:`read_layout`) and the
provenance they carry (:func:`read_provenance`).

Inside mattekit a picture is a float32 array H x W x C in [0, 1], C = 3 (RGB) or 4 (RGBA with
straight alpha), sRGB-encoded (:class:`mattekit.io.picture.Picture`); ``read_image`` brings any
supported file to that form, given its path, its bytes or a file object: one decoding either way
(a path is opened and read as the decoders need it; bytes are read from memory).

PNG, JPEG, TIFF, WebP, BMP, AVIF, HEIC/HEIF (pillow-heif's opener) and whatever else Pillow opens are read via
Pillow, except the pixels of 16-bit colour PNG/TIFF and of float TIFF, which come from OpenCV. EXIF orientation
is applied. An embedded ICC profile is converted to sRGB for 8-bit images (the source's own values are kept
beside them, ``Picture.original``, for the outputs); 16-bit and float images are taken as they are (a non-sRGB
profile gives a warning). The profile, dpi, EXIF and XMP outputs keep are ``Picture.metadata``
(:mod:`mattekit.io.metadata`).
Before any pixel is decoded, the size the file declares is checked against
:func:`mattekit.io.picture.pixel_budget` (``MATTEKIT_MAX_PIXELS``, else what the free memory allows);
a larger one is refused in one sentence.
Animated images and multi-page TIFFs give their first frame, with a warning saying so.
EXR and DPX are read by OpenImageIO (:mod:`mattekit.io.oiio`), their colour converted to sRGB from the colour
space the file names (:func:`mattekit.io.colour.default_colorspace`: EXR chromaticities or ``oiio:ColorSpace``, else
linear sRGB for EXR and float DPX, sRGB for integer DPX); a bare A channel (a matte) reads as its grey coverage.

Plate frames are read by :func:`read_plate`, which keeps their values as stored and manages their colour.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from functools import lru_cache
from typing import Iterator

import cv2
import numpy as np
import pillow_heif
from PIL import Image, ImageCms, UnidentifiedImageError

from . import colour
from mattekit.errors import InputError
from mattekit.io import metadata
from mattekit.io.formats import DECODE_ERRORS, DPX_MAGIC, EXR_MAGIC, PNG_XMP_KEY, TIFF_MAGIC
from mattekit.io.formats import Source, png_whole, reason
from mattekit.io.oiio import Scene, exr_provenance, read_scene, scene_attributes, scene_layout
from mattekit.io.picture import Layout, Picture, check_size
from mattekit.io.tiff import tiff_size
from mattekit.ops.pixels import finite, unit_float
from mattekit.provenance import from_xmp

pillow_heif.register_heif_opener()  # HEIC/HEIF through libheif (its rotation and mirroring applied); AVIF is Pillow's own
# mattekit checks declared sizes itself (pixel_budget), before decoding, and opens files without Pillow's bomb check
# (formats.pillow_open), whose process-wide limit (Image.MAX_IMAGE_PIXELS) stays the host program's.
# OpenCV's own log lines (not its exceptions) stay off the user's terminal.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


GIVEN = "the given bytes"  # what messages call encoded data given without a name


def read_image(source, *, integers: bool = False, name: str | None = None) -> Picture:
    """Read an image into mattekit's internal form; raise InputError (one sentence) if that fails.

    source: a path (str or Path); the bytes of an image file (bytes, bytearray, memoryview); or a binary
    file object (anything with ``read()``, read to its end). All three go through the same decoders and give
    the same Picture, the format told by the data's first bytes. name: what messages and ``Picture.source``
    call data that has no path (default "the given bytes"; the CLI says "standard input").
    integers: give 8- and 16-bit sources as they are stored, uint8 (0..255) / uint16 (0..65535), a
    quarter (half) of the float32 memory; float sources (EXR, float TIFF) and 16/32-bit grey stay float32.
    """
    with _opened(source, name) as data:
        magic = _magic(data)
        if magic in (EXR_MAGIC, *DPX_MAGIC):
            return _read_oiio(data)
        return _read_pillow(data, magic, integers)


def _read_oiio(data: Source) -> Picture:
    """EXR or DPX data through OpenImageIO: colour converted to the networks' sRGB from the file's own colour space
    (EXR is scene-linear unless it names another), straight alpha; a bare matte (A only) as its grey coverage."""
    with _on_disk(data) as path:
        found = read_scene(path, data.name)
    if found.is_matte:
        return Picture(np.clip(found.pixels, 0, 1), 32, data.name, False, found.format, found.mode)
    pixels = _network_pixels(found.pixels, _scene_space(found))
    return Picture(
        pixels,
        32 if found.format == "EXR" else found.bit_depth,
        data.name,
        pixels.shape[2] == 4,
        found.format,
        found.mode,
    )


def read_plate(path, colorspace: str | None = None, view: str | None = None) -> Picture:
    """A plate frame: ``scene``, its values as stored (float32 H x W x 3|4, straight alpha, unclipped) in OCIO
    colour space ``colorspace`` (None: the file's own, :func:`mattekit.io.colour.default_colorspace`), and
    ``pixels``, the networks' sRGB made from it by :func:`mattekit.io.colour.to_network` (through ``view`` of the sRGB
    display when given: a name :func:`mattekit.io.colour.check_view` gave; alpha clipped to [0, 1]).
    EXR, DPX and 16-bit and float TIFF are read by OpenImageIO (multi-part and layered EXR: the first part with
    colour); the others, 8-bit TIFF included (its ICC profile and EXIF orientation applied), by :func:`read_image`
    (taken as sRGB unless ``colorspace`` says otherwise)."""
    path = str(path)
    with _opened(path, None) as data:  # opened once for the formats Pillow reads (an 8-bit TIFF: its ICC profile
        magic = _magic(data)  # and EXIF orientation); OpenImageIO opens the others by their path
        by_pillow = magic not in (EXR_MAGIC, *DPX_MAGIC, *TIFF_MAGIC) or (
            magic in TIFF_MAGIC and _layout(data, magic).bit_depth == 8
        )
        picture = _read_pillow(data, magic, False) if by_pillow else None
    if picture is not None:
        picture.colorspace = colour.check_colorspace(colorspace) if colorspace else colour.NETWORK_SPACE
        picture.scene = picture.pixels  # sRGB in [0, 1]: one array serves both, unless another space or a view is named
        if view or not colour.is_network_space(picture.colorspace):
            picture.pixels = _network_pixels(picture.scene, picture.colorspace, view)
        return picture
    found = read_scene(path)
    if found.is_matte:
        raise InputError(f"Cannot read {path}: it holds a matte (an A channel alone), not a plate's colour.")
    space = _scene_space(found, colorspace)
    pixels = _network_pixels(found.pixels, space, view)
    return Picture(pixels, found.bit_depth, path, pixels.shape[2] == 4, found.format, found.mode, found.pixels, space)


def _scene_space(found: Scene, colorspace: str | None = None) -> str:
    """The OCIO colour space of ``found``'s values: ``colorspace`` when one is named (checked), else the file's own
    (:func:`mattekit.io.colour.default_colorspace`; EXR is scene-linear unless it names another space, integer EXR
    samples too)."""
    if colorspace:
        return colour.check_colorspace(colorspace)
    return colour.default_colorspace(found.colorspace, found.chromaticities, found.is_float or found.format == "EXR")


def _network_pixels(scene: np.ndarray, space: str, view: str | None = None) -> np.ndarray:
    """H x W x 3|4 values in colour space ``space`` -> the networks' sRGB in [0, 1] (through ``view``, when given,
    :func:`mattekit.io.colour.to_network`), alpha clipped to [0, 1]."""
    pixels = colour.to_network(scene[..., :3], space, view)
    return np.concatenate([pixels, np.clip(scene[..., 3:], 0, 1)], axis=2) if scene.shape[2] == 4 else pixels


@contextlib.contextmanager
def _opened(source, name: str | None) -> Iterator[Source]:
    """``source`` (see :func:`read_image`) as a seekable :class:`Source`: a path opened as a file (its
    pixels are read by the decoders as they need them, after the declared size is checked), bytes and
    file objects held in memory."""
    if isinstance(source, (str, os.PathLike)):
        src = str(source)
        try:
            f = open(source, "rb")
        except FileNotFoundError:
            raise InputError(f"Cannot read {src}: the file does not exist.") from None
        except IsADirectoryError:
            raise InputError(f"Cannot read {src}: it is a folder, not an image.") from None
        except OSError as e:
            raise InputError(f"Cannot read {src}: {reason(e)}.") from None
        with f:
            yield Source(f, src)
        return
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)  # (bytes are not copied)
    elif hasattr(source, "read"):
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"expected a binary file object, but read() gave {type(data).__name__}")
    else:
        raise TypeError(f"expected a path, bytes or a binary file object, not {type(source).__name__}")
    yield Source(io.BytesIO(data), name or GIVEN, "the data")


def _read_pillow(data: Source, magic: bytes, integers: bool) -> Picture:
    src = data.name
    try:
        im = data.open_image()  # (a PNG whose profile is too large to unpack: without it)
    except UnidentifiedImageError:
        if magic in TIFF_MAGIC:  # e.g. float RGB TIFF, which Pillow cannot open
            check_size(src, *tiff_size(data)[:2])
            return _read_opencv(data, "TIFF", "", 1, integers)
        raise data.unknown() from None
    except Image.DecompressionBombError:
        raise InputError(f"Cannot read {src}: the image is too large.") from None
    with im:
        check_size(src, *im.size)
        frames = getattr(im, "n_frames", 1)
        if frames > 1:
            warnings.warn(f"{src} has {frames} frames (animated or multi-page); only the first is used.", stacklevel=3)
        deep = _deep(im)
        try:
            im.load()  # for 16-bit colour too: damage found here never reaches libpng's stderr messages in OpenCV
            orientation = im.getexif().get(0x0112, 1)  # (a PNG may keep its EXIF after the pixels)
        except DECODE_ERRORS as e:
            raise data.damaged(e) from None
        except RuntimeError as e:  # libheif's refusals (pillow-heif raises them so)
            if im.format not in ("HEIF", "AVIF"):
                raise
            raise data.damaged(e) from None
        icc = im.info.get("icc_profile")
        kept = metadata.of_image(im)
        if deep:
            if icc:
                _warn_profile(src, icc)
            picture = _read_opencv(data, im.format, im.mode, orientation, integers)
            picture.metadata = kept
            return picture
        pixels, depth, original = _pillow_pixels(im, icc, src, integers)
        return Picture(
            _orient(pixels, orientation),
            depth,
            src,
            pixels.shape[2] == 4,
            im.format or "",
            im.mode,
            metadata=kept,
            original=None if original is None else _orient(original, orientation),
        )


def read_layout(source, name: str | None = None) -> Layout:
    """What an image declares (:class:`Layout`: format, size, bit depth and mode as :func:`read_image` would give
    them), read from its header without decoding its pixels, so no pixel budget applies. ``source`` and ``name``
    as for :func:`read_image`; InputError (one sentence) when it is no image mattekit reads."""
    with _opened(source, name) as data:
        return _layout(data, _magic(data))


def _layout(data: Source, magic: bytes) -> Layout:
    """:func:`read_layout` of opened ``data`` whose first bytes are ``magic``."""
    if magic in (EXR_MAGIC, *DPX_MAGIC):
        with _on_disk(data) as path:
            fmt, width, height, bit_depth, mode = scene_layout(path, data.name)
        return Layout(fmt, width, height, 32 if fmt == "EXR" else bit_depth, mode)
    try:
        im = data.open_image()
    except UnidentifiedImageError:
        if magic in TIFF_MAGIC:  # a float TIFF, which OpenCV reads
            width, height, samples = tiff_size(data)
            return Layout("TIFF", width, height, 32, f"{'RGBA' if samples in (2, 4) else 'RGB'};32")
        raise data.unknown() from None
    with im:
        width, height = im.size
        try:  # a PNG's EXIF after its pixels is left unread: Pillow would decode them to reach it
            exif = im.format != "PNG" or "exif" in im.info
            orientation = im.getexif().get(0x0112, 1) if exif else 1
        except DECODE_ERRORS as e:
            raise data.damaged(e) from None
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        if _deep(im):
            return Layout(im.format or "", width, height, 16, f"{im.mode};16")
        depth = 32 if im.mode == "F" else 16 if im.mode.startswith("I") else 8
        return Layout(im.format or "", width, height, depth, im.mode)


@contextlib.contextmanager
def _on_disk(data: Source) -> Iterator[str]:
    """A path holding ``data`` for OpenImageIO, which reads files only: the file's own, or a temporary copy of
    data given without one (removed afterwards)."""
    if data.noun == "the file":
        yield data.name
        return
    with tempfile.TemporaryDirectory(prefix="mattekit-") as folder:
        path = os.path.join(folder, "given")
        with open(path, "wb") as f:
            f.write(data.everything())
        yield path


def _magic(data: Source) -> bytes:
    """The first four bytes of the data, which tell its format; InputError when there are none."""
    magic = data.stream.read(4)
    if not magic:
        raise InputError(f"Cannot read {data.name}: {data.noun} is empty.")
    return magic


def _deep(im: Image.Image) -> bool:
    """Whether an opened image stores 16-bit colour, which Pillow cuts to 8 bits (OpenCV reads those pixels)."""
    args = (im.tile[0][3] if im.tile else None) or ""  # (codec, extents, offset, args)
    rawmode = str(args if isinstance(args, str) else args[0])  # how the file stores a pixel
    return ";16" in rawmode and not im.mode.startswith("I")


def _pillow_pixels(
    im: Image.Image, icc: bytes | None, src: str, integers: bool
) -> tuple[np.ndarray, int, np.ndarray | None]:
    """Pillow image -> (float32 HxWx3/4 sRGB, or uint8 for 8-bit sources when ``integers``; bit depth; the source's
    own values in that form where an RGB profile was converted to sRGB, else None)."""
    if im.mode.startswith("I") or im.mode == "F":  # 16-bit grey ("I;16*"; "I" in old Pillows) or float grey
        if icc:
            _warn_profile(src, icc)
        scale, depth = (1.0, 32) if im.mode == "F" else (65535.0, 16)
        grey = finite(np.asarray(im, np.float32) / scale, 0, 1)
        return np.repeat(grey[..., None], 3, axis=2), depth, None
    alpha = None
    if im.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in im.info:
        im = im.convert("LA" if im.mode in ("1", "L", "LA", "La") else "RGBA")  # un-premultiplies RGBa
        alpha = np.asarray(im.getchannel("A"))
        im = im.convert(im.mode[:-1])
    if im.mode not in ("L", "RGB", "CMYK"):
        im = im.convert("RGB")
    own = im if im.mode == "RGB" else None  # the source's own colours, kept where its RGB profile is converted
    if icc:
        try:
            im = ImageCms.profileToProfile(im, ImageCms.ImageCmsProfile(io.BytesIO(icc)), _srgb(), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            warnings.warn(f"{src}: its colour profile could not be applied, so its colours are read as sRGB.")
            own = None
    else:
        own = None
    colours = im if im.mode == "RGB" else im.convert("RGB")  # (converting RGB to RGB would copy it)

    def planes(rgb: Image.Image) -> np.ndarray:
        found = [np.asarray(rgb)] + ([alpha[..., None]] if alpha is not None else [])
        pixels = np.concatenate(found, axis=2) if len(found) > 1 else found[0]
        return pixels if integers else unit_float(pixels)

    return planes(colours), 8, None if own is None else planes(own)


def _read_opencv(source: Source, fmt: str, mode: str, orientation: int, integers: bool) -> Picture:
    """Pixels Pillow cannot hold (16-bit colour, float colour) through OpenCV (``integers``: 8/16-bit
    samples kept as uint8/uint16 unless premultiplied alpha has to be divided out)."""
    src = source.name
    encoded = source.everything()
    if fmt == "PNG" and not png_whole(encoded):  # (libpng would print its own line on the terminal first)
        raise source.damaged()
    data = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise source.damaged()
    depth = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(data.dtype, 32)
    premultiplied = mode in ("RGBa", "La")
    if not (integers and depth < 32 and not premultiplied):
        scale = {8: 255.0, 16: 65535.0}.get(depth, 1.0)
        data = finite(data.astype(np.float32) / scale, 0, 1)
    data = data[..., None] if data.ndim == 2 else data
    pixels = data[..., {1: [0, 0, 0], 2: [0, 0, 0, 1], 3: [2, 1, 0], 4: [2, 1, 0, 3]}[data.shape[2]]]
    alpha = pixels.shape[2] == 4
    if alpha and premultiplied:  # associated (premultiplied) alpha
        np.divide(pixels[..., :3], pixels[..., 3:], out=pixels[..., :3], where=pixels[..., 3:] > 0)
        pixels = np.clip(pixels, 0, 1)
    name = f"{mode or ('RGBA' if alpha else 'RGB')};{depth}"
    return Picture(_orient(pixels, orientation), depth, src, alpha, fmt, name)


def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8), as Pillow's ImageOps.exif_transpose does."""
    if orientation not in range(2, 9):
        return pixels
    if orientation >= 5:  # 5-8 are 1-4 after a transpose
        pixels, orientation = pixels.swapaxes(0, 1), orientation - 4
    flip_rows, flip_cols = {1: (False, False), 2: (False, True), 3: (True, True), 4: (True, False)}[orientation]
    return np.ascontiguousarray(pixels[:: -1 if flip_rows else 1, :: -1 if flip_cols else 1])


@lru_cache(maxsize=1)
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _warn_profile(src: str, icc: bytes) -> None:
    with contextlib.suppress(Exception):
        if "srgb" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).lower():
            return
    warnings.warn(
        f"{src}: the colour profile of a 16-bit or float image is not applied, so its colours are read as sRGB."
    )


def read_provenance(source, name: str | None = None) -> dict | None:
    """The provenance embedded in an image (see :func:`mattekit.io.write.write_image`): mattekit's record, or
    another program's IPTC digital source type and creator tool; None when the image carries neither.
    ``source`` and ``name`` as for :func:`read_image`; InputError when it cannot be read as an image."""
    with _opened(source, name) as data:
        magic = data.stream.read(4)
        if magic == EXR_MAGIC:
            with _on_disk(data) as path:
                return exr_provenance(scene_attributes(path, data.name))
        if magic in DPX_MAGIC:  # mattekit writes no DPX, and reads none of another program's records from it
            return None
        try:
            with data.open_image() as im:
                packet = im.info.get("xmp") or im.info.get(PNG_XMP_KEY.decode())
                if packet is None and hasattr(im, "tag_v2"):
                    packet = im.tag_v2.get(700)
        except (UnidentifiedImageError, *DECODE_ERRORS):
            raise data.unknown() from None
    return from_xmp(packet) if packet else None
