"""Pictures and their metadata made for the tests: random and smooth float images, ICC profiles built from published
primaries (ICC v2, D50-adapted by Bradford) or a pure gamma, and a camera's EXIF with its personal fields."""

from __future__ import annotations

import struct

import numpy as np
from PIL import Image

from mattekit.io import metadata


def random_image(h=24, w=32, c=3, levels=255, seed=0):
    """h x w x c float32 of random values on ``levels`` + 1 steps in [0,1] (seeded)."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, levels + 1, (h, w, c)) / levels).astype(np.float32)


def smooth_image(h=64, w=96, c=3):
    """h x w x c (c <= 4) float32 ramps and waves in [0,1]: what lossy formats keep close."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    planes = [x / (w - 1), y / (h - 1), 0.5 + 0.4 * np.sin(x / 9) * np.cos(y / 7), 0.2 + 0.8 * x / (w - 1)]
    return np.stack(planes[:c], axis=2)


def gamma_icc_profile(gamma: float) -> bytes:
    """A minimal ICC v2 RGB profile: sRGB primaries (D50-adapted) with a pure gamma curve."""
    s15 = lambda *v: b"".join(struct.pack(">i", round(x * 65536)) for x in v)
    xyz = lambda *v: b"XYZ \0\0\0\0" + s15(*v)
    text = b"linear sRGB test\0"
    tags = {
        b"desc": b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + bytes(4 + 4 + 2 + 1 + 67),
        b"wtpt": xyz(0.9642, 1.0, 0.8249),
        b"rXYZ": xyz(0.4361, 0.2225, 0.0139),
        b"gXYZ": xyz(0.3851, 0.7169, 0.0971),
        b"bXYZ": xyz(0.1431, 0.0606, 0.7141),
        b"rTRC": b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0",
    }
    tags[b"gTRC"] = tags[b"bTRC"] = tags[b"rTRC"]
    offset, table, data = 128 + 4 + 12 * len(tags), b"", b""
    for sig, body in tags.items():
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body + bytes(-len(body) % 4)
    size = offset + len(data)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + bytes(24)
        + struct.pack(">I", 0)
        + s15(0.9642, 1.0, 0.8249)
        + bytes(48)
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


D65, D50 = (0.3127, 0.3290), np.array([0.9642, 1.0, 0.8249])
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
DISPLAY_P3 = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
ADOBE_RGB = ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06))
SRGB_CURVE = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)  # parametric curve type 3 (g, a, b, c, d)
PORTRAIT = "data/grabcut50/im/person1.jpg"


def _xyz(xy) -> np.ndarray:
    x, y = xy
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_profile(name: str, primaries, curve) -> bytes:
    """An ICC v2 display profile (RGB -> XYZ, D50 PCS) of ``primaries`` ((x, y) of R, G, B) with a D65 white:
    ``curve`` a gamma (float, ``curv``) or the sRGB curve's parameters (``para`` type 3)."""
    columns = np.stack([_xyz(p) for p in primaries], axis=1)
    matrix = columns * np.linalg.solve(columns, _xyz(D65))  # RGB -> XYZ under D65
    cone = BRADFORD @ D50 / (BRADFORD @ _xyz(D65))
    adapted = np.linalg.inv(BRADFORD) @ np.diag(cone) @ BRADFORD @ matrix
    s15 = lambda *v: b"".join(struct.pack(">i", round(x * 65536)) for x in v)
    xyz = lambda v: b"XYZ \0\0\0\0" + s15(*v)
    text = name.encode() + b"\0"
    if isinstance(curve, float):
        trc = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(curve * 256)) + b"\0\0"
    else:
        trc = b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + s15(*curve)
    tags = {
        b"desc": b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + bytes(4 + 4 + 2 + 1 + 67),
        b"cprt": b"text\0\0\0\0" + b"no copyright, test profile\0",
        b"wtpt": xyz(D50),
        b"rXYZ": xyz(adapted[:, 0]),
        b"gXYZ": xyz(adapted[:, 1]),
        b"bXYZ": xyz(adapted[:, 2]),
        b"rTRC": trc,
        b"gTRC": trc,
        b"bTRC": trc,
    }
    offset, table, data = 128 + 4 + 12 * len(tags), b"", b""
    for sig, body in tags.items():
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body + bytes(-len(body) % 4)
    header = (
        struct.pack(">I", offset + len(data))
        + b"lcms"
        + struct.pack(">I", 0x02400000)
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2026, 11, 25, 0, 0, 0)
        + b"acsp"
        + bytes(24)
        + struct.pack(">I", 0)
        + s15(*D50)
        + bytes(48)
    )
    return header + struct.pack(">I", len(tags)) + table + data


def camera_exif(orientation: int) -> Image.Exif:
    """EXIF as a camera writes it: make, model, orientation, the date, a body serial, an owner and a GPS position."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Testmaker", "T-1", orientation
    inner = exif.get_ifd(metadata.EXIF_IFD)
    inner[0x9003], inner[0xA431], inner[0xA430] = "2026:11:25 12:00:00", "SN-0042", "Ada Owner"
    gps = exif.get_ifd(metadata.GPS_IFD)
    gps[1], gps[2] = "N", (48.0, 51.0, 24.0)
    return exif
