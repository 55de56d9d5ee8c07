"""Studio plates: every plate format read from files OpenImageIO wrote itself, colour managed with
OpenColorIO; the --rgba plate comes back in the plate's own colour space with nothing clipped, and the mattes do
not depend on whether a shot is given as an sRGB PNG or as the same picture in ACEScg."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
import PyOpenColorIO as ocio
import pytest
from PIL import Image

from mattekit import catalog, cli, runtime
from mattekit.engines import inputs
from mattekit.io import colour
from mattekit.errors import InputError
from mattekit.io import read_image, write_image
from mattekit.io.picture import Layout
from mattekit.io.read import read_layout, read_plate
from mattekit.io.frame_patterns import IMAGE_SUFFIXES
from mattekit.ops.pixels import quantise

from studio_plates import MODEL, convert, frames, oiio_write, roto


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


# ----------------------------------------------------------------------------------- one matte from every format

FORMATS = ("png", "tif", "exr-half", "exr-float", "dpx")
MATTE_MEAN = 2.5e-4  # one matte: mean |delta alpha| per frame (1/16 of an 8-bit level; see the test below)


def in_every_format(folder: Path, pictures: list[np.ndarray]) -> dict[str, str]:
    """8-bit sRGB frames (float32 H x W x 3 on the 8-bit grid) as the plates a studio hands over: {format: pattern}.
    8-bit PNG, 16-bit TIFF and linear EXR (half, float: converted from sRGB) by mattekit's writer, 10-bit DPX (sRGB)
    by OIIO."""
    found = {}
    for kind in FORMATS:
        suffix = "." + kind.split("-")[0]
        for n, pixels in enumerate(pictures):
            path = folder / kind / f"plate.{1001 + n:04d}{suffix}"
            if kind == "dpx":
                oiio_write(path, [(pixels, ["R", "G", "B"])], "uint16", oiio_BitsPerSample=10)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_image(path, pixels, bit_depth={"png": 8, "tif": 16, "exr-half": 16, "exr-float": 32}[kind])
        found[kind] = str(folder / kind / f"plate.####{suffix}")
    return found


def test_every_format_of_an_8_bit_frame_gives_the_network_its_8_bits(shared, tmp_path):
    """One quantisation for every source: where a model's reference reads 8-bit pictures (``eight_bit``: rembg's
    U^2-Nets, DIS's IS-Net), a frame as 8-bit PNG, 16-bit TIFF, linear EXR (half, float) or 10-bit DPX, read as a photo
    (``read_image(integers=True)``, the image commands) or as a plate (``read_plate``, roto), gives the network the
    same input, bit for bit: its 8 bits rounded (before, floats took PIL's float Lanczos and IS-Net's truncation,
    which drops a level for a float a hair under it). u2netp's input is rembg's own to float32 rounding. A model
    without the flag keeps a 16-bit frame's precision."""
    u8 = [
        np.round(cv2.resize(read_image(p).pixels, (427, 240), interpolation=cv2.INTER_AREA) * 255).astype(np.uint8)
        for p in sorted((shared / "data" / "davis" / "im" / "breakdance").iterdir())[:2]
    ]
    plates = in_every_format(tmp_path, [u / np.float32(255) for u in u8])
    entries = [e for e in catalog.load().models.values() if e.input.eight_bit]
    assert {"u2netp", "isnet-general-use"} <= {e.name for e in entries}
    for n, stored in enumerate(u8):
        for entry in entries:
            want = inputs.prepare_array(entry, stored)
            for pattern in plates.values():
                path = pattern.replace("####", f"{1001 + n:04d}")
                for pixels in (read_image(path, integers=True).pixels, read_plate(path).pixels):
                    assert np.array_equal(inputs.prepare_array(entry, pixels), want), (entry.name, path)
            hair = stored / np.float32(255) + np.where(stored > 0, -2e-4, 2e-4).astype(np.float32)  # half: 1e-4 off
            assert np.array_equal(inputs.prepare_array(entry, hair), want), entry.name
        rembg = np.asarray(Image.fromarray(stored).resize((320, 320), Image.Resampling.LANCZOS), np.float64)
        rembg = (rembg / rembg.max() - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)
        half = read_plate(plates["exr-half"].replace("####", f"{1001 + n:04d}")).pixels
        mine = inputs.prepare_array(catalog.load().get("u2netp"), half)
        np.testing.assert_allclose(mine[0].transpose(1, 2, 0), rembg, rtol=0, atol=1e-5)
    deep = (
        np.minimum(read_image(plates["tif"].replace("####", "1001"), integers=True).pixels, 65000) + 100
    )  # off the grid
    birefnet = catalog.load().get("birefnet-general")
    assert not np.array_equal(inputs.prepare_array(birefnet, deep), inputs.prepare_array(birefnet, quantise(deep)))


