"""Per-file runs: outputs never replace inputs or each other, and one bad file never stops a folder."""
from __future__ import annotations

import numpy as np
import pytest

from mattekit import io
from mattekit.cli import main


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("base.png", "base.jpg", "base.tif", "other.png"):
        io.write_image(folder / name, rng.random((20, 30, 3)).astype(np.float32))
    return folder


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_an_output_that_is_an_input_is_refused_and_nothing_changes(photos, capsys):
    before = _snapshot(photos)
    assert main(["enhance", str(photos), "-o", str(photos)]) == 2
    assert "is an input" in capsys.readouterr().err
    assert main(["enhance", str(photos / "other.png"), "-o", str(photos / "other.png")]) == 2
    assert _snapshot(photos) == before


def test_same_stems_get_distinct_names_and_the_summary_matches_the_disk(photos, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["enhance", str(photos), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["base_jpg.jpg", "base_png.png", "base_tif.tif", "other.png"]
    assert main(["enhance", str(photos / "base.png"), str(photos / "base.jpg")]) == 0
    assert {"base_png_enhanced.png", "base_jpg_enhanced.jpg"} <= {p.name for p in photos.iterdir()}


def test_a_bad_file_is_listed_and_the_others_are_written(photos, tmp_path, capsys):
    (photos / "broken.png").write_bytes((photos / "other.png").read_bytes()[:60])  # truncated
    out = tmp_path / "out"
    assert main(["enhance", str(photos), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "1 of 5 images failed" in err and "broken.png" in err and "Traceback" not in err
    assert len(list(out.iterdir())) == 4
