"""Studio plates and photos: every plate format read from files OpenImageIO wrote itself, colour managed with
OpenColorIO (its config, colour spaces and views), and EXR photos read in the colour space their header names.
Mattes and round trips through roto: test_studio_mattes.py."""

from __future__ import annotations

import re

import numpy as np
import OpenImageIO as oiio
import PyOpenColorIO as ocio
import pytest

from mattekit import cli
from mattekit.io import colour
from mattekit.errors import InputError
from mattekit.io import read_image
from mattekit.io.picture import Layout
from mattekit.io.read import read_layout, read_plate
from mattekit.io.frame_patterns import IMAGE_SUFFIXES

from studio_plates import MODEL, convert, frames, oiio_write


# ----------------------------------------------------------------------------------- reading

RAMP = np.linspace(0, 1, 12 * 16 * 3, dtype=np.float32).reshape(12, 16, 3)


@pytest.mark.parametrize("suffix", IMAGE_SUFFIXES)
def test_every_plate_suffix_is_read(tmp_path, suffix):
    """Each suffix a sequence pattern accepts is read from a file OIIO wrote (8-bit where the format allows only that)."""
    path = tmp_path / f"p.0001{suffix}"
    oiio_write(path, [(RAMP, ["R", "G", "B"])], "half" if suffix == ".exr" else "uint8")
    picture = read_plate(path)
    assert picture.pixels.shape == (12, 16, 3) and picture.scene.shape == (12, 16, 3)
    tolerance = 0.08 if suffix in (".jpg", ".jpeg", ".webp") else 0.5 / 255 + 1e-6  # lossy formats; 8-bit steps
    assert np.abs(picture.scene - RAMP).max() <= tolerance


