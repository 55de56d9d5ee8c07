"""Image reading and writing: formats, bit depths, colour handling, orientation, streamed writing, integers kept."""

from __future__ import annotations

import numpy as np
import cv2
import OpenEXR
import pytest
from PIL import Image, ImageOps

from mattekit.errors import OutputError
from mattekit.io import linear_to_srgb, read_image, srgb_to_linear, write_image
from mattekit import io
from mattekit.io import png
from mattekit.io.photo import _orient
from pictures import gamma_icc_profile, random_image, smooth_image


def test_srgb_transfer():
    x = np.linspace(-0.5, 1.5, 4001, dtype=np.float32)
    assert np.abs(linear_to_srgb(srgb_to_linear(x)) - x).max() < 1e-5
    assert srgb_to_linear(np.float32(0.5)) == pytest.approx(0.2140411, abs=1e-6)
    assert linear_to_srgb(np.float32(0.0031308)) == pytest.approx(0.0404500, abs=1e-6)
    assert srgb_to_linear(np.float32(1.0)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("channels", [3, 4])
def test_png_8bit_round_trip(tmp_path, channels):
    px = random_image(c=channels)
    write_image(tmp_path / "a.png", px)
    pic = read_image(tmp_path / "a.png")
    assert (pic.bit_depth, pic.has_alpha, pic.format) == (8, channels == 4, "PNG")
    assert pic.pixels.dtype == np.float32 and pic.pixels.shape == px.shape
    assert np.array_equal(pic.pixels, px)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_round_trip_keeps_precision(tmp_path, suffix, channels):
    px = random_image(c=channels, levels=65535)
    write_image(tmp_path / f"a{suffix}", px, bit_depth=16)
    pic = read_image(tmp_path / f"a{suffix}")
    assert (pic.bit_depth, pic.has_alpha) == (16, channels == 4)
    assert np.abs(pic.pixels - px).max() < 1e-6  # 8 bits would be off by up to 1/510
    assert len(np.unique(np.round(pic.pixels * 65535))) > 256


def test_tiff_8bit_rgba_is_straight_alpha(tmp_path):
    px = random_image(c=4)
    write_image(tmp_path / "a.tiff", px)
    with Image.open(tmp_path / "a.tiff") as im:
        assert im.mode == "RGBA"  # ExtraSamples = unassociated alpha
    assert np.array_equal(read_image(tmp_path / "a.tiff").pixels, px)


@pytest.mark.parametrize("channels", [3, 4])
def test_webp_round_trip(tmp_path, channels):
    px = smooth_image(c=channels)
    write_image(tmp_path / "a.webp", px)
    pic = read_image(tmp_path / "a.webp")
    assert (pic.format, pic.has_alpha) == ("WEBP", channels == 4)
    assert np.abs(pic.pixels - px).mean() < 0.01


def test_jpeg_round_trip_and_refusals(tmp_path):
    px = smooth_image()
    write_image(tmp_path / "a.jpg", px)
    assert np.abs(read_image(tmp_path / "a.jpg").pixels - px).mean() < 0.01
    opaque = np.concatenate([px, np.ones_like(px[..., :1])], axis=2)
    write_image(tmp_path / "b.jpg", opaque)  # nothing to lose
    with pytest.raises(OutputError, match="transparency"):
        write_image(tmp_path / "c.jpg", smooth_image(c=4))
    with pytest.raises(OutputError, match="16-bit"):
        write_image(tmp_path / "d.jpg", px, bit_depth=16)
    with pytest.raises(OutputError, match="PNG, JPEG"):
        write_image(tmp_path / "e.gif", px)
    assert not (tmp_path / "c.jpg").exists() and not (tmp_path / "d.jpg").exists()


@pytest.mark.parametrize("full_float", [False, True])
def test_exr_round_trip_premultiplied_linear(tmp_path, full_float):
    px = smooth_image(c=4)
    write_image(tmp_path / "a.exr", px, bit_depth=32 if full_float else 16)
    raw = OpenEXR.File(str(tmp_path / "a.exr"), separate_channels=True).channels()
    assert raw["R"].type() == (OpenEXR.FLOAT if full_float else OpenEXR.HALF)
    stored = np.stack([raw[n].pixels for n in "RGBA"], axis=2).astype(np.float32)
    expected = np.concatenate([srgb_to_linear(px[..., :3]) * px[..., 3:], px[..., 3:]], axis=2)
    assert np.abs(stored - expected).max() < (1e-6 if full_float else 1e-3)
    pic = read_image(tmp_path / "a.exr")
    assert (pic.bit_depth, pic.has_alpha, pic.format) == (32, True, "EXR")
    visible = px[..., 3] > 0.25
    assert np.abs(pic.pixels - px)[visible].max() < (1e-5 if full_float else 4e-3)


def test_exr_mask_is_an_untouched_alpha_channel(tmp_path):
    mask = smooth_image(c=1)[..., 0]
    write_image(tmp_path / "m.exr", mask)
    raw = OpenEXR.File(str(tmp_path / "m.exr"), separate_channels=True).channels()
    assert list(raw) == ["A"]
    pic = read_image(tmp_path / "m.exr")
    assert pic.pixels.shape == mask.shape + (3,) and not pic.has_alpha
    assert np.abs(pic.pixels[..., 1] - mask).max() < 1e-3


def test_exr_bright_values_and_data_window(tmp_path):
    r = np.array([[4.0, 0.5, -1.0]], np.float32)
    header = {
        "dataWindow": (np.array([1, 1], np.int32), np.array([3, 1], np.int32)),
        "displayWindow": (np.array([0, 0], np.int32), np.array([4, 2], np.int32)),
    }
    OpenEXR.File(header, {"R": r, "G": r, "B": r}).write(str(tmp_path / "hdr.exr"))
    pic = read_image(tmp_path / "hdr.exr")
    assert pic.pixels.shape == (3, 5, 3)
    assert np.allclose(pic.pixels[1, 1:4, 0], [1.0, linear_to_srgb(np.float32(0.5)), 0.0], atol=1e-6)
    assert pic.pixels[0].max() == 0 and pic.pixels[:, 0].max() == 0


def test_grey_and_16bit_grey_inputs(tmp_path):
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    Image.fromarray(grey).save(tmp_path / "g.png")
    pic = read_image(tmp_path / "g.png")
    assert pic.pixels.shape == (6, 8, 3) and not pic.has_alpha and pic.mode == "L"
    assert np.array_equal(pic.pixels[..., 2] * 255, grey.astype(np.float32))
    deep = np.arange(48, dtype=np.uint16).reshape(6, 8) * 1361
    Image.fromarray(deep).save(tmp_path / "g16.png")
    pic = read_image(tmp_path / "g16.png")
    assert pic.bit_depth == 16 and np.abs(pic.pixels[..., 0] * 65535 - deep).max() < 0.01


def test_masks_write_as_grey(tmp_path):
    mask = random_image(c=1)
    write_image(tmp_path / "m.png", mask[..., 0])
    write_image(tmp_path / "m16.png", mask, bit_depth=16)
    with Image.open(tmp_path / "m.png") as a, Image.open(tmp_path / "m16.png") as b:
        assert (a.mode, b.mode) == ("L", "I;16")
    assert np.array_equal(read_image(tmp_path / "m.png").pixels[..., 0], mask[..., 0])


def test_palette_with_transparency(tmp_path):
    im = Image.new("P", (4, 2))
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.putdata([0, 1, 0, 1, 1, 1, 0, 0])
    im.save(tmp_path / "p.png", transparency=1)
    pic = read_image(tmp_path / "p.png")
    assert pic.has_alpha and pic.mode == "P"
    assert np.array_equal(pic.pixels[0, :, 3], [1, 0, 1, 0])
    assert np.array_equal(pic.pixels[0, 0], [1, 0, 0, 1])


def test_cmyk_and_la_inputs(tmp_path):
    Image.new("CMYK", (3, 2), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)
    Image.new("CMYK", (3, 2), (255, 0, 255, 0)).save(tmp_path / "c.tif")
    assert np.allclose(read_image(tmp_path / "c.jpg").pixels, [1, 0, 0], atol=0.02)
    pic = read_image(tmp_path / "c.tif")
    assert pic.mode == "CMYK" and np.allclose(pic.pixels, [0, 1, 0])
    Image.new("LA", (3, 2), (200, 100)).save(tmp_path / "la.png")
    pic = read_image(tmp_path / "la.png")
    assert pic.has_alpha and np.allclose(pic.pixels * 255, [200, 200, 200, 100])


def test_exif_orientation(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed after a quarter turn clockwise
    Image.fromarray(stored).save(tmp_path / "o.jpg", exif=exif.tobytes(), quality=95)
    pic = read_image(tmp_path / "o.jpg")
    assert pic.pixels.shape == (40, 20, 3)
    assert np.allclose(pic.pixels[5, 10], [1, 0, 0], atol=0.05)  # the left half is now on top
    assert np.allclose(pic.pixels[35, 10], [0, 0, 1], atol=0.05)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow(orientation):
    array = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3)
    im = Image.fromarray(array)
    im.getexif()[0x0112] = orientation
    assert np.array_equal(_orient(array, orientation), np.asarray(ImageOps.exif_transpose(im)))


def test_icc_profile_is_converted_to_srgb(tmp_path):
    values = np.array([[[128, 128, 128], [200, 50, 10]]], np.uint8)  # linear-light data
    Image.fromarray(values).save(tmp_path / "linear.png", icc_profile=gamma_icc_profile(1.0))
    pic = read_image(tmp_path / "linear.png")
    expected = linear_to_srgb(values / np.float32(255))
    assert np.abs(pic.pixels - expected).max() < 3 / 255
    assert pic.pixels[0, 0, 0] > 0.7  # untagged it would read 0.5


def test_real_photo(shared):
    folder = shared / "data" / "grabcut50" / "im"
    photo = sorted(folder.iterdir())[0]
    pic = read_image(photo)
    assert pic.pixels.dtype == np.float32 and pic.pixels.ndim == 3 and pic.pixels.shape[2] == 3
    assert 0 <= pic.pixels.min() and pic.pixels.max() <= 1 and pic.pixels.std() > 0.05
    assert (pic.bit_depth, pic.source, pic.has_alpha) == (8, str(photo), False)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG", "TIFF"])
def test_multi_frame_files_warn_that_only_the_first_frame_is_used(tmp_path, fmt):
    frames = [Image.new("RGB", (8, 6), (60 * k, 0, 0)) for k in (1, 2, 3)]
    path = tmp_path / f"anim.{fmt.lower()}"
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:])
    with pytest.warns(UserWarning, match="has 3 frames .* only the first is used"):
        picture = io.read_image(path)
    assert abs(picture.pixels[0, 0, 0] - 60 / 255) < 0.02


