"""EXR, DPX and deep TIFF through OpenImageIO: :func:`read_scene` reads a file's pixels as stored (EXR single- and
multi-part, layered; DPX; TIFF), so that their colour can be managed (:mod:`mattekit.io.colour`); :func:`write_exr`
and :func:`write_layers` write EXR (a plain one, and roto's layered one for compositors)."""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mattekit.errors import InputError
from mattekit.io.formats import EXR_RECORD
from mattekit.io import kept
from mattekit.io.picture import check_size
from mattekit.ops.pixels import finite

if TYPE_CHECKING:  # OpenImageIO is imported where it is used: a JPEG or PNG run never loads it (32 MB, 27 ms)
    import OpenImageIO as oiio


FORMATS = {"openexr": "EXR", "dpx": "DPX", "tiff": "TIFF"}  # OIIO's format names -> ours


@dataclass
class Scene:
    """A file's pixels as stored: float32 H x W x 3|4, straight alpha, nothing clipped or converted (integer
    samples scaled to 0..1)."""

    pixels: np.ndarray
    bit_depth: int  # 8, 16 (integers or half float) or 32 (float)
    is_float: bool
    format: str  # "EXR", "DPX", "TIFF"
    mode: str  # e.g. "EXR RGBA half", "DPX RGB 10-bit", "EXR beauty.RGBA float"
    colorspace: str  # oiio:ColorSpace as the file states it ("" when it does not)
    chromaticities: tuple | None  # EXR chromaticities (8 floats), when present
    is_matte: bool = False  # a bare A channel: its coverage as grey in ``pixels`` (H x W x 3), no alpha


def read_scene(path: str, name: str | None = None) -> Scene:
    """Read ``path`` with OpenImageIO: the first part (subimage) with R, G, B (or a layer's ``NAME.R``, ``.G``,
    ``.B``), with its A; a bare Y is grey; a first part with a bare A and no colour is a matte. The declared size
    is checked before any pixel is decoded. ``name``: what messages call the file (default: ``path``)."""
    name = name or path
    with _open(path, name) as image:
        return _read(image, name)


@contextlib.contextmanager
def _open(path: str, name: str):
    """An OIIO ImageInput on ``path`` (its header read) for a ``with`` block, closed at its end; InputError when it
    cannot be opened."""
    import OpenImageIO as oiio

    image = oiio.ImageInput.open(path, oiio.ImageSpec())  # (an empty config: unassociated alpha comes associated)
    if image is None:
        raise InputError(f"Cannot read {name}: {_why(oiio.geterror())}.")
    try:
        yield image
    finally:
        image.close()


def scene_layout(path: str, name: str | None = None) -> tuple[str, int, int, int, str]:
    """(format, width, height, bit depth, mode) that :func:`read_scene` would give, from the header alone."""
    name = name or path
    with _open(path, name) as image:
        _, spec, channels, matte = _colour_part(image, name)
        fmt, bit_depth, mode = _kind(image, spec, channels, matte)
        return fmt, spec.full_width, spec.full_height, bit_depth, mode


def scene_attributes(path: str, name: str | None = None) -> dict:
    """The header attributes of ``path``'s first part as OpenImageIO names them ({name: value}), pixels unread."""
    with _open(path, name or path) as image:
        return {attr.name: attr.value for attr in image.spec().extra_attribs}


def _kind(image, spec: oiio.ImageSpec, channels: list[int], matte: bool) -> tuple[str, int, str]:
    """(format, bit depth 8|16|32, mode) of a part read as ``channels``."""
    import OpenImageIO as oiio

    fmt = FORMATS.get(image.format_name(), image.format_name().upper())
    is_float = spec.format.basetype in (oiio.FLOAT, oiio.HALF, oiio.DOUBLE)
    bits = spec.get_int_attribute("oiio:BitsPerSample", 0) or spec.format.size() * 8
    layer = _layer_name(spec.channelnames[channels[0]])
    what = "A" if matte else ("RGB" if channels[0] != channels[1] else "Y") + ("A" if len(channels) == 4 else "")
    sample = {16: "half", 32: "float"}.get(bits, f"{bits}-bit") if is_float else f"{bits}-bit"
    return fmt, 32 if bits > 16 else 16 if bits > 8 else 8, f"{fmt} {layer + '.' if layer else ''}{what} {sample}"


