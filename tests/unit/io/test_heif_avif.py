"""HEIC/HEIF and AVIF in: photos made by the real encoders (libheif's x265 through pillow-heif,
Pillow's own AVIF through libavif) are read upright with their ICC profile applied for the networks, as JPEG is,
and cut out with their profile, EXIF (orientation 1) and their own decoded values kept."""

from __future__ import annotations

import numpy as np
import pillow_heif
import pytest
from PIL import Image, ImageOps

from mattekit import io as mio
from mattekit.cli import main
from mattekit.io import formats, metadata
from pictures import DISPLAY_P3, PORTRAIT, SRGB_CURVE, camera_exif, rgb_profile


@pytest.fixture
def mirror(shared, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))


def encoded(shared, path, fmt: str, profile: bytes) -> None:
    """The portrait encoded as ``fmt`` (HEIF or AVIF) by the real encoder, stored turned a quarter (EXIF orientation
    6, which pillow-heif writes as the HEIF's own rotation), with a Display P3 profile."""
    stored = Image.open(shared / PORTRAIT).convert("RGB").transpose(Image.Transpose.ROTATE_90)
    stored.save(path, fmt, quality=90, icc_profile=profile, exif=camera_exif(6).tobytes())


@pytest.mark.parametrize("fmt, suffix, brand", [("HEIF", ".heic", b"heic"), ("AVIF", ".avif", b"avif")])
def test_a_phone_photo_is_read_upright_with_its_profile_and_cut_out(shared, mirror, tmp_path, fmt, suffix, brand):
    profile = rgb_profile("Display P3", DISPLAY_P3, SRGB_CURVE)
    src = tmp_path / f"phone{suffix}"
    encoded(shared, src, fmt, profile)
    assert src.read_bytes()[4:12] == b"ftyp" + brand and formats.extension_of(src.read_bytes()[:12]) == suffix
    with Image.open(src) as im:
        own = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))  # the decoder's values, upright
    upright = np.asarray(Image.open(shared / PORTRAIT).convert("RGB"))
    assert own.shape == upright.shape
    picture = mio.read_image(src)
    assert picture.format == fmt and picture.pixels.shape == upright.shape
    assert np.abs(picture.pixels * 255 - own).max() > 10  # converted from Display P3 for the networks
    out = tmp_path / "cut.png"
    assert main(["remove", str(src), "-o", str(out), "--model", "sinet-portrait", "--no-decontaminate"]) == 0
    with Image.open(out) as im:
        im.load()
        assert im.info["icc_profile"] == profile
        exif = im.getexif()
        assert exif.get(0x0112, 1) == 1 and exif[0x010F] == "Testmaker"
        assert exif.get_ifd(metadata.EXIF_IFD)[0x9003] == "2026:11:25 12:00:00"
        rgba = np.asarray(im.convert("RGBA"))
    opaque = rgba[..., 3] == 255
    assert opaque.mean() > 0.2
    np.testing.assert_array_equal(rgba[..., :3][opaque], own[opaque])


def test_info_reads_a_heic_and_a_broken_or_cut_short_avif_is_called_damaged(shared, tmp_path, capsys):
    profile = rgb_profile("Display P3", DISPLAY_P3, SRGB_CURVE)
    encoded(shared, tmp_path / "a.heic", "HEIF", profile)
    (tmp_path / "b.avif").write_bytes((tmp_path / "a.heic").read_bytes()[:200].replace(b"heic", b"avif", 1))
    assert main(["info", str(tmp_path / "a.heic")]) == 0
    assert "HEIF" in capsys.readouterr().out
    broken = tmp_path / "b.avif"
    assert main(["remove", str(broken), "-o", str(tmp_path / "b.png")]) == 2
    assert (
        capsys.readouterr().err.strip() == f"mattekit: error: Cannot read {broken}: the file is damaged or truncated."
    )
    encoded(shared, tmp_path / "c.avif", "AVIF", profile)  # cut short by the real encoder's own file
    (tmp_path / "c.avif").write_bytes((tmp_path / "c.avif").read_bytes()[:600])
    assert main(["remove", str(tmp_path / "c.avif"), "-o", str(tmp_path / "c.png")]) == 2
    assert "the file is damaged or truncated." in capsys.readouterr().err
    video = tmp_path / "clip.heic"  # an MP4 named like a photo: its ftyp brand is no image's
    video.write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(64))
    assert main(["remove", str(video)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"mattekit: error: {video} is not an image mattekit can read "
        "(PNG, JPEG, TIFF, WebP, HEIC/HEIF, AVIF, EXR, DPX)."
    )
    assert not (tmp_path / "b.png").exists() and not (tmp_path / "c.png").exists()
    assert pillow_heif.libheif_info()["decoders"]  # the real libheif decodes