@pytest.mark.slow
def test_one_frame_in_every_format_gives_u2netp_one_matte(shared, mirror, tmp_path):
    """Real DAVIS frames (breakdance, 427 x 240, 8-bit) as 8-bit PNG, 16-bit TIFF, linear EXR (half, float) and 10-bit
    DPX give one matte with u2netp (real weights): ``remove``'s alpha (read as the CLI reads a photo; the default
    refinement and edge matting) and roto's (the default refinement and temporal filter). The network's input is the
    same (the test above); what can still differ reads each file's own colours at its own precision (DPX 10-bit: up
    to 0.5/1023 off the 8 bits, half EXR: 0.03/255): the edge matting, the refinement, the filter's flow. Per frame,
    every format against the PNG: mean |delta alpha| <= MATTE_MEAN (measured: ..., before this change ...)."""
    from mattekit.running.runner import Runner
    from mattekit.tasks import registry

    u8 = [
        np.round(cv2.resize(read_image(p).pixels, (427, 240), interpolation=cv2.INTER_AREA) * 255) / 255
        for p in sorted((shared / "data" / "davis" / "im" / "breakdance").iterdir())[:3]
    ]
    plates = in_every_format(tmp_path, [u.astype(np.float32) for u in u8])
    task = registry.get("remove")
    options = task.make_options({"model": MODEL, "device": "cpu", "result": "alpha"}, host="api")
    models = runtime.ModelCache().for_task(task, options)
    mattes = {}
    for kind, pattern in plates.items():
        mattes[kind] = []
        for flags in ((), ("--no-temporal",)):  # the default roto, and its per-frame mattes
            out = tmp_path / "out" / kind / "-".join(flags)
            roto([pattern, "-o", out / "m.####.exr", "--bit-depth", "32", *flags])
            mattes[kind] += [read_image(out / f"m.{1001 + n}.exr").pixels[..., 0] for n in range(3)]
        pixels = read_image(pattern.replace("####", "1001"), integers=True).pixels
        mattes[kind].append(np.squeeze(Runner(task, models, options).arrays({"image": pixels})["result"]))
    worst = {}
    for kind in FORMATS[1:]:
        means = [float(np.abs(a - b).mean()) for a, b in zip(mattes[kind], mattes["png"])]
        print(
            f"{kind} vs png, mean |delta alpha| (roto's 3 frames, with --no-temporal, the photo):",
            " ".join(f"{m:.1e}" for m in means),
        )
        worst[kind] = max(means)
    assert max(worst.values()) <= MATTE_MEAN, worst


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


@pytest.mark.slow
def test_roto_through_a_view_records_it_and_keeps_the_plate(shared, mirror, tmp_path):
    """roto --view on an ACEScg EXR plate with highlights: it runs, the manifest records the view, and --rgba keeps
    the plate's own values (above 1.0 too) where the matte is 0 or 1."""
    plates = [convert(f, colour.NETWORK_SPACE, "ACEScg") * 8 for f in frames(shared, 2)]  # values up to about 8
    worst, written, peak = _round_trip(
        tmp_path, plates, ".exr", "float", ".exr", "--view", "ACES 2.0 - SDR 100 nits (Rec.709)"
    )
    assert peak > 4 and written > 1 and worst <= 1e-4, (worst, written, peak)
    manifest = json.loads((tmp_path / "out" / "m.mattekit.json").read_text())
    assert manifest["settings"]["view"] == "ACES 2.0 - SDR 100 nits (Rec.709)"


# ----------------------------------------------------------------------------------- round trips through roto


def _round_trip(tmp_path: Path, plates: list[np.ndarray], suffix: str, sample: str, out_suffix: str, *flags) -> tuple:
    """Write ``plates`` with OIIO, run roto --rgba; (max |rgba - plate x alpha| where alpha is 0 or 1, the largest
    value written, the largest of the plates). OIIO reads both EXR and TIFF premultiplied."""
    for n, pixels in enumerate(plates):
        oiio_write(
            tmp_path / "plate" / f"plate.{1001 + n:04d}{suffix}",
            [(pixels, ["R", "G", "B"])],
            sample,
            **({"oiio_BitsPerSample": 10} if suffix == ".dpx" else {}),
        )
    out = tmp_path / "out"
    roto(
        [
            tmp_path / "plate" / f"plate.####{suffix}",
            "-o",
            out / "m.####.exr",
            "--rgba",
            out / f"rgba.####{out_suffix}",
            *flags,
        ]
    )
    worst, written = 0.0, 0.0
    for n in range(len(plates)):
        stored = read_plate(tmp_path / "plate" / f"plate.{1001 + n:04d}{suffix}").scene
        raw = oiio.ImageBuf(str(out / f"rgba.{1001 + n:04d}{out_suffix}")).get_pixels(oiio.FLOAT)
        alpha = raw[..., 3:]
        solid = (alpha[..., 0] == 0) | (alpha[..., 0] == 1)
        worst = max(worst, float(np.abs(raw[..., :3] - stored * alpha)[solid].max()))
        written = max(written, float(raw[..., :3].max()))
        assert solid.mean() > 0.5 and 0 < alpha.mean() < 1
    return worst, written, max(float(p.max()) for p in plates)