def _read(image, name: str) -> Scene:
    import OpenImageIO as oiio

    for part in (image.spec(), None):  # the first part's declared size, then the part read (when another)
        if part is None:
            subimage, part, channels, matte = _colour_part(image, name)
        for width, height in ((part.width, part.height), (part.full_width, part.full_height)):
            check_size(name, width, height)
    spec = part
    data = image.read_image(subimage, 0, 0, spec.nchannels, "float")
    if data is None:
        raise InputError(f"Cannot read {name}: {_why(image.geterror())}.")
    data = np.asarray(data, np.float32).reshape(spec.height, spec.width, spec.nchannels)
    if spec.roi != spec.roi_full:  # the data window placed in the display window, zeros where there is no data
        held = oiio.ImageBuf(spec)
        held.set_pixels(spec.roi, data)
        data = oiio.ImageBufAlgo.crop(held, spec.roi_full).get_pixels(oiio.FLOAT, spec.roi_full)
        data = np.asarray(data, np.float32).reshape(spec.full_height, spec.full_width, spec.nchannels)
    # this read's own array when its channels are the ones wanted, in order, else a copy of those: NaN to 0 and
    # +-inf to the largest finite values in place
    pixels = data if channels == list(range(data.shape[2])) else data[..., channels]
    finite(pixels)
    if pixels.shape[2] == 4:  # OIIO gives associated (premultiplied) alpha: divide it out where it is not 0
        np.divide(pixels[..., :3], pixels[..., 3:], out=pixels[..., :3], where=pixels[..., 3:] > 0)
    fmt, bit_depth, mode = _kind(image, spec, channels, matte)
    is_float = spec.format.basetype in (oiio.FLOAT, oiio.HALF, oiio.DOUBLE)
    chromaticities = spec.getattribute("chromaticities")
    return Scene(
        pixels,
        bit_depth,
        is_float,
        fmt,
        mode,
        spec.get_string_attribute("oiio:ColorSpace", ""),
        tuple(chromaticities) if chromaticities else None,
        matte,
    )


def _colour_part(image, name: str) -> tuple[int, oiio.ImageSpec, list[int], bool]:
    """(subimage, its spec, the channel indices giving R, G, B[, A], whether it is a bare matte) of the first
    part holding colour, else of a first part holding a bare A (its index three times)."""
    subimage = 0
    while image.seek_subimage(subimage, 0):
        spec = image.spec()
        if spec.deep:
            raise InputError(f"Cannot read {name}: it holds deep data, which mattekit does not read.")
        names = list(spec.channelnames)
        for layer in dict.fromkeys(_layer_name(n) for n in names):
            dot = layer + "." if layer else ""
            rgb = [dot + c for c in "RGB"]
            if all(n in names for n in rgb):
                picked = [names.index(n) for n in rgb]
            elif dot + "Y" in names:
                picked = [names.index(dot + "Y")] * 3
            else:
                continue
            alpha = [names.index(dot + "A")] if dot + "A" in names else []
            return subimage, spec, picked + alpha, False
        subimage += 1
    if image.seek_subimage(0, 0) and "A" in image.spec().channelnames:
        return 0, image.spec(), [list(image.spec().channelnames).index("A")] * 3, True
    raise InputError(f"Cannot read {name}: no part or layer of it has R, G, B, Y or A channels.")


def _layer_name(channel: str) -> str:
    """``beauty.R`` -> ``beauty``; ``R`` -> ``""``."""
    return channel.rpartition(".")[0]


def _why(text: str) -> str:
    """OIIO's error text as the end of a sentence."""
    first = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    if not first or "could not find a format reader" in first.lower() or "no such file" in first.lower():
        return "it is damaged, truncated or not an image mattekit can read"
    first = re.sub(r"^EXR Error \(.*?\): (EXR_ERR_\w+ )?", "", first)  # OpenEXR's prefix and error code
    clause = re.split(r"(?<=[.?!;])\s", first.split(": ")[0])[0].rstrip(".?!;")  # the reader's words, one clause
    return f"it is damaged or truncated ({clause[:1].lower() + clause[1:]})"


# ----------------------------------------------------------------------------------- layered EXR

LAYER_CHANNELS = ("R", "G", "B", "A", "fg.R", "fg.G", "fg.B", "fg.A")  # what write_layers writes, in this order
_NOT_COPIED = (
    "oiio:",
    "openexr:",
    "dpx:",
    "tiff:",
    "png:",
    "jpeg:",
    "exif:",
    "compression",
    "chromaticities",
    "planarconfig",
    "Orientation",
    "XResolution",
    "YResolution",
    "ResolutionUnit",
    "ICCProfile",
)


def plate_spec(path: str) -> oiio.ImageSpec | None:
    """The header of plate frame ``path`` as OIIO reads it (data and display windows, metadata), or None when OIIO
    has no reader for it. An EXR's ``owner`` (a person's name, which OIIO calls ``Copyright``) keeps its own name,
    so that it is not kept by default (:func:`mattekit.io.kept.attribute`); OIIO writes it back as ``owner``."""
    import OpenImageIO as oiio

    image = oiio.ImageInput.open(str(path))
    if image is None:
        oiio.geterror()
        return None
    try:
        spec = oiio.ImageSpec(image.spec())
        owner = spec.getattribute("Copyright") if image.format_name() == "openexr" else None
        if owner is not None:
            spec.erase_attribute("Copyright")
            spec.attribute("owner", owner)
        return spec
    finally:
        image.close()


