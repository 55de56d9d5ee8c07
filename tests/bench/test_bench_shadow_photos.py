"""`mattekit bench shadow --photos … --sheet FILE`: a sheet of real photos without known shadows, one row a photo
(the photo, its cut-out with its shadow over a checkerboard and over a colour, the shadow matte)."""

from __future__ import annotations

import pytest

from mattekit import io
from mattekit.cli import main
from mattekit.ops.pixels import unit_float
from mattekit_bench.shadow import PHOTO_ROW


@pytest.mark.slow  # (u2netp twice on each of two photos, ~5 s on a shared 2-core machine)
def test_a_table_photo_keeps_its_shadow_and_a_patterned_cloth_is_left_empty(shared, tmp_path, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    photos = [shared / "data" / "grabcut50" / "im" / name for name in ("elefant.png", "scissors.JPG")]
    sheet = tmp_path / "sheet.png"
    argv = ["bench", "shadow", "--model", "u2netp", "--photos", *map(str, photos), "--sheet", str(sheet)]
    assert main(argv) == 0
    pixels = unit_float(io.read_image(str(sheet)).pixels)
    assert pixels.shape[0] == 2 * PHOTO_ROW, "one row a photo"
    widths = [round(w * PHOTO_ROW / h) for h, w in (io.read_image(str(p)).pixels.shape[:2] for p in photos)]
    table_matte = pixels[:PHOTO_ROW, 3 * widths[0] : 4 * widths[0], 0]
    cloth_matte = pixels[PHOTO_ROW:, 3 * widths[1] : 4 * widths[1], 0]
    assert (table_matte > 0.15).mean() > 0.01, "the elephant's shadow on the table is kept"
    assert cloth_matte.max() < 0.02, "the patterned cloth's matte is left empty"


def test_photos_without_a_sheet_is_one_sentence(shared, capsys):
    assert main(["bench", "shadow", "--photos", str(shared / "data" / "grabcut50" / "im" / "elefant.png")]) == 2
    assert "give --sheet FILE too" in capsys.readouterr().err
