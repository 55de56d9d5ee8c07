"""An output replaces, without --overwrite, only mattekit's own earlier output as it wrote it: the provenance record
is sealed with the written file's own digest, so a cut-out retouched in an editor that keeps the XMP, another picture
with the packet pasted in, or a link to mattekit's output each need --overwrite (one sentence). (That the seal
changes only the record: tests/unit/test_provenance.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from mattekit import io
from mattekit.cli import main
from mattekit.provenance import FILE_DIGEST

QUICK = ["--no-white-balance", "--no-contrast", "--no-denoise"]


@pytest.fixture
def own(tmp_path):
    """(run(output, *flags) -> exit code: ``mattekit enhance`` of a small photo into ``output``, mattekit's own output
    of that run, written)."""
    src = tmp_path / "photo.png"
    io.write_image(src, np.random.default_rng(3).random((24, 32, 3)).astype(np.float32))

    def run(output, *flags) -> int:
        return main(["enhance", str(src), "-o", str(output), *QUICK, *flags])

    out = tmp_path / "own.png"
    assert run(out) == 0
    return run, out


def _refused(capsys, target) -> None:
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"mattekit: error: {target} already exists and is not an output of mattekit's left as written (another file, "
        f"or one changed since); move it away, choose another -o, or use --overwrite to replace it."
    ], lines


def _xmp(path) -> bytes:
    with Image.open(path) as im:
        return im.info["XML:com.adobe.xmp"].encode()


def test_a_re_run_replaces_its_own_output_as_written(own, capsys):
    run, out = own
    assert run(out) == 0 and run(out) == 0
    assert io.read_provenance(out)[FILE_DIGEST].startswith("sha256:")


def test_a_cut_out_retouched_in_an_editor_that_keeps_the_xmp_needs_overwrite(own, capsys):
    """GIMP and Photoshop keep the XMP of a file they save: its record is there, its pixels are not mattekit's."""
    run, out = own
    capsys.readouterr()
    with Image.open(out) as im:
        pixels = np.asarray(im).copy()
    pixels[3, 4] = 255 - pixels[3, 4]  # one pixel retouched
    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", _xmp(out).decode())
    Image.fromarray(pixels).save(out, pnginfo=info)
    assert io.read_provenance(out)["task"] == "enhance"  # the record kept
    retouched = out.read_bytes()
    assert run(out) == 2
    _refused(capsys, out)
    assert out.read_bytes() == retouched
    assert run(out, "--overwrite") == 0 and out.read_bytes() != retouched


def test_another_picture_with_the_packet_pasted_in_needs_overwrite(own, tmp_path, capsys):
    run, out = own
    capsys.readouterr()
    other = tmp_path / "holiday.png"
    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", _xmp(out).decode())
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(other, pnginfo=info)
    before = other.read_bytes()
    assert run(other) == 2
    _refused(capsys, other)
    assert other.read_bytes() == before


def test_a_link_to_mattekits_own_output_needs_overwrite(own, tmp_path, capsys):
    """The rule looks at the file at the output's name, never through a link put there (to mattekit's own output or
    to the user's file: the run would replace the link, and a link is not mattekit's)."""
    run, out = own
    capsys.readouterr()
    link = tmp_path / "link.png"
    link.symlink_to(out)
    before = out.read_bytes()
    assert run(link) == 2
    _refused(capsys, link)
    assert link.is_symlink() and out.read_bytes() == before


def test_an_output_of_an_output_kept_personal_carries_its_own_record_only(own, tmp_path, capsys):
    """--keep-personal on an input that is itself mattekit's output: the input's record is not carried, so ``mattekit
    info`` names the last command (its options) and a re-run replaces that output without --overwrite."""
    _, first = own
    second = tmp_path / "second.png"
    again = ["enhance", str(first), "-o", str(second), *QUICK, "--strength", "0.5", "--keep-personal"]
    assert main(again) == 0
    capsys.readouterr()
    assert main(["info", str(second)]) == 0
    assert "strength=0.5" in capsys.readouterr().out
    assert _xmp(second).count(b"mattekit:Record") == 1
    assert main(again) == 0, capsys.readouterr().err