def test_float_exr_keeps_values_above_one_and_reads_its_chromaticities(tmp_path):
    values = np.concatenate([RAMP * 50, np.ones((12, 16, 1), np.float32)], axis=2)
    values[0, 0, 3] = 0.5  # premultiplied in the file: read back straight
    stored = values.copy()
    stored[..., :3] *= stored[..., 3:]
    ap1 = (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767)
    oiio_write(tmp_path / "p.exr", [(stored, ["R", "G", "B", "A"])], chromaticities=(oiio.TypeDesc("float[8]"), ap1))
    picture = read_plate(tmp_path / "p.exr")
    assert picture.colorspace == "ACEScg" and picture.bit_depth == 32 and picture.has_alpha
    np.testing.assert_allclose(picture.scene, values, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(picture.pixels[..., :3], colour.to_network(values[..., :3], "ACEScg"), atol=1e-6)
    assert picture.pixels.max() <= 1.0


def test_dpx_10_bit(tmp_path):
    oiio_write(tmp_path / "p.dpx", [(RAMP, ["R", "G", "B"])], "uint16", oiio_BitsPerSample=10)
    picture = read_plate(tmp_path / "p.dpx", "ACEScct")
    assert picture.format == "DPX" and picture.mode == "DPX RGB 10-bit" and picture.colorspace == "ACEScct"
    assert np.abs(picture.scene - RAMP).max() <= 1 / 1023
    assert read_image(tmp_path / "p.dpx").pixels.shape == (12, 16, 3)  # the image commands read DPX too
    assert cli.main(["info", str(tmp_path / "p.dpx")]) == 0
    assert read_layout(tmp_path / "p.dpx") == Layout("DPX", 16, 12, 16, "DPX RGB 10-bit")  # the header alone


def test_dpx_transfer_names_its_colour_space_or_warns(tmp_path):
    """OIIO's oiio:ColorSpace from a DPX header: linear is known; Kodak log is not in the config, so a warning says
    the plate is read as sRGB instead."""
    oiio_write(tmp_path / "lin.dpx", [(RAMP, ["R", "G", "B"])], "uint16", dpx_Transfer="Linear")
    oiio_write(tmp_path / "log.dpx", [(RAMP, ["R", "G", "B"])], "uint16", dpx_Transfer="Logarithmic")
    assert read_plate(tmp_path / "lin.dpx").colorspace == colour.LINEAR_SRGB
    with pytest.warns(UserWarning, match="'KodakLog', which the OCIO config"):
        assert read_plate(tmp_path / "log.dpx").colorspace == colour.NETWORK_SPACE


def test_tiff_16_bit_is_srgb_and_float_tiff_linear(tmp_path):
    oiio_write(tmp_path / "p16.tif", [(RAMP, ["R", "G", "B"])], "uint16")
    oiio_write(tmp_path / "pf.tif", [(RAMP * 4, ["R", "G", "B"])], "float")
    deep, real = read_plate(tmp_path / "p16.tif"), read_plate(tmp_path / "pf.tif")
    assert deep.colorspace == colour.NETWORK_SPACE and deep.bit_depth == 16
    assert np.abs(deep.scene - RAMP).max() <= 0.5 / 65535 + 1e-7
    assert real.colorspace == colour.LINEAR_SRGB and real.scene.max() == pytest.approx(4.0)


def test_multi_part_and_layered_exr_give_the_colour_layer(tmp_path):
    depth = np.full((12, 16, 1), 7.0, np.float32)
    rgba = np.concatenate([RAMP * 3, np.ones((12, 16, 1), np.float32)], axis=2)
    oiio_write(tmp_path / "parts.exr", [(depth, ["Z"]), (rgba, ["R", "G", "B", "A"])])
    layered = np.concatenate([depth, rgba], axis=2)
    oiio_write(tmp_path / "layers.exr", [(layered, ["Z", "beauty.R", "beauty.G", "beauty.B", "beauty.A"])])
    for name, mode in (("parts.exr", "EXR RGBA float"), ("layers.exr", "EXR beauty.RGBA float")):
        picture = read_plate(tmp_path / name)
        assert picture.mode == mode
        np.testing.assert_allclose(picture.scene, rgba, atol=1e-6)


def test_exr_data_window_is_placed_in_its_display_window(tmp_path):
    """A data window inside the display window is padded with zeros; overscan outside it is cut away."""
    spec = oiio.ImageSpec(4, 3, 3, "float")
    spec.x, spec.y, spec.full_x, spec.full_y, spec.full_width, spec.full_height = 2, 1, 0, 0, 8, 6
    out = oiio.ImageOutput.create(str(tmp_path / "dw.exr"))
    out.open(str(tmp_path / "dw.exr"), spec)
    out.write_image(np.full((3, 4, 3), 5.0, np.float32))
    out.close()
    scene = read_plate(tmp_path / "dw.exr").scene
    expected = np.zeros((6, 8, 3), np.float32)
    expected[1:4, 2:6] = 5.0
    np.testing.assert_array_equal(scene, expected)


def test_a_file_with_no_colour_or_cut_short_is_one_sentence(tmp_path):
    oiio_write(tmp_path / "z.exr", [(np.ones((4, 4, 1), np.float32), ["Z"])])
    (tmp_path / "bad.dpx").write_bytes(b"SDPX" + b"\0" * 40)
    names = ["z.exr", "bad.dpx"]
    for suffix, sample in ((".exr", "half"), (".dpx", "uint16"), (".tif", "uint16")):
        whole = tmp_path / f"whole{suffix}"
        oiio_write(whole, [(np.random.default_rng(0).random((64, 64, 3), np.float32), ["R", "G", "B"])], sample)
        (tmp_path / f"cut{suffix}").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
        names.append(f"cut{suffix}")
    for name in names:
        with pytest.raises(InputError) as caught:
            read_plate(tmp_path / name)
        message = str(caught.value)
        assert message.startswith(f"Cannot read {tmp_path / name}: ") and message.endswith(".")
        assert "\n" not in message and not re.search(r"[.;:!?] [A-Z][a-z]", message), message


# ----------------------------------------------------------------------------------- colour spaces


def test_ocio_env_names_the_config(tmp_path, monkeypatch):
    """$OCIO is honoured: a config file (here the built-in CG config, saved) replaces the studio config."""
    path = tmp_path / "cg.ocio"
    path.write_text(ocio.Config.CreateFromFile("ocio://cg-config-latest").serialize())
    assert colour.config().getColorSpace("ARRI LogC3 (EI800)") is not None  # the studio config's
    monkeypatch.setenv("OCIO", str(path))
    assert colour.config_path() == str(path) and colour.check_colorspace("lin_ap1") == "ACEScg"
    with pytest.raises(InputError, match="mattekit colorspaces"):
        colour.check_colorspace("ARRI LogC3 (EI800)")


def test_a_bad_ocio_config_is_one_sentence_before_any_frame(tmp_path, monkeypatch, capsys):
    oiio_write(tmp_path / "plate.0001.png", [(RAMP, ["R", "G", "B"])], "uint8")
    monkeypatch.setenv("OCIO", str(tmp_path / "missing.ocio"))
    code = cli.main(
        ["roto", str(tmp_path / "plate.####.png"), "-o", str(tmp_path / "out" / "m.####.png"), "--model", MODEL]
    )
    line = capsys.readouterr().err.strip()
    assert (
        code == 2 and "\n" not in line and line.startswith(f"mattekit: error: Cannot load the OCIO config {tmp_path}")
    )


def test_bad_colorspace_is_one_sentence_before_any_model(tmp_path, capsys):
    frame = tmp_path / "plate.0001.png"
    oiio_write(frame, [(RAMP, ["R", "G", "B"])], "uint8")
    code = cli.main(
        [
            "roto",
            str(tmp_path / "plate.####.png"),
            "-o",
            str(tmp_path / "out" / "m.####.png"),
            "--colorspace",
            "ACEScgg",
            "--model",
            MODEL,
        ]
    )
    line = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in line and "'ACEScgg'" in line and "`mattekit colorspaces`" in line
    assert not (tmp_path / "out").exists()
    assert cli.main(["colorspaces"]) == 0 and "ACEScg" in capsys.readouterr().out


def test_a_view_gives_the_networks_that_view_transform_and_keeps_highlights_apart(tmp_path, capsys):
    """roto --view VIEW: the networks get the sRGB display's view transform as OCIO itself computes it (here ACES
    2.0's SDR view), in which 1, 5 and 50 stay apart where the plain conversion clips them all to 1; the plate's
    own values (``scene``) are untouched; a view that is no view of the display is one sentence naming the views."""
    view = "ACES 2.0 - SDR 100 nits (Rec.709)"
    config = ocio.Config.CreateFromFile(colour.BUILTIN)
    display = next(d for d in config.getDisplays() if "sRGB" in d)
    greys = np.array([[[0.18] * 3, [1.0] * 3, [5.0] * 3, [50.0] * 3]], np.float32)
    expected = greys.copy()
    config.getProcessor("ACEScg", display, view, ocio.TRANSFORM_DIR_FORWARD).getDefaultCPUProcessor().applyRGB(expected)
    shown = colour.to_network(greys, "ACEScg", colour.check_view(view.lower()))  # any case, checked once
    np.testing.assert_allclose(shown, np.clip(expected, 0, 1), atol=1e-6)
    assert np.all(np.diff(shown[0, :, 0]) > 0.05) and shown.max() < 1
    assert np.array_equal(colour.to_network(greys, "ACEScg")[0, 1:], np.ones((3, 3), np.float32))  # the plain clip
    oiio_write(
        tmp_path / "p.exr",
        [(np.repeat(greys, 4, axis=0), ["R", "G", "B"])],
        chromaticities=(oiio.TypeDesc("float[8]"), (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767)),
    )
    picture = read_plate(tmp_path / "p.exr", view=view)
    np.testing.assert_allclose(picture.pixels[0], shown[0], atol=1e-6)
    assert picture.scene.max() == 50.0 and picture.colorspace == "ACEScg"
    with pytest.raises(
        InputError, match=r"^'SDR' is not a view of the display 'sRGB - Display' .*its views are: ACES 2"
    ):
        colour.check_view("SDR")
    assert cli.main(["colorspaces"]) == 0 and f"  {view}" in capsys.readouterr().out.splitlines()


# ----------------------------------------------------------------------------------- photos (remove, matte ...)


def test_a_photo_exr_is_read_in_the_colour_space_its_header_names(tmp_path):
    """read_image (every photo command) reads EXR through OpenImageIO with its colour managed like a plate's: an
    ACEScg EXR written by mattekit gives the sRGB it was made from; with no colour space named, linear sRGB; a bare
    A is a matte; DPX given as bytes reads as from its file."""
    srgb = np.concatenate([RAMP, np.full((12, 16, 1), 0.75, np.float32)], axis=2)
    acescg = np.concatenate([convert(RAMP, colour.NETWORK_SPACE, "ACEScg"), srgb[..., 3:]], axis=2)
    from mattekit.io import write_image

    write_image(tmp_path / "ap1.exr", acescg, bit_depth=32, colorspace="ACEScg")
    assert np.abs(read_image(tmp_path / "ap1.exr").pixels - srgb).max() < 1e-4
    assert np.abs(read_image((tmp_path / "ap1.exr").read_bytes()).pixels - srgb).max() < 1e-4
    oiio_write(
        tmp_path / "bare.exr", [(np.ascontiguousarray(acescg[..., :3]), ["R", "G", "B"])]
    )  # no colour space said
    assert (
        np.abs(read_image(tmp_path / "bare.exr").pixels - colour.to_network(acescg[..., :3], colour.LINEAR_SRGB)).max()
        < 1e-6
    )
    oiio_write(tmp_path / "m.exr", [(RAMP[..., :1] * 2 - 0.5, ["A"])])
    matte = read_image(tmp_path / "m.exr")
    assert not matte.has_alpha and matte.mode == "EXR A float"
    np.testing.assert_allclose(matte.pixels, np.repeat(np.clip(RAMP[..., :1] * 2 - 0.5, 0, 1), 3, axis=2), atol=1e-7)
    oiio_write(tmp_path / "p.dpx", [(RAMP, ["R", "G", "B"])], "uint16", oiio_BitsPerSample=10)
    given = read_image((tmp_path / "p.dpx").read_bytes())
    assert np.array_equal(given.pixels, read_image(tmp_path / "p.dpx").pixels) and given.source == "the given bytes"


@pytest.mark.slow
def test_remove_gives_an_acescg_exr_the_mattes_of_its_linear_srgb_twin(shared, mirror, tmp_path):
    """`remove` on a photo as a linear-sRGB EXR (no colour space named) and as the same picture in an ACEScg EXR
    (its header naming ACEScg, no flag): alphas within 1/255 (before, every EXR was taken as linear sRGB)."""
    from mattekit.io import write_image

    photo = frames(shared, 1)[0]
    write_image(tmp_path / "linear.exr", photo, bit_depth=32)
    write_image(tmp_path / "ap1.exr", convert(photo, colour.NETWORK_SPACE, "ACEScg"), bit_depth=32, colorspace="ACEScg")
    for name in ("linear", "ap1"):
        assert (
            cli.main(
                [
                    "remove",
                    str(tmp_path / f"{name}.exr"),
                    "--model",
                    MODEL,
                    "--result",
                    "alpha",
                    "--device",
                    "cpu",
                    "-o",
                    str(tmp_path / f"{name}.alpha.png"),
                ]
            )
            == 0
        )
    linear, ap1 = (read_image(tmp_path / f"{n}.alpha.png").pixels for n in ("linear", "ap1"))
    print(f"remove, linear sRGB EXR vs ACEScg EXR: max alpha difference {np.abs(linear - ap1).max() * 255:.3f}/255")
    assert np.abs(linear - ap1).max() <= 1 / 255


def test_an_integer_exr_is_scene_linear_for_photos_and_plates_alike(tmp_path):
    """EXR's samples are scene-linear unless the file names another space, integer (uint) samples too: a plate and
    a photo read of the same uint EXR give the same colour space and the same network pixels (0.18 linear is 0.46 in
    sRGB; a plate taken as sRGB would give the networks 0.18)."""
    values = np.array([[[0, 0, 0], [0.18, 0.18, 0.18], [0.5, 0.5, 0.5], [1, 1, 1]]], np.float32)
    oiio_write(tmp_path / "uint.exr", [(values, ["R", "G", "B"])], sample="uint")
    plate = read_plate(tmp_path / "uint.exr")
    assert plate.colorspace == colour.LINEAR_SRGB
    np.testing.assert_allclose(plate.scene, values, atol=1e-6)
    np.testing.assert_allclose(plate.pixels[0, :, 0], [0, 0.4614, 0.7354, 1], atol=1e-3)
    np.testing.assert_array_equal(read_image(tmp_path / "uint.exr").pixels, plate.pixels)


@pytest.mark.parametrize(
    "space, view", [("ACEScg", None), (colour.LINEAR_SRGB, None), ("ACEScg", "ACES 2.0 - SDR 100 nits (Rec.709)")]
)
@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_a_big_frame_converted_in_strips_over_the_cores_is_the_whole_frames_conversion(space, view):
    """to_network on a 4-strip frame (strips of rows in threads) gives, bit for bit, its definition: the processors
    over the whole frame, then NaN to 0 and +-inf to 1 and 0, clipped to [0, 1]; -0.0 kept as numpy's clip keeps it."""
    rng = np.random.default_rng(11)
    width = 1024
    frame = (rng.random((colour.STRIP_PIXELS * 4 // width - 3, width, 3), np.float32) * 3 - 0.5)[:, ::-1]  # a view
    frame[0, :4] = [[np.nan] * 3, [np.inf] * 3, [-np.inf] * 3, [-0.0] * 3]
    view = colour.check_view(view) if view else None
    whole = np.array(frame, np.float32, order="C")
    for processor in colour._network_processors(space, view):
        processor.applyRGB(whole)
    expected = np.clip(np.nan_to_num(whole, nan=0.0, posinf=1.0, neginf=0.0), 0, 1)
    got = colour.to_network(frame, space, view)
    assert got.shape == frame.shape and got.dtype == np.float32
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))
    assert not np.shares_memory(got, frame) and np.isnan(frame[0, 0]).all()  # the input is left as it was


def test_a_plates_nan_and_infinite_samples_are_read_as_numpys_nan_to_num_gives_them(tmp_path):
    """NaN and infinite samples in a float EXR: the plate's own values have NaN as 0 and +-inf as the largest
    finite float32 (numpy's nan_to_num), bit for bit; the networks' pixels have them as 0, 1 and 0."""
    values = (RAMP * 3 - 1).copy()
    values[0, :4] = [[np.nan] * 3, [np.inf] * 3, [-np.inf] * 3, [-0.0] * 3]
    oiio_write(tmp_path / "p.exr", [(values, ["R", "G", "B"])], "float")
    picture = read_plate(tmp_path / "p.exr", colorspace=colour.LINEAR_SRGB)
    assert np.array_equal(picture.scene.view(np.uint32), np.nan_to_num(values, nan=0.0).view(np.uint32))
    assert picture.pixels[0, :3].tolist() == [[0.0] * 3, [1.0] * 3, [0.0] * 3]
