"""The ``matte`` command: its outputs (cut-out, alpha, foreground, a mask's matte over a blurred background, EXR,
16-bit), its errors in one sentence, and ``bench matte``'s table."""

from __future__ import annotations

import numpy as np

from mattekit import io
from mattekit.cli import main
from mattekit.matting import trimap as trimaps


def test_matte_command_outputs(shared, tmp_path):
    root = shared / "data/alphamatting"
    src, tri = root / "im/GT19.png", root / "trimap/Trimap1/GT19.png"
    image = io.read_image(src).pixels
    out = tmp_path / "cut.png"
    assert main(["matte", str(src), "--trimap", str(tri), "-o", str(out)]) == 0
    cut = io.read_image(out)
    assert cut.has_alpha and cut.pixels.shape[:2] == image.shape[:2]
    trimap = trimaps.normalise(io.read_image(tri).pixels)
    assert (cut.pixels[..., 3][trimap == 1] > 0.99).all() and (cut.pixels[..., 3][trimap == 0] < 0.01).all()
    assert main(["matte", str(src), "--trimap", str(tri), "-o", str(tmp_path / "a.png"), "--result", "alpha"]) == 0
    alpha = io.read_image(tmp_path / "a.png")
    assert not alpha.has_alpha and np.abs(alpha.pixels[..., 0] - cut.pixels[..., 3]).max() < 1 / 255 + 1e-6
    assert main(["matte", str(src), "--trimap", str(tri), "-o", str(tmp_path / "f.png"), "--result", "foreground"]) == 0
    assert not io.read_image(tmp_path / "f.png").has_alpha
    assert (
        main(
            [
                "matte",
                str(src),
                "--mask",
                str(root / "gt/GT19.png"),
                "-o",
                str(tmp_path / "m.png"),
                "--background",
                "blur",
                "--shadow",
            ]
        )
        == 0
    )
    assert io.read_image(tmp_path / "m.png").pixels.shape == image.shape[:2] + (3,)
    assert main(["matte", str(src), "--trimap", str(tri), "-o", str(tmp_path / "cut.exr")]) == 0
    exr = io.read_image(tmp_path / "cut.exr")  # premultiplied on disk, straight once read
    assert exr.has_alpha and np.abs(exr.pixels[..., 3] - cut.pixels[..., 3]).max() < 1 / 255 + 1e-3  # 8-bit PNG vs half
    solid = cut.pixels[..., 3] > 0.5
    assert np.abs(exr.pixels[..., :3][solid] - cut.pixels[..., :3][solid]).max() < 0.01
    deep = tmp_path / "deep.png"
    io.write_image(deep, image, bit_depth=16)
    assert main(["matte", str(deep), "--trimap", str(tri)]) == 0
    assert io.read_image(tmp_path / "deep_matte.png").bit_depth == 16


def test_matte_command_errors_are_sentences(shared, tmp_path, capsys):
    root = shared / "data/alphamatting"
    assert main(["matte", str(root / "im/GT19.png"), "--trimap", str(root / "trimap/Trimap1/GT01.png")]) == 2
    err = capsys.readouterr().err
    assert "same size" in err and err.count("mattekit: error:") == 1
    assert main(["matte", str(root / "im/GT19.png"), "--trimap", str(tmp_path / "none.png")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_bench_matte_prints_the_table(shared, capsys):
    assert (
        main(
            [
                "bench",
                "matte",
                "--data",
                str(shared / "data/alphamatting"),
                "--trimaps",
                "Trimap1",
                "--limit",
                "2",
                "--no-reference",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    for row in ("SAD (/1000)", "MSE (x1e3)", "gradient (/1000)", "s/image", "Trimap1: 2 images"):
        assert row in out
    lines = out.splitlines()  # one line per image, with its half (even index in sorted order = tuning)
    assert any(line.split()[:3] == ["GT01", "Trimap1", "tuning"] for line in lines)
    assert any(line.split()[:3] == ["GT03", "Trimap1", "report"] for line in lines)
