"""Mattes from studio plates: one 8-bit frame in every format (PNG, TIFF, EXR, DPX) gives the network the same
input and one matte; roto --rgba gives the plate back in its own colour space with nothing clipped (ACEScg with
highlights, log DPX, 16-bit TIFF, through a view); and the mattes do not depend on whether a shot is given as an
sRGB PNG or as the same picture in ACEScg."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
import pytest
from PIL import Image

from mattekit import catalog, runtime
from mattekit.engines import inputs
from mattekit.io import colour
from mattekit.io import read_image, write_image
from mattekit.io.read import read_plate
from mattekit.ops.pixels import quantise

from studio_plates import MODEL, convert, frames, oiio_write, roto


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