# ----------------------------------------------------------------------------------- streamed writing


@pytest.mark.parametrize(
    "dtype, channels", [(np.uint8, 1), (np.uint8, 3), (np.uint8, 4), (np.uint16, 3), (np.uint16, 4), (np.float32, 4)]
)
def test_png_is_written_in_strips_with_the_same_pixels(tmp_path, monkeypatch, dtype, channels):
    """Strips of a few rows (so many IDAT chunks): OpenCV and Pillow read back exactly the values given
    (integers as they are, floats rounded half to even), and the XMP record is there."""
    monkeypatch.setattr(png, "STRIP_BYTES", 700)
    rng = np.random.default_rng(channels)
    shape = (37, 53, channels)
    if dtype == np.float32:
        px = rng.random(shape).astype(np.float32)
        px[0, 0] = np.nan
        want = np.rint(np.clip(np.nan_to_num(px), 0, 1) * np.float32(255)).astype(np.uint8)
    else:
        px = rng.integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)
        want = px
    path = tmp_path / "a.png"
    write_image(path, px, bit_depth=16 if dtype == np.uint16 else 8, provenance={"software": "test"})
    back = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    back = back[..., None] if back.ndim == 2 else back[..., [2, 1, 0, 3][:channels]]
    assert back.dtype == want.dtype and np.array_equal(back, want)
    if dtype == np.uint8:
        assert np.array_equal(np.asarray(Image.open(path)).reshape(shape), want)
    assert io.read_provenance(path)["software"] == "test"


