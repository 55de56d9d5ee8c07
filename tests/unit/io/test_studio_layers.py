"""Roto's layered EXR for compositors: the channels the README lists, premultiplied, values above
1.0 kept, the plate's data window, timecode, frame rate and camera attributes carried through, and a frame written
again on resume byte for byte as before."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from mattekit import cli
from mattekit.io import read_image
from mattekit.io.oiio import LAYER_CHANNELS
from plates import make_plate
from studio_plates import convert, frames, roto

ROOT = Path(__file__).resolve().parents[3]
DATA_WINDOW = (8, 6, 144, 84)  # x, y, width, height inside the 160 x 96 display window


def write_plate(folder: Path, pictures: list[np.ndarray]) -> str:
    """An ACEScg half EXR plate with a data window smaller than its display window, a timecode per frame, a frame
    rate and a camera model."""
    folder.mkdir(parents=True)
    x, y, width, height = DATA_WINDOW
    for n, srgb in enumerate(pictures):
        scene = convert(srgb, "sRGB Encoded Rec.709 (sRGB)", "ACEScg") * 4.0  # highlights above 1.0
        spec = oiio.ImageSpec(width, height, 3, "half")
        spec.x, spec.y = x, y
        spec.full_x, spec.full_y, spec.full_width, spec.full_height = 0, 0, srgb.shape[1], srgb.shape[0]
        spec.attribute("smpte:TimeCode", oiio.TypeDesc("timecode"), (0x01000000 + n, 0))
        spec.attribute("FramesPerSecond", oiio.TypeDesc("rational2i"), (24, 1))
        spec.attribute("cameraModel", "ALEXA 35")
        out = oiio.ImageOutput.create("openexr")
        assert out.open(str(folder / f"plate.{1001 + n}.exr"), spec), out.geterror()
        assert out.write_image(np.ascontiguousarray(scene[y : y + height, x : x + width], np.float32)), out.geterror()
        out.close()
    return str(folder / "plate.####.exr")


def opened(path: Path) -> tuple[oiio.ImageSpec, np.ndarray]:
    image = oiio.ImageInput.open(str(path))
    assert image is not None, oiio.geterror()
    spec = oiio.ImageSpec(image.spec())
    pixels = image.read_image("float")
    image.close()
    return spec, np.asarray(pixels, np.float32)


@pytest.mark.slow
@pytest.mark.needs_data
def test_layered_exr_channels_values_window_and_metadata(shared, mirror, tmp_path):
    plate = write_plate(tmp_path / "plate", frames(shared, 3))
    out = tmp_path / "out"
    args = [
        plate,
        "-o",
        out / "m.####.exr",
        "--fg",
        out / "fg.####.exr",
        "--layers",
        out / "comp.####.exr",
        "--colorspace",
        "ACEScg",
        "--bit-depth",
        "32",
    ]
    roto(args)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = re.search(r"--layers[^\n]*\n?[^\n]*?((?:`[\w.]+`, ){7}`[\w.]+`)", readme)
    assert listed, "the README lists the layered EXR's channels"
    assert [c.strip("`") for c in listed.group(1).split(", ")] == list(LAYER_CHANNELS)
    spec, layers = opened(out / "comp.1002.exr")
    assert list(spec.channelnames) == list(LAYER_CHANNELS)
    assert (spec.x, spec.y, spec.width, spec.height) == DATA_WINDOW and (spec.full_width, spec.full_height) == (160, 96)
    assert spec.getattribute("smpte:TimeCode")[0] == 0x01000001 and tuple(spec.getattribute("FramesPerSecond")) == (
        24,
        1,
    )
    assert spec.getattribute("cameraModel") == "ALEXA 35" and spec.getattribute("mattekitProvenance")
    x, y, width, height = DATA_WINDOW
    _, matte = opened(out / "m.1002.exr")
    _, fg = opened(out / "fg.1002.exr")  # premultiplied too
    _, source = opened(tmp_path / "plate" / "plate.1002.exr")
    alpha = layers[..., 3]
    np.testing.assert_allclose(alpha, matte[y : y + height, x : x + width, 0], atol=1e-3)
    np.testing.assert_allclose(layers[..., :3], source * alpha[..., None], rtol=2e-3, atol=1e-3)  # the cut-out
    np.testing.assert_allclose(layers[..., 4:7], fg[y : y + height, x : x + width, :3], rtol=2e-3, atol=1e-3)
    assert np.array_equal(layers[..., 7], alpha)
    assert layers[..., :3].max() > 1.0  # highlights kept
    assert spec.getattribute("oiio:ColorSpace") in ("ACEScg", "lin_ap1_scene")

    before = {p.name: p.read_bytes() for p in out.glob("comp.*.exr")}
    (out / "comp.1002.exr").unlink()
    roto(args)  # resumes: frame 1002's layered file again, the others untouched
    assert {p.name: p.read_bytes() for p in out.glob("comp.*.exr")} == before


def test_layers_must_be_an_exr_pattern(tmp_path, capsys):
    from plates import small_plate

    plate = small_plate(tmp_path / "plate")
    code = cli.main(
        [
            "roto",
            str(plate / "f.####.png"),
            "-o",
            str(tmp_path / "m.####.png"),
            "--layers",
            str(tmp_path / "comp.####.png"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--layers" in err[0] and ".exr" in err[0], err
    code = cli.main(
        [
            "roto",
            str(plate / "f.####.png"),
            "-o",
            str(tmp_path / "m.####.png"),
            "--layers",
            str(tmp_path / "comp.####.png"),
            "--box",
            "1:0,0,8,8@a",
            "--box",
            "1:8,0,16,8@b",
        ]
    )  # two objects
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--layers" in err[0], err
    assert not list(tmp_path.glob("m*"))


@pytest.mark.slow
@pytest.mark.needs_data
def test_several_objects_share_one_layered_file_per_frame(shared, mirror, tmp_path):
    """Two objects (boxes named @left and @right): each writes its matte, and one layered EXR per frame holds
    both as left.A and right.A, with R G B A and fg.* for their union; a re-run after deleting one rewrites it."""
    plate = make_plate(shared, tmp_path / "plate", 3)  # 214 x 120 PNG frames 1001-1003
    out = tmp_path / "out"
    args = [
        "roto",
        plate,
        "-o",
        str(out / "m.####.png"),
        "--layers",
        str(out / "comp.####.exr"),
        "--model",
        "csnet-sod",
        "--box",
        "1001:0,0,107,120@left",
        "--box",
        "1001:107,0,214,120@right",
        "--no-temporal",
    ]
    assert cli.main(args) == 0
    spec, layers = opened(out / "comp.1002.exr")
    assert list(spec.channelnames) == list(LAYER_CHANNELS) + ["left.A", "right.A"]
    for n, name in ((8, "left"), (9, "right")):
        matte = read_image(out / f"m_{name}.1002.png").pixels[..., 0]
        np.testing.assert_allclose(layers[..., n], matte, atol=1e-3)
    np.testing.assert_allclose(layers[..., 3], np.maximum(layers[..., 8], layers[..., 9]), atol=1e-3)
    before = (out / "comp.1001.exr").read_bytes()
    (out / "comp.1002.exr").unlink()
    assert cli.main(args) == 0
    assert (out / "comp.1002.exr").is_file() and (out / "comp.1001.exr").read_bytes() == before
