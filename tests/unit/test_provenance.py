"""Provenance: the record of what made an output, embedded in every format mattekit writes and read back."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from mattekit import catalog, io, provenance
from mattekit.cli import main
from mattekit.errors import InputError
from mattekit.tasks import registry

RECORD = {
    "software": "mattekit 0.1.0",
    "task": "remove",
    "models": [
        {"option": "model", "name": "sinet-portrait", "weights": "SINet.pth", "sha256": "d1" * 32, "derived": False}
    ],
    "options": {"background": "#ff00ff <&\"'>", "model": "sinet-portrait"},
    "digital_source_type": provenance.ALGORITHMICALLY_ENHANCED,
}


def _unsealed(record: dict) -> dict:
    """``record`` as read from a file, without the digest of that file sealed into it."""
    return {k: v for k, v in record.items() if k != provenance.FILE_DIGEST}


@pytest.mark.parametrize(
    "name,bit_depth,channels",
    [
        ("a.png", 8, 4),
        ("a.png", 16, 3),
        ("a.tif", 8, 4),
        ("a.tif", 16, 1),
        ("a.jpg", 8, 3),
        ("a.webp", 8, 3),
        ("a.exr", 16, 4),
        ("a.exr", 32, 1),
    ],
)
def test_provenance_survives_a_round_trip_and_leaves_the_pixels_alone(tmp_path, name, bit_depth, channels):
    rng = np.random.default_rng(0)
    pixels = rng.random((24, 40, channels), dtype=np.float32)
    with_record, without = tmp_path / name, tmp_path / ("plain_" + name)
    io.write_image(with_record, pixels, bit_depth=bit_depth, provenance=RECORD)
    io.write_image(without, pixels, bit_depth=bit_depth)
    found = io.read_provenance(with_record)  # the record, sealed with the file's own digest (only the record changes)
    assert _unsealed(found) == RECORD and found[provenance.FILE_DIGEST] != provenance.UNSEALED
    assert io.read_provenance(without) is None
    assert np.array_equal(io.read_image(with_record).pixels, io.read_image(without).pixels) or name.endswith(".webp")


def test_the_xmp_packet_uses_the_iptc_and_xmp_properties():
    packet = provenance.to_xmp(RECORD).decode("utf-8")
    assert (
        'Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/algorithmicallyEnhanced"'
        in packet
    )
    assert 'xmp:CreatorTool="mattekit 0.1.0"' in packet and packet.startswith("<?xpacket begin=")
    other = packet.replace("mattekit:Record=", "mattekit:Other=")  # another program's packet: the IPTC term still reads
    assert provenance.from_xmp(other) == {
        "digital_source_type": provenance.ALGORITHMICALLY_ENHANCED,
        "software": "mattekit 0.1.0",
    }
    assert provenance.from_xmp(b"<x:xmpmeta broken") is None


def test_only_options_that_change_the_result_are_recorded(tmp_path):
    task = registry.get("bokeh")
    (tmp_path / "x.pth").write_bytes(b"weights")  # a weights path must name a file (checked with the options)
    options = task.make_options(
        {"strength": 2.0, "mask_only": True, "device": "cpu", "depth_weights": str(tmp_path / "x.pth")}
    )
    assert provenance.changed_options(task.declared, options, task.options()) == {"strength": 2.0, "mask_only": True}
    assert provenance.source_type(registry.get("upscale").outputs[0]) == provenance.COMPOSITE_WITH_TRAINED
    assert provenance.source_type(task.outputs[0]) == provenance.ALGORITHMICALLY_ENHANCED


@pytest.fixture
def mirror(shared, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")


@pytest.mark.needs_data
@pytest.mark.parametrize("ext", [".png", ".tif", ".jpg", ".exr"])
def test_remove_writes_its_provenance_and_info_prints_it(shared, mirror, tmp_path, capsys, ext):
    src = shared / "data/grabcut50/im/person1.jpg"
    out = tmp_path / ("cut" + ext)
    args = ["remove", str(src), "-o", str(out), "--model", "sinet-portrait"] + (
        ["--background", "white"] if ext == ".jpg" else []
    )
    assert main(args) == 0
    record = io.read_provenance(out)
    pinned = catalog.load().get("sinet-portrait").weights.sha256
    assert record["task"] == "remove" and record["software"].startswith("mattekit ")
    assert record["models"] == [
        {"option": "model", "name": "sinet-portrait", "weights": "SINet.pth", "sha256": pinned, "derived": False}
    ]
    assert record["digital_source_type"] == provenance.ALGORITHMICALLY_ENHANCED
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"sha256 {pinned}" in printed and "task: remove" in printed and "algorithmicallyEnhanced" in printed
    stripped = tmp_path / ("bare" + ext)
    assert main(args[:3] + [str(stripped)] + args[4:] + ["--no-provenance"]) == 0
    assert io.read_provenance(stripped) is None


@pytest.mark.needs_data
def test_a_derived_weights_file_is_said_so_in_the_upscale_provenance(shared, mirror, tmp_path, capsys):
    converted = shared / "weights/realesr-general-x4v3.from-ncnn-fp16.pth"
    assert main(["models", "add", "realesr-general-x4v3", str(converted)]) == 2  # not the catalog's bytes
    assert "--derived" in capsys.readouterr().err
    assert main(["models", "add", "realesr-general-x4v3", str(converted), "--derived"]) == 0
    small = tmp_path / "small.png"
    io.write_image(small, np.random.default_rng(1).random((16, 20, 3), dtype=np.float32))
    assert main(["upscale", str(small), "-o", str(tmp_path / "big.png")]) == 0
    record = io.read_provenance(tmp_path / "big.png")
    assert record["models"][0]["derived"] is True and record["models"][0]["name"] == "realesr-general-x4v3"
    assert record["digital_source_type"] == provenance.COMPOSITE_WITH_TRAINED


@pytest.mark.needs_data
def test_roto_mattes_and_manifest_carry_the_provenance(shared, mirror, tmp_path):
    plate = sorted((shared / "data/davis").glob("im/*"))[0]
    out = tmp_path / "mattes/matte.####.png"
    code = subprocess.run(
        [
            sys.executable,
            "-m",
            "mattekit",
            "roto",
            str(plate),
            "-o",
            str(out),
            "--frames",
            "0-1",
            "--model",
            "sinet-portrait",
            "--radius",
            "0",
        ],
        capture_output=True,
        text=True,
    )
    assert code.returncode == 0, code.stderr
    manifest = json.loads((tmp_path / "mattes/matte.mattekit.json").read_text())
    matte = io.read_provenance(tmp_path / "mattes/matte.0000.png")
    assert _unsealed(matte) == manifest["provenance"] and matte["task"] == "roto"
    assert matte["models"][0]["sha256"] == manifest["settings"]["model"]["sha256"]
    assert matte["options"] == {"model": "sinet-portrait", "radius": 0}


def test_info_describes_every_readable_file_and_names_each_bad_one(tmp_path, capsys):
    """A bad file among several is one error line; the files after it are still described; exit status 1."""
    from PIL import Image

    good = tmp_path / "good.png"
    Image.new("RGB", (6, 4)).save(good)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)
    assert main(["info", str(tmp_path / "missing.png"), str(tmp_path / "broken.png"), str(good)]) == 1
    out, err = capsys.readouterr()
    assert out.startswith(f"{good}: PNG 6 x 4") and "no provenance recorded" in out
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("mattekit: error: ") for line in lines), lines
    assert "missing.png" in lines[0] and "broken.png" in lines[1]


def _layout_cases(folder):
    """Files of every kind `read_image` reads, each with what it should report: {path: expected Picture}."""
    import cv2
    from PIL import Image

    rng = np.random.default_rng(1)
    pixels = rng.random((10, 14, 4), dtype=np.float32)
    files = []
    for name, depth, channels in [
        ("a.png", 8, 4),
        ("b.png", 16, 3),
        ("c.png", 16, 1),
        ("d.tif", 8, 4),
        ("e.tif", 16, 4),
        ("f.jpg", 8, 3),
        ("g.webp", 8, 4),
        ("h.exr", 16, 4),
        ("i.exr", 32, 3),
        ("j.exr", 32, 1),
    ]:
        io.write_image(folder / name, pixels[..., :channels], bit_depth=depth)
        files.append(folder / name)
    Image.new("P", (9, 5)).save(folder / "k.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: read as 5 x 9
    Image.new("RGB", (9, 5)).save(folder / "l.jpg", exif=exif)
    cv2.imwrite(str(folder / "m.tif"), pixels[..., :3])  # float TIFF: OpenCV reads it, Pillow cannot
    return files + [folder / "k.png", folder / "l.jpg", folder / "m.tif"]


def test_read_layout_says_what_read_image_gives_without_the_pixels(tmp_path):
    for path in _layout_cases(tmp_path):
        picture, layout = io.read_image(path), io.read_layout(path)
        assert (layout.format, layout.height, layout.width, layout.bit_depth, layout.mode) == (
            picture.format,
            *picture.pixels.shape[:2],
            picture.bit_depth,
            picture.mode,
        ), path


def _huge_png(path, side: int) -> None:
    """A valid 1-bit black PNG of side x side pixels, written row by row (a few MB on disk)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer, row = zlib.compressobj(1), bytes(1 + (side + 7) // 8)  # filter byte, then the packed bits
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", body)
        + chunk(b"IEND", b"")
    )


def test_info_describes_an_image_too_large_to_decode(tmp_path, capsys, monkeypatch):
    """`info` reads headers only: an image over the pixel budget is described, not refused."""
    monkeypatch.setenv("MATTEKIT_MAX_PIXELS", "1e8")
    huge = tmp_path / "huge.png"
    _huge_png(huge, 30000)
    with pytest.raises(InputError, match="declares 30000x30000 pixels"):
        io.read_image(huge)  # what decoding it would say
    assert main(["info", str(huge)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == f"{huge}: PNG 30000 x 30000, 1, 8-bit" and err == "", (out, err)


def test_a_packet_with_two_records_gives_the_last_one_the_files_own():
    """An output's record is added last into a packet (mattekit.io.metadata.merged_xmp); a packet holding an earlier
    one too (an output of an output written before issue 91 left the source's record out) gives its own."""
    earlier, own = provenance.to_xmp({"task": "enhance"}), provenance.to_xmp({"task": "remove"})
    description = own[own.find(b" <rdf:Description") : own.rfind(b" </rdf:RDF>")]
    both = earlier.replace(b" </rdf:RDF>", description + b" </rdf:RDF>")
    assert both.count(b"mattekit:Record") == 2
    assert provenance.from_xmp(both)["task"] == "remove"
