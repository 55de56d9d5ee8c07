"""Decoding what Pillow opens (PNG, JPEG, TIFF, WebP, BMP, AVIF, HEIC/HEIF, ...) for :mod:`mattekit.io.read`:
:func:`read_pillow`. The pixels of 16-bit colour PNG/TIFF and of float TIFF come from OpenCV. EXIF orientation is
applied. An embedded ICC profile is converted to sRGB for 8-bit images (the source's own values are kept beside them,
``Picture.original``, for the outputs); 16-bit and float images are taken as they are (a non-sRGB profile gives a
warning). Metadata outputs keep: ``Picture.metadata`` (:mod:`mattekit.io.metadata`). Animated images and multi-page
TIFFs give their first frame, with a warning saying so."""

from __future__ import annotations

import contextlib
import io
import warnings
from functools import lru_cache

import cv2
import numpy as np
import pillow_heif
from PIL import Image, ImageCms, UnidentifiedImageError

from mattekit.errors import InputError
from mattekit.io import metadata
from mattekit.io.formats import DECODE_ERRORS, TIFF_MAGIC, Source, png_whole
from mattekit.io.picture import Picture, check_size
from mattekit.io.tiff import tiff_size
from mattekit.ops.pixels import finite, unit_float

pillow_heif.register_heif_opener()  # HEIC/HEIF through libheif (its rotation and mirroring applied); AVIF is Pillow's own
# mattekit checks declared sizes itself (pixel_budget), before decoding, and opens files without Pillow's bomb check
# (formats.pillow_open), whose process-wide limit (Image.MAX_IMAGE_PIXELS) stays the host program's.
# OpenCV's own log lines (not its exceptions) stay off the user's terminal.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def read_pillow(data: Source, magic: bytes, integers: bool) -> Picture:
    """Opened ``data`` whose first bytes are ``magic`` as :func:`mattekit.io.read.read_image` gives it."""
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
        deep = is_deep(im)
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


def is_deep(im: Image.Image) -> bool:
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