def test_acescg_exr_round_trip_keeps_values_above_one(shared, mirror, tmp_path):
    """ACEScg plate with highlights up to 50.0 through roto --rgba: back in ACEScg within 1e-4 where the matte is
    0 or 1, the highlights on the subject not clipped."""
    plates = [convert(f, colour.NETWORK_SPACE, "ACEScg") for f in frames(shared, 3)]
    for p in plates:
        p[p.sum(axis=2) > 1.8] *= 50 / p.max()  # the white swan and bright water: values up to 50.0
    worst, written, peak = _round_trip(tmp_path, plates, ".exr", "float", ".exr", "--colorspace", "ACEScg")
    print(f"ACEScg EXR round trip: max |delta| {worst:.2e}, largest value written {written:.2f} (plates: {peak:.2f})")
    assert peak >= 49 and worst <= 1e-4 and written > 10
    assert read_plate(tmp_path / "out" / "rgba.1001.exr").colorspace == "ACEScg"  # its header says so


@pytest.mark.slow
@pytest.mark.parametrize(
    "suffix, sample, out_suffix, flags",
    [(".dpx", "uint16", ".exr", ("--colorspace", "ACEScct")), (".tif", "uint16", ".tif", ())],
)
def test_dpx_log_and_16_bit_tiff_round_trips(shared, mirror, tmp_path, suffix, sample, out_suffix, flags):
    """A log DPX plate (ACEScct) comes back as its log values in a float EXR; a 16-bit TIFF in a 16-bit TIFF."""
    plates = frames(shared, 3)
    if suffix == ".dpx":
        plates = [convert(f, colour.NETWORK_SPACE, "ACEScct") for f in plates]
    worst, _, _ = _round_trip(tmp_path, plates, suffix, sample, out_suffix, *flags)
    print(f"{suffix} round trip: max |delta| {worst:.2e}")
    assert worst <= 1e-4
    space = read_plate(tmp_path / "out" / f"rgba.1001{out_suffix}").colorspace
    assert space == ("ACEScct" if suffix == ".dpx" else colour.NETWORK_SPACE)  # the EXR's header names ACEScct


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_mattes_match_between_an_8_bit_png_an_srgb_exr_and_an_acescg_exr(shared, mirror, tmp_path):
    """The same shot as an sRGB float EXR and as an ACEScg EXR made from it by OCIO: mattes within 1/255 (colour
    management alone). As an 8-bit PNG: the sRGB EXR's mattes (the network's input is the frame's 8 bits either way,
    as rembg makes it; before, the float frames' differed by 0.05/255 on average and up to 24/255 on edge pixels)."""
    for n, f in enumerate(frames(shared, 3)):
        oiio_write(tmp_path / "png" / f"plate.{1001 + n:04d}.png", [(f, ["R", "G", "B"])], "uint8")
        oiio_write(tmp_path / "srgb" / f"plate.{1001 + n:04d}.exr", [(f, ["R", "G", "B"])], "float")
        oiio_write(
            tmp_path / "exr" / f"plate.{1001 + n:04d}.exr",
            [(convert(f, colour.NETWORK_SPACE, "ACEScg"), ["R", "G", "B"])],
            "float",
        )
    roto(
        [
            tmp_path / "srgb" / "plate.####.exr",
            "-o",
            tmp_path / "a" / "m.####.png",
            "--colorspace",
            colour.NETWORK_SPACE,
        ]
    )
    roto([tmp_path / "exr" / "plate.####.exr", "-o", tmp_path / "b" / "m.####.png", "--colorspace", "ACEScg"])
    roto([tmp_path / "png" / "plate.####.png", "-o", tmp_path / "c" / "m.####.png"])
    mattes = {k: [read_image(tmp_path / k / f"m.{f}.png").pixels for f in (1001, 1002, 1003)] for k in "abc"}
    worst = max(float(np.abs(a - b).max()) for a, b in zip(mattes["a"], mattes["b"]))
    print(f"sRGB EXR vs ACEScg EXR mattes: max difference {worst * 255:.3f}/255")
    assert worst <= 1 / 255
    png = [np.abs(a - c) for a, c in zip(mattes["a"], mattes["c"])]
    print("8-bit PNG vs float sRGB mattes, max (/255):", [round(float(d.max()) * 255, 3) for d in png])
    assert all(d.max() <= 0.5 / 255 for d in png)  # (both written as 8-bit PNG mattes)


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
