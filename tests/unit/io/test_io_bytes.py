"""Images read from bytes and file objects: the same Picture as from the file, one sentence when they are bad."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import OpenEXR
import pytest
from PIL import Image

import mattekit
from mattekit import io
from mattekit.errors import InputError
from pictures import gamma_icc_profile, random_image, smooth_image


def _files(folder):
    """One file of each kind the decoders tell apart: {name: path}."""
    made = {}
    eight = (random_image(24, 32, 4) * 255).astype(np.uint8)
    io.write_image(folder / "rgba8.png", eight)
    io.write_image(folder / "rgb16.png", (smooth_image() * 65535).astype(np.uint16), bit_depth=16)
    io.write_image(folder / "rgba16.tif", (smooth_image(c=4) * 65535).astype(np.uint16), bit_depth=16)
    io.write_image(folder / "rgb8.tif", eight[..., :3])
    io.write_image(folder / "half.exr", smooth_image(c=4), bit_depth=16)
    io.write_image(folder / "rgb.webp", eight[..., :3])
    palette = Image.fromarray(eight[..., :3]).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 3
    palette.save(folder / "palette.png", transparency=3)
    linear = Image.fromarray(eight[..., :3])
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the orientation is applied
    linear.save(folder / "icc.jpg", quality=90, icc_profile=gamma_icc_profile(1.0), exif=exif)
    Image.fromarray(eight[..., :3]).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    Image.fromarray(np.zeros((5, 7), np.float32) + 0.25, mode="F").save(folder / "grey.tif")
    made.update({p.name: p for p in folder.iterdir()})
    return made


@pytest.mark.parametrize("integers", [False, True])
def test_bytes_and_file_objects_give_the_files_picture(tmp_path, integers):
    for name, path in _files(tmp_path).items():
        data = path.read_bytes()
        want = io.read_image(path, integers=integers)
        for kind, given in (
            ("bytes", data),
            ("bytearray", bytearray(data)),
            ("memoryview", memoryview(data)),
            ("BytesIO", BytesIO(data)),
            ("open file", path),
        ):
            if kind == "open file":
                with open(given, "rb") as f:
                    got = io.read_image(f, integers=integers)
            else:
                got = io.read_image(given, integers=integers)
            assert got.pixels.dtype == want.pixels.dtype and np.array_equal(got.pixels, want.pixels), (name, kind)
            assert (got.bit_depth, got.has_alpha, got.format, got.mode) == (
                want.bit_depth,
                want.has_alpha,
                want.format,
                want.mode,
            ), (name, kind)
            assert got.source == "the given bytes"
    sixteen = io.read_image((tmp_path / "rgb16.png").read_bytes(), integers=integers)
    assert sixteen.bit_depth == 16 and sixteen.pixels.dtype == (np.uint16 if integers else np.float32)
    rotated = io.read_image((tmp_path / "icc.jpg").read_bytes())
    assert rotated.pixels.shape[:2] == (32, 24), "EXIF orientation applied"
    assert (
        io.read_image(b"\x89PNG" + (tmp_path / "rgba8.png").read_bytes()[4:], name="standard input").source
        == "standard input"
    )


def test_the_colour_profile_is_applied_to_bytes_too(tmp_path):
    values = np.array([[[128, 128, 128], [200, 50, 10]]], np.uint8)  # linear-light data
    buffer = BytesIO()
    Image.fromarray(values).save(buffer, format="PNG", icc_profile=gamma_icc_profile(1.0))
    assert io.read_image(buffer.getvalue()).pixels[0, 0, 0] > 0.7  # untagged it would read 0.5


def test_provenance_from_bytes(tmp_path):
    record = {"task": "remove", "software": "mattekit test"}
    for name in ("a.png", "a.exr", "a.tif"):
        io.write_image(tmp_path / name, random_image(), provenance=record)
        assert io.read_provenance((tmp_path / name).read_bytes()) == io.read_provenance(tmp_path / name)
        assert io.read_provenance(BytesIO((tmp_path / name).read_bytes()))["task"] == "remove"


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".exr", ".tif"])
def test_truncated_and_empty_bytes_are_one_sentence(tmp_path, suffix):
    io.write_image(tmp_path / f"full{suffix}", random_image(96, 128))
    data = (tmp_path / f"full{suffix}").read_bytes()
    with pytest.raises(
        InputError, match=r"^Cannot read the given bytes: (the data|it) is (truncated|damaged)[^\n]*\.$"
    ):
        io.read_image(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"^Cannot read standard input: (the data|it) is (truncated|damaged)"):
        io.read_image(BytesIO(data[: len(data) // 2]), name="standard input")
    with pytest.raises(InputError, match=r"^Cannot read the given bytes: the data is empty\.$"):
        io.read_image(b"")
    with pytest.raises(InputError, match=r"^Cannot read the given bytes: the data is not an image mattekit can read"):
        io.read_image(b"hello, this is text and no picture")


def test_declared_sizes_in_bytes_are_checked_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MAX_PIXELS", "1000")
    io.write_image(tmp_path / "big.png", np.zeros((40, 30, 3), np.float32))
    with pytest.raises(InputError, match=r"^Cannot read the given bytes: it declares 30x40 pixels"):
        io.read_image((tmp_path / "big.png").read_bytes())
    header = {
        "compression": OpenEXR.ZIP_COMPRESSION,
        "type": OpenEXR.scanlineimage,
        "dataWindow": ((0, 0), (3, 3)),
        "displayWindow": ((0, 0), (59999, 59999)),
    }
    OpenEXR.File(header, {"R": np.ones((4, 4), np.float32)}).write(str(tmp_path / "wide.exr"))
    monkeypatch.delenv("MATTEKIT_MAX_PIXELS")
    with pytest.raises(InputError, match=r"declares 60000x60000 pixels"):
        io.read_image((tmp_path / "wide.exr").read_bytes())


def test_the_api_takes_bytes_and_file_objects_for_every_input(tmp_path):
    image = smooth_image(48, 64, 3)
    trimap = np.full((48, 64), 0.5, np.float32)
    trimap[:, :16], trimap[:, 48:] = 0.0, 1.0
    io.write_image(tmp_path / "image.png", image)
    io.write_image(tmp_path / "trimap.png", trimap[..., None])
    want = mattekit.matte((tmp_path / "image.png").read_bytes(), trimap=tmp_path / "trimap.png", result="alpha")
    assert want.startswith(b"\x89PNG")
    for given in (
        (tmp_path / "trimap.png").read_bytes(),
        str(tmp_path / "trimap.png"),
        BytesIO((tmp_path / "trimap.png").read_bytes()),
    ):
        got = mattekit.matte(BytesIO((tmp_path / "image.png").read_bytes()), trimap=given, result="alpha")
        assert got == want
    with pytest.raises(InputError, match=r"^Cannot read the given bytes: the data is empty\.$"):
        mattekit.matte(b"", trimap=tmp_path / "trimap.png")
