"""Reading pictures (:func:`read_image`), what they declare without their pixels (:func:`read_layout`) and the
provenance they carry (:func:`read_provenance`).

Inside mattekit a picture is a float32 array H x W x C in [0, 1], C = 3 (RGB) or 4 (RGBA with
straight alpha), sRGB-encoded (:class:`mattekit.io.picture.Picture`); ``read_image`` brings any
supported file to that form, given its path, its bytes or a file object: one decoding either way
(a path is opened and read as the decoders need it; bytes are read from memory).

What Pillow opens (PNG, JPEG, TIFF, WebP, HEIC, ...) is decoded by :mod:`mattekit.io.photo` (OpenCV: 16-bit colour).
Before any pixel is decoded, the size the file declares is checked against
:func:`mattekit.io.picture.pixel_budget` (``MATTEKIT_MAX_PIXELS``, else what the free memory allows);
a larger one is refused in one sentence.
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
from typing import Iterator

import numpy as np
from PIL import UnidentifiedImageError

from . import colour
from mattekit.errors import InputError
from mattekit.io.formats import DECODE_ERRORS, DPX_MAGIC, EXR_MAGIC, PNG_XMP_KEY, TIFF_MAGIC
from mattekit.io.formats import Source, reason
from mattekit.io.oiio import Scene, exr_provenance, read_scene, scene_attributes, scene_layout
from mattekit.io.photo import is_deep, read_pillow
from mattekit.io.picture import Layout, Picture
from mattekit.io.tiff import tiff_size
from mattekit.provenance import from_xmp


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
        return read_pillow(data, magic, integers)


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
        picture = read_pillow(data, magic, False) if by_pillow else None
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
        if is_deep(im):
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
