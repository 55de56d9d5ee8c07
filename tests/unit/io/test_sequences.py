"""Frame sequences: patterns, ranges, numbered folders, missing frames, EXR plates, movies."""

from __future__ import annotations

import numpy as np
import pytest

from mattekit.errors import InputError, OutputError
from mattekit.io import read_image, write_image
from mattekit.io.frame_patterns import FramePattern
from mattekit.io.frame_ranges import chunk_frames, format_frames, parse_frames
from mattekit.io.movie import Movie
from mattekit.io.sequences import ImageSequence, MissingFramesError, open_plate, output_pattern, select_frames


@pytest.mark.parametrize(
    "text, padding, name",
    [
        ("shot/plate.####.exr", 4, "plate.0007.exr"),
        ("plate.%04d.png", 4, "plate.0007.png"),
        ("plate.%d.png", 1, "plate.7.png"),
        ("plate.$F4.png", 4, "plate.0007.png"),
        ("plate.$F.png", 1, "plate.7.png"),
        ("plate.@.png", 1, "plate.7.png"),
        ("plate.@@@.png", 3, "plate.007.png"),
        ("plate_#####", 5, "plate_00007"),
    ],
)
def test_pattern_tokens(text, padding, name):
    pattern = FramePattern.parse(text)
    assert pattern.padding == padding
    assert pattern.name(7) == name
    assert pattern.matches(name) == 7
    assert pattern.name(123456).endswith("123456" + pattern.suffix)
    assert pattern.matches(pattern.name(123456)) == 123456


def test_pattern_padding_rules():
    pattern = FramePattern.parse("p.####.exr")
    assert pattern.matches("p.1001.exr") == 1001
    assert pattern.matches("p.10000.exr") == 10000  # longer without a leading zero: still the sequence
    assert pattern.matches("p.001.exr") is None
    assert pattern.matches("p.01001.exr") is None
    assert pattern.matches("p.1001.png") is None
    assert pattern.matches("p.-001.exr") == -1 and pattern.name(-1) == "p.-001.exr"
    assert FramePattern.parse("p.%d.png").matches("p.0007.png") is None


@pytest.mark.parametrize("text", ["plate.png", "a.####.b.####.exr", "s##/plate.####.png", "plate.%4d.png"])
def test_pattern_errors(text):
    with pytest.raises(InputError):
        FramePattern.parse(text)


def test_frame_ranges():
    assert list(parse_frames("1001-1005")) == [1001, 1002, 1003, 1004, 1005]
    assert list(parse_frames("1-9x4")) == [1, 5, 9]
    assert list(parse_frames("1-9:4")) == [1, 5, 9]
    assert list(parse_frames("7")) == [7]
    assert list(parse_frames("10-12, 1,3 ,11")) == [1, 3, 10, 11, 12]
    assert list(parse_frames("-3--1")) == [-3, -2, -1]
    with pytest.raises(InputError, match=r"names 1,000,000,001 frames, more than the 1,000,000 one job takes"):
        parse_frames("0-1000000000")  # counted, not expanded (it grew to 22.5 GB)
    assert len(parse_frames("1-1000000")) == 1_000_000
    for bad in ("", "a-b", "5-1", "1-5x0", "1..5", "1-5-9"):
        with pytest.raises(InputError):
            parse_frames(bad)
    assert format_frames([1, 2, 3, 7, 9, 10]) == "1-3, 7, 9-10"
    assert format_frames([]) == ""
    assert chunk_frames(list(range(1, 11)), 4) == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]


def _frames(folder, names, value=0.5):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        write_image(folder / name, np.full((6, 8, 3), value, np.float32))


def test_folder_and_single_frame(tmp_path):
    _frames(tmp_path / "davis", [f"{i:05d}.jpg" for i in range(4)])
    _frames(tmp_path / "davis", ["notes.png"])
    plate = open_plate(tmp_path / "davis")
    assert plate.frames == [0, 1, 2, 3] and plate.pattern.padding == 5
    _frames(tmp_path / "vfx", [f"sh010_plate.{i}.png" for i in range(1001, 1004)])
    (tmp_path / "vfx" / "sh010_plate.1002.png.bak").write_bytes(b"old")
    plate = open_plate(tmp_path / "vfx" / "sh010_plate.1002.png")
    assert plate.frames == [1001, 1002, 1003] and str(plate.pattern).endswith("sh010_plate.####.png")
    _frames(tmp_path / "unpadded", [f"f{i}.png" for i in (1, 2, 10)])
    assert open_plate(tmp_path / "unpadded" / "f10.png").frames == [1, 2, 10]
    _frames(tmp_path / "two", ["a.1.png", "a.2.png", "b.1.png", "b.2.png"])
    with pytest.raises(InputError, match="more than one"):
        open_plate(tmp_path / "two")
    with pytest.raises(InputError, match="does not exist"):
        open_plate(tmp_path / "nowhere" / "nothing.####.png")
    with pytest.raises(InputError, match="does not exist"):
        open_plate(tmp_path / "nothing.1001.png")
    with pytest.raises(InputError, match="No frames match"):
        open_plate(tmp_path / "vfx" / "other.####.png")