@pytest.mark.parametrize("cores", [1, 2, 64])
def test_writing_floats_makes_no_full_size_float_copy(cores, tmp_path, monkeypatch):
    """The float -> integer conversion works in strips and PNG is compressed strip by strip: on top of the integer
    copy the write holds at most a few strips per thread (threads capped at PNG_THREADS), whatever the machine's
    cores (emulated: a CI machine with more cores than this one once failed a fixed bound), and that bound is well
    below the float image's size, so a full-size float temporary fails the test."""
    import tracemalloc

    from mattekit.io import png

    monkeypatch.setattr(png, "cpu_count", lambda: cores)
    px = np.random.default_rng(0).random((2400, 3200, 4), dtype=np.float32)  # random: strips do not compress
    ints_bytes = px.size  # the 8-bit copy the write must make
    threads = min(cores, png.PNG_THREADS)
    bound = ints_bytes + (threads + 1) * 2.5 * png.STRIP_BYTES  # per strip: its scanlines and compressed bytes
    assert bound < 0.75 * px.nbytes
    tracemalloc.start()
    try:
        write_image(tmp_path / "a.png", px)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < bound
    assert np.array_equal(
        cv2.imread(str(tmp_path / "a.png"), cv2.IMREAD_UNCHANGED)[..., [2, 1, 0, 3]],
        np.rint(px * np.float32(255)).astype(np.uint8),
    )


