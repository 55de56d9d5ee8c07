"""Studio plates for the tests: files OpenImageIO writes itself (any format, multi-part, with header attributes),
colours converted by OCIO's built-in studio config, real DAVIS frames at SIZE, and roto with MODEL on them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
import PyOpenColorIO as ocio

from mattekit import cli
from mattekit.io import colour, read_image

MODEL = "u2netp"  # real weights from the shared mirror, small
SIZE = (160, 96)  # plate frames: width, height


def oiio_write(path: Path, parts: list[tuple[np.ndarray, list[str]]], sample: str = "float", **attributes) -> None:
    """Write ``parts`` (each H x W x C float32 and its channel names; several = a multi-part file) with OIIO."""
    path.parent.mkdir(parents=True, exist_ok=True)
    specs = []
    for pixels, names in parts:
        spec = oiio.ImageSpec(pixels.shape[1], pixels.shape[0], pixels.shape[2], sample)
        spec.channelnames = tuple(names)
        if "A" in names:
            spec.alpha_channel = names.index("A")
        for key, value in attributes.items():  # oiio_BitsPerSample -> oiio:BitsPerSample; (type, values) or a value
            spec.attribute(key.replace("_", ":"), *(value if isinstance(value, tuple) else (value,)))
        specs.append(spec)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), tuple(specs)) if len(specs) > 1 else out.open(str(path), specs[0]), oiio.geterror()
    for n, (pixels, _) in enumerate(parts):
        if n:
            assert out.open(str(path), specs[n], "AppendSubimage"), out.geterror()
        assert out.write_image(np.ascontiguousarray(pixels, np.float32)), out.geterror()
    out.close()


def convert(rgb: np.ndarray, source: str, target: str) -> np.ndarray:
    """``rgb`` from one colour space of the built-in studio config to another, by OCIO itself."""
    out = np.ascontiguousarray(rgb, np.float32).copy()
    ocio.Config.CreateFromFile(colour.BUILTIN).getProcessor(source, target).getDefaultCPUProcessor().applyRGB(out)
    return out


def frames(shared: Path, count: int, sequence: str = "blackswan") -> list[np.ndarray]:
    """Real DAVIS frames, shrunk to SIZE, as 8-bit sRGB values in [0, 1] (float32 H x W x 3)."""
    source = sorted((shared / "data" / "davis" / "im" / sequence).iterdir())[:count]
    return [np.round(cv2.resize(read_image(p).pixels, SIZE, interpolation=cv2.INTER_AREA) * 255) / 255 for p in source]


def roto(argv: list) -> None:
    """``mattekit roto ARGV`` with MODEL on one CPU thread, in this process; it must succeed."""
    assert cli.main(["roto", *map(str, argv), "--model", MODEL, "--device", "cpu", "--threads", "1"]) == 0
