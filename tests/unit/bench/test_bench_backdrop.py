"""`mattekit bench see-through` and `bench two-shots --timed` run with a named model (they handed the name to the
model cache, which takes a model choice: an internal error), and their contact sheets and `bench shadow`'s show each
cut-out over a checkerboard and over a coloured background."""

from __future__ import annotations

import numpy as np
import pytest

from mattekit import io
from mattekit.bench import shadow
from mattekit.cli import main


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["see-through", "two-shots"])
def test_the_see_through_and_two_shot_benches_run_with_a_named_model_and_write_their_sheet(kind, shared, tmp_path):
    sheet = tmp_path / "sheet.png"
    timed = ["--timed"] if kind == "two-shots" else []
    args = ["bench", kind, "--data", str(shared / "data"), "--generator", "drawn", "--count", "1", "--model", "u2netp"]
    assert main(args + timed + ["--sheet", str(sheet)]) == 0
    picture = io.read_image(str(sheet)).pixels
    assert picture.shape[:2] == (2 * 360, 4 * 480), "a row per pair (glass, opaque), four columns"
    behind = picture[:360, 3 * 480 :, :3].reshape(-1, 3)  # the glass over the coloured background
    assert np.abs(behind.mean(0) - [0.15, 0.35, 0.75]).max() < 0.1, "the colour shows where the glass is clear"


def test_the_shadow_sheet_shows_the_cut_out_over_a_checkerboard_and_a_colour():
    photo, matte = np.full((32, 48, 3), 0.5, np.float32), np.zeros((32, 48), np.float32)
    clear = np.zeros((32, 48, 4), np.float32)  # a cut-out with nothing in it: the backgrounds alone
    sheet = shadow.contact_sheet([(photo, clear, matte)])
    assert sheet.shape == (32, 4 * 48, 3)
    checks = sheet[:, 48:96, 0]
    assert np.allclose(np.unique(checks), [0.6, 0.9]) and checks[0, 0] != checks[0, 16]
    assert np.allclose(sheet[:, 96:144], sheet[0, 96]) and np.ptp(sheet[0, 96]) > 0.3, "one strong colour"