def test_read_integers_keeps_the_stored_values(tmp_path):
    eight = (np.random.default_rng(1).integers(0, 256, (20, 30, 4))).astype(np.uint8)
    sixteen = (np.random.default_rng(2).integers(0, 65536, (20, 30, 3))).astype(np.uint16)
    write_image(tmp_path / "a.png", eight)
    write_image(tmp_path / "b.png", sixteen, bit_depth=16)
    write_image(tmp_path / "c.exr", smooth_image(c=3), bit_depth=32)
    a, b = read_image(tmp_path / "a.png", integers=True), read_image(tmp_path / "b.png", integers=True)
    assert a.pixels.dtype == np.uint8 and np.array_equal(a.pixels, eight) and a.bit_depth == 8
    assert b.pixels.dtype == np.uint16 and np.array_equal(b.pixels, sixteen) and b.bit_depth == 16
    assert np.array_equal(read_image(tmp_path / "a.png").pixels, eight.astype(np.float32) / 255)
    assert read_image(tmp_path / "c.exr", integers=True).pixels.dtype == np.float32


def test_exr_files_carry_no_time_of_writing(tmp_path):
    """Same input, same bytes: OpenImageIO stamps an EXR with the time it was written (capDate) unless told not to;
    write_image and write_layers tell it, so rewriting a frame later (a resumed or split roto run) gives the same
    file."""
    from mattekit.io import write_layers

    px = smooth_image(c=4)
    write_image(tmp_path / "a.exr", px)
    write_layers(tmp_path / "l.exr", px[..., :3], px[..., :3], px[..., 3], half=True, colorspace=None)
    for name in ("a.exr", "l.exr"):
        header = OpenEXR.File(str(tmp_path / name)).header()
        assert "capDate" not in header, (name, header.get("capDate"))
