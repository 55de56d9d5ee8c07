"""`mattekit bench two-shots` and `bench see-through` on generator A's drawn shots (:mod:`mattekit_bench.backdrop_scenes`):
their table, the CPU time of remove two ways with --timed, and the contact sheet; a --count out of range refused in one
sentence; a sheet's cells over a checkerboard and a colour."""

from __future__ import annotations

import numpy as np
import pytest

from mattekit import io
from mattekit_bench.turns import BLUE, checks, over
from mattekit.cli import main


@pytest.mark.slow  # remove --second-shot on two pairs, and remove two ways: 8-25 s on a shared 2-core machine
@pytest.mark.parametrize("bench, column", [("two-shots", 1), ("see-through", 2)])
def test_a_backdrop_bench_prints_each_kind_its_cpu_time_and_a_contact_sheet(
    bench, column, shared, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    argv = ["bench", bench, "--data", str(shared / "data"), "--generator", "drawn", "--model", "u2netp"]
    assert main(argv + ["--count", "15"]) == 2
    assert "--count takes 1 to 14, not 15." in capsys.readouterr().err
    sheet = tmp_path / "sheet.png"
    assert main(argv + ["--count", "1", "--timed", "--sheet", str(sheet)]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("drawn ")]
    assert sorted(row[column] for row in rows) == ["glass", "opaque"], out
    assert "CPU time (all threads) of remove" in out and f"wrote {sheet}" in out
    picture = io.read_image(str(sheet)).pixels
    assert picture.shape == (2 * 360, 4 * 480, 3)  # a row a pair: four cells of 360 x 480
    behind = picture[:360, 3 * 480 :].reshape(-1, 3)  # the glass over the coloured background
    assert np.abs(behind.mean(0) - BLUE).max() < 0.1, "the colour shows where the glass is clear"


def test_a_sheets_cut_out_shows_over_a_checkerboard_and_a_colour():
    clear = np.zeros((32, 48, 4), np.float32)  # a cut-out with nothing in it: the backgrounds alone
    grid = over(clear, checks(32, 48))[..., 0]
    assert np.allclose(np.unique(grid), [0.6, 0.9]) and grid[0, 0] != grid[0, 16]
    assert np.allclose(over(clear, BLUE), BLUE)
