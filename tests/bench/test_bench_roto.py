"""`mattekit bench roto`: its first-box hint, the box around the first frame's ground truth, is the same Box value
roto's keyframe hints hold (mattekit.roto.tracking.box_of), carried to the end."""

from __future__ import annotations

import json

import pytest

from mattekit.cli import main


@pytest.fixture
def mirror(shared, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    return shared / "weights"


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_a_first_box_hint_is_scored_beside_no_hint(shared, mirror, tmp_path):
    """Two DAVIS dog frames, csnet-sod: a row without a hint and one with the first frame's box (which ended in an
    internal error while the box was a text where a Box was read)."""
    out = tmp_path / "rows.json"
    assert (
        main(
            [
                "bench",
                "roto",
                "--data",
                str(shared / "data" / "davis"),
                "--sequences",
                "dog",
                "--limit",
                "2",
                "--model",
                "csnet-sod",
                "--device",
                "cpu",
                "--threads",
                "1",
                "--radius",
                "1",
                "--hint",
                "first-box",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    figures = json.loads(out.read_text())
    assert [row["hint"] for row in figures["sequences"]] == ["no hint", "first-box"]
    assert 0.5 < figures["mean_hinted"]["J"]["temporal"] <= 1.0