def write_layers(
    tmp,
    rgb: np.ndarray,
    fg: np.ndarray,
    coverage: np.ndarray,
    *,
    half: bool,
    source: oiio.ImageSpec | None,
    attributes: dict,
    objects: dict[str, np.ndarray] | None = None,
    personal: bool = False,
) -> None:
    """One EXR for compositors at ``tmp``: ``R G B A`` the cut-out (``rgb`` x ``coverage``, premultiplied) and
    ``fg.R fg.G fg.B fg.A`` the decontaminated foreground (``fg`` x ``coverage``), as Nuke names its rgba and fg
    layers, then one ``NAME.A`` per object of ``objects`` ({name: its matte, H x W in [0, 1]}, several objects of
    one shot; ``coverage`` is then their union); rgb, fg: H x W x 3 float32 in the plate's colour space (any
    range); coverage: H x W in [0, 1].
    ``source`` (the plate frame's header) gives the data window (only its pixels are stored) and the metadata
    copied through (timecode, frame rate, camera and lens attributes...; not what described the old file's
    encoding or colour, and unless ``personal`` only those :func:`mattekit.io.kept.attribute` allows); ``attributes`` (colour space, provenance) are
    set last. ``half``: 16-bit float samples."""
    height, width = coverage.shape
    a = coverage[..., None]
    objects = objects or {}
    pixels = np.concatenate([rgb * a, a, fg * a, a, *(m[..., None] for m in objects.values())], axis=2).astype(
        np.float32
    )
    names = LAYER_CHANNELS + tuple(f"{name}.A" for name in objects)
    spec = _exr_spec(width, height, names, half)
    if source is not None:
        for attr in source.extra_attribs:
            if not attr.name.startswith(_NOT_COPIED) and (personal or kept.attribute(attr.name)):
                spec.attribute(attr.name, attr.type, attr.value)
        if (source.full_width, source.full_height) == (width, height) and source.roi != source.roi_full:
            spec.x, spec.y, spec.width, spec.height = source.x, source.y, source.width, source.height
            spec.full_x, spec.full_y, spec.full_width, spec.full_height = (source.full_x, source.full_y, width, height)
            x0, y0 = source.x - source.full_x, source.y - source.full_y
            pixels = pixels[max(y0, 0) : y0 + source.height, max(x0, 0) : x0 + source.width]
            pixels = _padded(pixels, x0, y0, source.width, source.height)
    _write(tmp, spec, pixels, attributes)


def write_exr(tmp, pixels: np.ndarray, names: tuple[str, ...], *, half: bool, attributes: dict) -> None:
    """One EXR at ``tmp``: ``pixels`` (H x W x len(``names``) float32, stored as they are, any range) as the
    channels ``names`` (``A`` the alpha where there is one), half or float samples, zip-compressed, with the
    header ``attributes`` (colour space, provenance)."""
    _write(tmp, _exr_spec(pixels.shape[1], pixels.shape[0], names, half), pixels, attributes)


def _exr_spec(width: int, height: int, names: tuple[str, ...], half: bool) -> oiio.ImageSpec:
    """The header of a zip-compressed EXR of ``width`` x ``height`` pixels with channels ``names``."""
    import OpenImageIO as oiio

    spec = oiio.ImageSpec(width, height, len(names), oiio.HALF if half else oiio.FLOAT)
    spec.channelnames = names
    spec.alpha_channel = names.index("A") if "A" in names else -1
    spec.attribute("compression", "zip")
    spec.attribute("DateTime", "")  # else OIIO stamps the time of writing (capDate): same input, same bytes
    return spec


def _write(tmp, spec: oiio.ImageSpec, pixels: np.ndarray, attributes: dict) -> None:
    """Write ``pixels`` under ``spec`` with ``attributes`` set last (a tuple of floats as a float array, e.g.
    chromaticities); OSError when OpenImageIO cannot."""
    import OpenImageIO as oiio

    for name, value in attributes.items():
        if isinstance(value, tuple):
            spec.attribute(name, oiio.TypeDesc(f"float[{len(value)}]"), value)
        else:
            spec.attribute(name, value)
    out = oiio.ImageOutput.create("openexr")
    if (
        out is None
        or not out.open(str(tmp), spec)
        or not out.write_image(np.ascontiguousarray(pixels, np.float32))
        or not out.close()
    ):
        raise OSError(5, (out.geterror() if out is not None else oiio.geterror()) or "OpenImageIO could not write it")


def _padded(pixels: np.ndarray, x0: int, y0: int, width: int, height: int) -> np.ndarray:
    """``pixels`` (the display window's part of a data window at ``x0``, ``y0``) grown to the data window's
    ``width`` x ``height`` with zeros where the data window reaches outside the display window."""
    if pixels.shape[:2] == (height, width):
        return pixels
    out = np.zeros((height, width, pixels.shape[2]), np.float32)
    ys, xs = max(-y0, 0), max(-x0, 0)
    out[ys : ys + pixels.shape[0], xs : xs + pixels.shape[1]] = pixels
    return out


def exr_provenance(header: dict) -> dict | None:
    """The provenance in an EXR header's attributes: mattekit's record, else another program's software and
    IPTC digital source type; None when there is neither."""
    if isinstance(header.get(EXR_RECORD), str):
        with contextlib.suppress(ValueError):
            return json.loads(header[EXR_RECORD])
    found = {
        k: header[n]
        for k, n in (("software", "software"), ("digital_source_type", "digitalSourceType"))
        if isinstance(header.get(n), str)
    }
    return found or None
