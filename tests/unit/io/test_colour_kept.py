"""Colour and metadata kept: a Display P3 JPEG and an Adobe RGB TIFF cut out keep their ICC
profile, their own pixel values where the cut-out is opaque, their dpi and EXIF (orientation 1 once applied) and
XMP, without GPS, owner and serial numbers unless ``--keep-personal``; ``--no-provenance`` means no provenance record
(every personal field and form: tests/unit/io/test_privacy.py).

The profiles are built here from the published primaries and white points (ICC v2, D50-adapted by Bradford)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from mattekit import io as mio
from mattekit.cli import main
from mattekit.io import metadata
from pictures import ADOBE_RGB, DISPLAY_P3, PORTRAIT, SRGB_CURVE, camera_exif, rgb_profile

XMP = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
    '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
    'xmlns:exif="http://ns.adobe.com/exif/1.0/" tiff:Orientation="6" exif:GPSLatitude="48,51.4N">'
    '<dc:title><rdf:Alt><rdf:li xml:lang="x-default">Test portrait</rdf:li></rdf:Alt></dc:title>'
    '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
).encode()


def photo(shared, path, profile: bytes, fmt: str) -> np.ndarray:
    """The portrait stored as ``fmt`` at ``path``, its pixels taken as values in ``profile``'s space (the saturated
    colours P3 and Adobe RGB hold beyond sRGB, a red and a green square, added), rotated for EXIF orientation 6,
    300 dpi, camera EXIF and XMP. Returns its pixels as they look upright (H x W x 3 uint8)."""
    upright = np.asarray(Image.open(shared / PORTRAIT).convert("RGB")).copy()
    upright[10:40, 10:40] = (250, 5, 5)
    upright[10:40, 50:80] = (5, 250, 5)
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # orientation 6 turns it back
    exif = camera_exif(6)
    if fmt == "TIFF":  # a TIFF's XMP is a tag of its directory, which Pillow writes from the EXIF given
        exif[700] = XMP
    options = dict(icc_profile=profile, dpi=(300, 300), exif=exif.tobytes())
    options |= {"quality": 100, "subsampling": 0, "xmp": XMP} if fmt == "JPEG" else {}
    stored.save(path, fmt, **options)
    return np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))


@pytest.fixture
def mirror(shared, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))


@pytest.mark.parametrize(
    "kind, suffix, fmt, output, flags",
    [
        ("Display P3", ".jpg", "JPEG", ".png", ["--no-decontaminate"]),
        ("Display P3", ".jpg", "JPEG", ".webp", []),
        ("Adobe RGB", ".tif", "TIFF", ".tif", ["--no-decontaminate"]),
        ("Adobe RGB", ".tif", "TIFF", ".png", []),
    ],
)
def test_a_cut_out_keeps_the_profile_pixels_dpi_exif_and_xmp(
    shared, mirror, tmp_path, kind, suffix, fmt, output, flags
):
    """Opaque pixels are the source's own values; with decontamination (the default) a pixel whose alpha rounds to
    255 from just below may have its colour made by the task (converted back from sRGB): a few, by a level or two."""
    profile = rgb_profile(kind, *((DISPLAY_P3, SRGB_CURVE) if kind == "Display P3" else (ADOBE_RGB, 563 / 256)))
    src = tmp_path / f"photo{suffix}"
    own = photo(shared, src, profile, fmt)
    network = mio.read_image(src).pixels
    assert (
        np.abs(network * 255 - own).max() > 20
    )  # the networks see converted sRGB: the P3/Adobe red is not (250, 5, 5)
    out = tmp_path / f"cut{output}"
    assert main(["remove", str(src), "-o", str(out), "--model", "sinet-portrait", *flags]) == 0
    with Image.open(out) as im:
        im.load()
        assert im.info["icc_profile"] == profile
        assert output == ".webp" or tuple(round(d) for d in im.info["dpi"]) == (300, 300)
        exif = im.getexif()
        assert exif[0x0112] == 1 and exif[0x010F] == "Testmaker"
        assert exif.get_ifd(metadata.EXIF_IFD)[0x9003] == "2026:11:25 12:00:00"
        assert 0xA431 not in exif.get_ifd(metadata.EXIF_IFD) and metadata.GPS_IFD not in exif  # personal: left out
        xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp") or im.tag_v2[700]
        xmp = xmp if isinstance(xmp, str) else xmp.decode()
        assert "Test portrait" in xmp and "mattekit:Record" in xmp
        assert 'tiff:Orientation="6"' not in xmp  # reset to 1 (a TIFF's Pillow drops it when it turns the pixels)
        rgba = np.asarray(im.convert("RGBA"))
    assert mio.read_provenance(out)["task"] == "remove"
    opaque = rgba[..., 3] == 255
    assert opaque.mean() > 0.2
    difference = np.abs(rgba[..., :3][opaque].astype(int) - own[opaque])
    if output == ".webp":  # lossy: near the source's own values, not the sRGB ones
        assert difference.mean() < 2
    elif flags:
        np.testing.assert_array_equal(rgba[..., :3][opaque], own[opaque])
    else:
        assert (difference > 0).any(axis=1).mean() < 1e-4 and difference.max() <= 2


def test_personal_metadata_is_left_out_by_default_and_the_rest_kept(shared, mirror, tmp_path):
    profile = rgb_profile("Display P3", DISPLAY_P3, SRGB_CURVE)
    src = tmp_path / "photo.jpg"
    photo(shared, src, profile, "JPEG")
    out = tmp_path / "cut.jpg"
    assert (
        main(
            [
                "remove",
                str(src),
                "-o",
                str(out),
                "--model",
                "sinet-portrait",
                "--background",
                "white",
                "--no-provenance",
            ]
        )
        == 0
    )
    with Image.open(out) as im:
        exif, xmp = im.getexif(), im.info["xmp"].decode()
        assert im.info["icc_profile"] == profile and im.info["dpi"] == (300, 300)
    assert exif[0x010F] == "Testmaker" and exif[0x0112] == 1 and metadata.GPS_IFD not in exif
    inner = exif.get_ifd(metadata.EXIF_IFD)
    assert inner[0x9003] == "2026:11:25 12:00:00" and 0xA431 not in inner and 0xA430 not in inner
    assert "Test portrait" in xmp and "GPS" not in xmp
    assert mio.read_provenance(out) is None  # --no-provenance


def test_the_python_api_keeps_personal_metadata_and_provenance_as_the_cli_does(shared, mirror, tmp_path):
    import mattekit

    src = tmp_path / "photo.jpg"
    photo(shared, src, rgb_profile("Display P3", DISPLAY_P3, SRGB_CURVE), "JPEG")
    kept = mattekit.remove_background(src, output=tmp_path / "kept.png", model="sinet-portrait", keep_personal=True)
    stripped = mattekit.remove_background(
        src, output=tmp_path / "stripped.png", model="sinet-portrait", provenance=False
    )
    with Image.open(kept) as a, Image.open(stripped) as b:
        assert metadata.GPS_IFD in a.getexif() and metadata.GPS_IFD not in b.getexif()
        assert a.getexif().get_ifd(metadata.EXIF_IFD)[0xA431] == "SN-0042"
        assert 0xA431 not in b.getexif().get_ifd(metadata.EXIF_IFD) and b.getexif()[0x010F] == "Testmaker"
        assert a.info["icc_profile"] == b.info["icc_profile"]
    assert mio.read_provenance(kept)["task"] == "remove" and mio.read_provenance(stripped) is None


def test_a_16_bit_tiff_keeps_its_profile_and_values(shared, mirror, tmp_path, capsys):
    """16-bit colour is not converted for the networks (littleCMS through Pillow is 8-bit): the output's values are
    the source's and its profile says what they mean."""
    profile = rgb_profile("Adobe RGB", ADOBE_RGB, 563 / 256)
    upright = np.asarray(Image.open(shared / PORTRAIT).convert("RGB")).astype(np.uint16) * 257
    src, out = tmp_path / "deep.tif", tmp_path / "deep_cut.tif"
    mio.write_image(src, upright, bit_depth=16, metadata=metadata.Metadata(icc=profile, dpi=(240.0, 240.0)))
    assert main(["remove", str(src), "-o", str(out), "--model", "sinet-portrait", "--no-decontaminate"]) == 0
    assert "the colour profile of a 16-bit or float image is not applied" in capsys.readouterr().err
    with Image.open(out) as im:
        assert im.info["icc_profile"] == profile and im.info["dpi"] == (240.0, 240.0)
    cut = mio.read_image(out, integers=True).pixels
    opaque = cut[..., 3] == 65535
    np.testing.assert_array_equal(cut[..., :3][opaque], upright[opaque])


def test_the_built_profiles_are_what_colour_management_expects():
    """The test profiles mean what they say: sRGB's own red is inside P3 and Adobe RGB, P3's green is outside sRGB."""
    srgb = ImageCms.createProfile("sRGB")
    for primaries, curve in ((DISPLAY_P3, SRGB_CURVE), (ADOBE_RGB, 563 / 256)):
        profile = ImageCms.ImageCmsProfile(io.BytesIO(rgb_profile("test", primaries, curve)))
        to_srgb = ImageCms.buildTransform(profile, srgb, "RGB", "RGB", ImageCms.Intent.RELATIVE_COLORIMETRIC)
        grey, green = (
            np.asarray(ImageCms.applyTransform(Image.new("RGB", (2, 1), (128, 128, 128)), to_srgb))[0, 0],
            np.asarray(ImageCms.applyTransform(Image.new("RGB", (1, 1), (0, 255, 0)), to_srgb))[0, 0],
        )
        assert np.abs(grey.astype(int) - 128).max() <= 2  # the same white and about the same curve
        assert green[0] == 0 and green[2] < 60  # a green beyond sRGB clips there
