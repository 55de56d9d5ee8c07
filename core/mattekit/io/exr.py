"""OpenEXR images: scene-linear, premultiplied. :func:`read_exr` un-premultiplies, clips and sRGB-encodes
colour (a bare A channel reads as a grey matte, untouched); :func:`write_exr` writes linear, premultiplied
half or float; :func:`exr_provenance` reads the provenance attributes of a header, :func:`exr_layout` what
the header declares."""
from __future__ import annotations

import contextlib
import errno
import json
import struct
import warnings
from pathlib import Path

import numpy as np
import OpenEXR

from mattekit.console import library_text
from mattekit.errors import InputError
from mattekit.io.formats import EXR_RECORD, Source
from mattekit.io.picture import Layout, Picture, check_size
from mattekit.ops import linear_to_srgb, srgb_to_linear


def read_exr(source: Source) -> Picture:
    """EXR data as a :class:`Picture`: float32 H x W x 3|4 in [0,1], sRGB-encoded, straight alpha. The
    header alone is read first, so that a declared size over the pixel budget is refused before decoding."""
    src = source.name
    header = _header(source)
    for name in ("dataWindow", "displayWindow"):
        (x0, y0), (x1, y1) = header[name]
        check_size(src, int(x1) - int(x0) + 1, int(y1) - int(y0) + 1)
    with _decoding(source):
        source.stream.seek(0)
        f = OpenEXR.File(source.stream, separate_channels=True)
        if not f.parts:  # a damaged or truncated file opens with no parts (OpenEXR says why on stdout/stderr)
            raise ValueError
        header, channels = f.header(), f.channels()
    names = _colour_names(src, header)
    plane = lambda n: _paste(channels[n].pixels.astype(np.float32), header["dataWindow"], header["displayWindow"])
    alpha = plane("A") if "A" in channels else None
    mode = _mode(names, "A" in channels, all(c.type() == OpenEXR.HALF for c in channels.values()))
    if not names:  # a bare matte: coverage values, kept as they are
        grey = np.clip(np.nan_to_num(alpha), 0, 1)
        return Picture(np.repeat(grey[..., None], 3, axis=2), 32, src, False, "EXR", mode)
    rgb = np.nan_to_num(np.stack([plane(n) for n in names] * (3 // len(names)), axis=2))
    if alpha is not None:  # EXR colour is premultiplied; where alpha is 0 keep it as it is
        alpha = np.nan_to_num(alpha)[..., None]
        np.divide(rgb, alpha, out=rgb, where=alpha > 0)
    planes = [linear_to_srgb(np.clip(rgb, 0, 1))] + ([np.clip(alpha, 0, 1)] if alpha is not None else [])
    return Picture(np.concatenate(planes, axis=2).astype(np.float32), 32, src, alpha is not None, "EXR", mode)


def exr_layout(source: Source) -> Layout:
    """What EXR data declares (:class:`Layout`: the display window's size, the mode :func:`read_exr` gives), from
    its header alone."""
    header = _header(source)
    with _decoding(source):
        half = all(kind == 1 for kind in _channel_types(source).values())  # 0 uint, 1 half, 2 float
    names = _colour_names(source.name, header)
    (x0, y0), (x1, y1) = header["displayWindow"]
    alpha = any(c.name == "A" for c in header["channels"])
    return Layout("EXR", int(x1) - int(x0) + 1, int(y1) - int(y0) + 1, 32, _mode(names, alpha, half))


def _colour_names(src: str, header: dict) -> list[str]:
    """The colour channels mattekit reads from a header's channels (R, G, B or Y; none for a bare matte), or
    InputError for an EXR it does not read."""
    if header.get("type") in (OpenEXR.deepscanline, OpenEXR.deeptile):
        raise InputError(f"Cannot read {src}: it is a deep EXR, which mattekit does not support.")
    channels = {c.name: c for c in header.get("channels", [])}
    if any(c.xSampling != 1 or c.ySampling != 1 for c in channels.values()):
        raise InputError(f"Cannot read {src}: it uses subsampled (luminance/chroma) channels, which mattekit does not support.")
    names = ["R", "G", "B"] if {"R", "G", "B"} <= channels.keys() else ["Y"] if "Y" in channels else []
    if not names and "A" not in channels:
        raise InputError(f"Cannot read {src}: it has no R, G, B, Y or A channel (multi-layer EXRs are not supported).")
    return names


def _mode(names: list[str], alpha: bool, half: bool) -> str:
    """The mode a :class:`Picture` read from an EXR carries, e.g. "EXR RGBA half"."""
    return f"EXR {''.join(names) + ('A' if alpha else '')} {'half' if half else 'float'}"


def _channel_types(source: Source) -> dict[str, int]:
    """{channel name: pixel type} from the first header's ``channels`` attribute, read from the bytes (the
    bindings give a header's channels without their types until the pixels are read)."""
    f = source.stream
    f.seek(8)  # past the magic number and the version field
    while name := _text(f):
        _text(f)  # the attribute's type
        value = f.read(struct.unpack("<i", f.read(4))[0])
        if name == "channels":  # each: name, pixel type, pLinear + 3 reserved bytes, x and y sampling
            types, at = {}, 0
            while value[at:at + 1] not in (b"\0", b""):
                end = value.index(b"\0", at)
                types[value[at:end].decode("latin-1")] = struct.unpack_from("<i", value, end + 1)[0]
                at = end + 17
            return types
    raise ValueError("no channels attribute")


def _text(f) -> str:
    """One zero-terminated name of an EXR header (at most 255 bytes)."""
    text = b""
    while (byte := f.read(1)) not in (b"\0", b""):
        text += byte
        if len(text) > 255:
            raise ValueError("name too long")
    return text.decode("latin-1")


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


def provenance_attributes(provenance: dict | None) -> dict:
    """EXR header attributes carrying a :mod:`mattekit.provenance` record (none for None)."""
    if not provenance:
        return {}
    return {"software": provenance.get("software", ""), "digitalSourceType": provenance.get("digital_source_type", ""),
            EXR_RECORD: json.dumps(provenance, sort_keys=True)}


def write_exr(tmp: Path, px: np.ndarray, full_float: bool, provenance: dict | None = None,
              colour_attributes: dict | None = None) -> None:
    """Write ``px`` (H x W x 1|3|4 float32, straight alpha) premultiplied, float or half: colour sRGB-encoded
    and converted to linear; or, given ``colour_attributes`` (header attributes naming its colour space), as it is."""
    dtype = np.float32 if full_float else np.float16
    if px.shape[2] == 1:
        planes = {"A": px[..., 0]}
    else:
        rgb = srgb_to_linear(px[..., :3]) if colour_attributes is None else px[..., :3]
        if px.shape[2] == 4:
            rgb = rgb * px[..., 3:]
        planes = {"R": rgb[..., 0], "G": rgb[..., 1], "B": rgb[..., 2]} | ({"A": px[..., 3]} if px.shape[2] == 4 else {})
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage} | (colour_attributes or {})
    header |= provenance_attributes(provenance)
    try:
        OpenEXR.File(header, {k: np.ascontiguousarray(v, dtype) for k, v in planes.items()}).write(str(tmp))
    except RuntimeError as e:
        raise OSError(errno.EIO, str(e)) from None




def _header(source: Source) -> dict:
    """The header of the EXR data, its pixels left unread (OpenEXR reads from the stream itself)."""
    with _decoding(source):
        source.stream.seek(0)
        return OpenEXR.File(source.stream, header_only=True).header()


@contextlib.contextmanager
def _decoding(source: Source):
    """Around OpenEXR reading ``source``: the text OpenEXR prints is kept off standard output and error
    (:func:`mattekit.console.library_text`); a failure is one InputError, with OpenEXR's words as a
    RuntimeWarning (which the CLI shows with --debug)."""
    with library_text() as said:
        try:
            yield
        except (RuntimeError, ValueError, TypeError, struct.error):
            failed = True
        else:
            failed = False
    if failed:
        if said.text:
            warnings.warn(f"OpenEXR on {source.name}: {' '.join(said.text.split())}", RuntimeWarning, stacklevel=3)
        raise InputError(f"Cannot read {source.name}: {source.noun} is damaged, truncated or not a valid EXR image.") from None


def exr_provenance(source: Source) -> dict | None:
    """The provenance in the header of EXR data (see :func:`mattekit.io.read.read_provenance`)."""
    header = _header(source)
    if EXR_RECORD in header:
        with contextlib.suppress(ValueError):
            return json.loads(header[EXR_RECORD])
    found = {k: header[n] for k, n in (("software", "software"), ("digital_source_type", "digitalSourceType")) if n in header}
    return found or None