def test_missing_frames_are_reported(tmp_path):
    _frames(tmp_path, [f"p.{i:04d}.png" for i in (1, 2, 3, 5, 6, 9)])
    plate = open_plate(str(tmp_path / "p.####.png"))
    with pytest.raises(MissingFramesError) as info:
        select_frames(plate, None)
    assert info.value.missing == [4, 7, 8]
    assert "4, 7-8" in str(info.value)
    assert select_frames(plate, "1-3") == ([1, 2, 3], [])
    assert select_frames(plate, "1-9", skip_missing=True) == ([1, 2, 3, 5, 6, 9], [4, 7, 8])
    assert select_frames(plate, "1-9x4") == ([1, 5, 9], [])
    with pytest.raises(MissingFramesError, match="10-12"):
        select_frames(plate, "5-12")
    for skip in (True, False):  # none there: no "use --skip-missing to process the others" (there are none)
        with pytest.raises(
            InputError, match=r"^None of the frames 20-30 exist in .* \(it has frames 1-3, 5-6, 9\); fix --frames\.$"
        ):
            select_frames(plate, "20-30", skip_missing=skip)


def test_output_patterns(tmp_path):
    _frames(tmp_path / "in", [f"sh010.{i:04d}.exr" for i in (1, 2)])
    plate = open_plate(tmp_path / "in" / "sh010.####.exr")
    assert output_pattern(tmp_path / "out" / "m.%04d.exr", plate).name(3) == "m.0003.exr"
    assert str(output_pattern(tmp_path / "out", plate)) == str(tmp_path / "out" / "sh010.####.png")
    with pytest.raises(OutputError):
        output_pattern(tmp_path / "out" / "matte.png", plate)
    with pytest.raises(OutputError):
        output_pattern(tmp_path / "out" / "matte.####.jpg", plate)


def test_exr_plate_is_read_as_srgb(tmp_path):
    """EXR frames are scene-linear on disk and reach the networks sRGB-encoded."""
    srgb = np.tile(np.linspace(0.0, 1.0, 8, dtype=np.float32)[None, :, None], (4, 1, 3))
    for frame in (1001, 1002):
        write_image(tmp_path / f"plate.{frame}.exr", srgb, bit_depth=32)
    plate = open_plate(tmp_path / "plate.####.exr")
    assert plate.frames == [1001, 1002]
    np.testing.assert_allclose(plate.read(1002).pixels, srgb, atol=1e-5)
    import OpenEXR

    with OpenEXR.File(str(tmp_path / "plate.1001.exr"), separate_channels=True) as f:
        linear = f.channels()["R"].pixels
    np.testing.assert_allclose(linear[0, 4], ((4 / 7 + 0.055) / 1.055) ** 2.4, rtol=1e-5)  # linear on disk


def _movie(path, count=12, size=(64, 48)):
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24, options={"g": "4", "crf": "10"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(count):
            image = np.zeros((size[1], size[0], 3), np.uint8)
            image[:] = (i * 20, 255 - i * 20, 128)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_movie_frames(tmp_path):
    _movie(tmp_path / "clip.mp4")
    plate = open_plate(tmp_path / "clip.mp4")
    assert isinstance(plate, Movie) and plate.frames == list(range(1, 13))

    def red(n):
        return plate.read(n).pixels[..., 0].mean() * 255

    for n in (1, 2, 3, 9, 4, 12, 5, 6):  # in order, forwards past keyframes, and backwards
        assert abs(red(n) - (n - 1) * 20) < 4, n
    with pytest.raises(InputError):
        plate.read(13)
    assert select_frames(plate, "2-4") == ([2, 3, 4], [])
    assert str(output_pattern(tmp_path / "out", plate)).endswith("clip.####.png")
    plate.close()


def test_image_sequence_reads_frames(tmp_path):
    _frames(tmp_path, ["a.0001.png", "a.0002.png"], value=0.25)
    plate = ImageSequence(FramePattern.parse(str(tmp_path / "a.####.png")))
    np.testing.assert_allclose(plate.read(2).pixels, read_image(tmp_path / "a.0002.png").pixels)
    with pytest.raises(InputError):
        plate.read(3)
