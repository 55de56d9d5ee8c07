"""A corpus of bad, big and hostile images generated for the journeys' tests (never committed): malformed, tiny,
huge-declared and exotic files, the inputs' hashes (to show that a run changed none), and which files a folder run
takes."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import OpenEXR
from PIL import Image

from mattekit import io
from mattekit.io.outputs import IMAGE_SUFFIXES
from mattekit.fsutil import sha256_file


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _declared_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height grey pixels (its data is one empty row)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _png_chunk(b"IEND", b"")
    )


def _declared_tiff(width: int, height: int) -> bytes:
    """A TIFF directory declaring width x height 8-bit grey pixels in a 1-byte strip."""
    tags = [
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 4, 1, 8),
        (277, 3, 1, 1),
        (278, 4, 1, height),
        (279, 4, 1, 1),
    ]
    out = b"II*\x00" + struct.pack("<I", 9) + b"\0" + struct.pack("<H", len(tags))
    for tag, kind, count, value in tags:
        out += struct.pack("<HHI", tag, kind, count) + (
            struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        )
    return out + struct.pack("<I", 0)


def _exr(path: Path, planes: dict, **header) -> None:
    OpenEXR.File(
        {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage, **header},
        {k: np.ascontiguousarray(v, np.float32) for k, v in planes.items()},
    ).write(str(path))


def make_corpus(folder: Path, only: set[str] | None = None) -> dict[str, bool]:
    """Write the corpus into ``folder``: {file name: whether it is a valid image mattekit must process}."""
    rng = np.random.default_rng(14)
    photo = rng.random((48, 64, 3)).astype(np.float32)
    corpus: dict[str, bool] = {}

    def add(name: str, valid: bool, write) -> None:
        if only is None or name in only:
            write(folder / name)
            corpus[name] = valid

    add("photo.png", True, lambda p: io.write_image(p, photo))
    add("photo.jpg", True, lambda p: io.write_image(p, photo))
    add("pixel_1x1.png", True, lambda p: io.write_image(p, photo[:1, :1]))
    add("pixels_2x2.png", True, lambda p: io.write_image(p, photo[:2, :2]))
    add("strip_65535x1.png", True, lambda p: Image.new("L", (65535, 1), 90).save(p))  # the 271-byte strip
    add("strip_1x65535.png", True, lambda p: Image.new("L", (1, 65535), 90).save(p))
    add("strip_2x3000.png", True, lambda p: io.write_image(p, rng.random((2, 3000, 3)).astype(np.float32)))
    add("strip_3000x2.png", True, lambda p: io.write_image(p, rng.random((3000, 2, 3)).astype(np.float32)))
    add("cmyk.jpg", True, lambda p: Image.fromarray((photo * 255).astype(np.uint8)).convert("CMYK").save(p))
    add(
        "palette.png",
        True,
        lambda p: Image.fromarray((photo * 255).astype(np.uint8)).quantize(16).save(p, transparency=0),
    )
    add("deep16.png", True, lambda p: io.write_image(p, photo, bit_depth=16))
    add("grey16.tif", True, lambda p: Image.fromarray((photo[..., 0] * 65535).astype(np.uint16)).save(p))
    add("float_rgb.tif", True, lambda p: __import__("cv2").imwrite(str(p), photo))
    add(
        "nan.exr",
        True,
        lambda p: _exr(
            p,
            {
                "R": np.where(photo[..., 0] > 0.5, np.nan, 1e6),
                "G": photo[..., 1] * -5,
                "B": np.full(photo.shape[:2], np.inf),
            },
        ),
    )
    frames = [Image.fromarray((photo * 255 * k / 3).astype(np.uint8)) for k in (1, 2, 3)]
    add("animated.gif", True, lambda p: frames[0].save(p, save_all=True, append_images=frames[1:], duration=50))
    add("animated.webp", True, lambda p: frames[0].save(p, save_all=True, append_images=frames[1:], duration=50))
    add("animated.png", True, lambda p: frames[0].save(p, save_all=True, append_images=frames[1:], duration=50))
    add("multipage.tif", True, lambda p: frames[0].save(p, save_all=True, append_images=frames[1:]))
    add("png_named_as.jpg", True, lambda p: Image.fromarray((photo * 255).astype(np.uint8)).save(p, format="PNG"))
    exif = Image.Exif()
    exif[0x0112] = 6
    add("rotated_exif.jpg", True, lambda p: Image.fromarray((photo * 255).astype(np.uint8)).save(p, exif=exif))
    add("no_read_permission.png", os.geteuid() == 0, lambda p: (io.write_image(p, photo), p.chmod(0)))
    add("empty.png", False, lambda p: p.write_bytes(b""))
    add("truncated.png", False, lambda p: (io.write_image(p, photo), p.write_bytes(p.read_bytes()[:300])))
    add("truncated.jpg", False, lambda p: (io.write_image(p, photo), p.write_bytes(p.read_bytes()[:400])))
    add("truncated.exr", False, lambda p: (_exr(p, {"R": photo[..., 0]}), p.write_bytes(p.read_bytes()[:200])))
    add("declared_65535x65535.png", False, lambda p: p.write_bytes(_declared_png(65535, 65535)))
    add("declared_200000x200000.tif", False, lambda p: p.write_bytes(_declared_tiff(200000, 200000)))
    add(
        "display_60000x60000.exr",
        False,
        lambda p: _exr(p, {"R": photo[:4, :4, 0]}, dataWindow=((0, 0), (3, 3)), displayWindow=((0, 0), (59999, 59999))),
    )
    add("random_bytes.png", False, lambda p: p.write_bytes(rng.bytes(5000)))
    add("text.jpg", False, lambda p: p.write_text("not an image\n"))
    add("html.webp", False, lambda p: p.write_text("<html><body>hello</body></html>\n"))
    add("folder.png", False, lambda p: p.mkdir())
    return corpus


def _hashes(folder: Path) -> dict[str, str]:
    """sha256 of every input (as root, unreadable ones included); folders by name only."""
    out = {}
    for p in sorted(folder.iterdir()):
        if p.is_dir():
            out[p.name] = "folder"
        else:
            mode = p.stat().st_mode
            p.chmod(mode | 0o400)
            out[p.name] = f"{sha256_file(p)} {oct(mode)}"
            p.chmod(mode)
    return out


def _listed(path: Path) -> bool:
    """Whether a folder run takes ``path`` (image files by extension; GIF is not among them)."""
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
