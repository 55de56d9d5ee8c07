"""Files made to trip the readers (issue 81): each is one sentence and exit 2, with nothing else on the terminal,
and reading leaves Pillow's process-wide bomb guard as the host program set it."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pillow_heif
from PIL import Image

from mattekit.cli import main

QUICK = ["--no-white-balance", "--no-contrast", "--no-denoise"]  # enhance without a model: the reading alone


def test_reading_leaves_pillows_bomb_guard_as_the_host_set_it(tmp_path):
    """``import mattekit`` once set Image.MAX_IMAGE_PIXELS = None for the whole process; now a host's own limit
    stays (Pillow's default, or the host's value) while mattekit reads a picture over it by its own budget."""
    Image.fromarray(np.zeros((300, 200, 3), np.uint8)).save(tmp_path / "p.png")
    script = textwrap.dedent(f"""
        from PIL import Image
        default = Image.MAX_IMAGE_PIXELS
        import mattekit, mattekit.io
        assert Image.MAX_IMAGE_PIXELS == default, Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = 1000  # a host's own guard: the picture is 60 times over it
        assert mattekit.io.read_image({str(tmp_path / "p.png")!r}).pixels.shape == (300, 200, 3)
        assert Image.MAX_IMAGE_PIXELS == 1000
        try:
            Image.open({str(tmp_path / "p.png")!r})
        except Image.DecompressionBombError:
            print("guarded")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "guarded"  # the host's Image.open still refuses it


def heic_declaring(path, width: int, height: int) -> None:
    """A real 64x64 HEIC whose image spatial extents (``ispe``) declare ``width`` x ``height``."""
    pillow_heif.register_heif_opener()  # (its encoder too)
    buffer = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(buffer, "HEIF", quality=50)
    data = bytearray(buffer.getvalue())
    at = data.find(b"ispe")
    assert at > 0
    while at >= 0:
        struct.pack_into(">II", data, at + 8, width, height)
        at = data.find(b"ispe", at + 4)
    path.write_bytes(bytes(data))


def test_a_heic_over_libheifs_limit_is_one_sentence(tmp_path, monkeypatch, capfd):
    """Issue 81: a HEIC declaring 60000x60000 gave "Internal error (RuntimeError ...)" once the pixel budget let it
    through; libheif's own limit is now said as such."""
    assert pillow_heif.libheif_info()["decoders"]
    heic_declaring(tmp_path / "big.heic", 60000, 60000)
    monkeypatch.setenv("MATTEKIT_MAX_PIXELS", str(60000 * 60000))
    assert main(["enhance", str(tmp_path / "big.heic"), "-o", str(tmp_path / "big.png"), *QUICK]) == 2
    out, err = capfd.readouterr()
    assert err == (
        f"mattekit: error: Cannot read {tmp_path / 'big.heic'}: the file declares more pixels than libheif "
        f"decodes (its security limit: 1,073,741,824 pixels).\n"
    )
    assert not (tmp_path / "big.png").exists()


def test_a_16_bit_png_cut_before_its_end_is_one_sentence_and_nothing_else(tmp_path, capfd):
    """Issue 81: a 16-bit PNG whose last chunk is cut off passed Pillow's read and made libpng (OpenCV's reader)
    print "libpng error: PNG input buffer is incomplete" on stderr before mattekit's sentence; a bad CRC too."""
    import cv2

    whole = tmp_path / "whole.png"
    cv2.imwrite(str(whole), (np.random.default_rng(1).random((64, 64, 3)) * 65535).astype(np.uint16))
    data = whole.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:-12])
    crc = bytearray(data)
    crc[-13] ^= 0xFF  # the CRC of the last chunk before IEND
    (tmp_path / "crc.png").write_bytes(bytes(crc))
    for name in ("cut.png", "crc.png"):
        assert main(["enhance", str(tmp_path / name), "-o", str(tmp_path / f"out-{name}"), *QUICK]) == 2
        out, err = capfd.readouterr()
        assert err == f"mattekit: error: Cannot read {tmp_path / name}: the file is damaged or truncated.\n", name
    assert main(["enhance", str(whole), "-o", str(tmp_path / "out.png"), *QUICK]) == 0
