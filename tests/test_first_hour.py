"""Issue 47 ("The first hour, again, and the hostile inputs that still get through"): odd images, names, files,
pipes and flags a user meets in the first hour each end in one sentence (or simply work), never "Internal error",
and what needs no model is refused before a model loads."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mattekit import io
from mattekit.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    io.write_image(path, np.random.default_rng(0).random((24, 32, 3)).astype(np.float32))
    return path


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """Offline, an empty cache and an empty mirror: a run that gets as far as loading a model fails on its weights."""
    (tmp_path / "empty-mirror").mkdir()
    monkeypatch.setenv("MATTEKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MATTEKIT_MIRROR", str(tmp_path / "empty-mirror"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "no-rembg"))


def error_line(capsys) -> str:
    """The one line a refused command printed on stderr."""
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mattekit: error: "), lines
    return lines[0].removeprefix("mattekit: error: ")


# ------------------------------------------------------------------ item 7: strips, long names, closed pipes

def test_foreground_of_a_1x65535_strip_is_estimated():
    """Item 7: OpenCV's remap takes planes under 32767 px a side; the strip's levels are longer (it was "Internal
    error (error: OpenCV(...) remap ...)"). The strip's colours equal the same pixels solved as a column."""
    from mattekit.matting import estimate_foreground

    rng = np.random.default_rng(1)
    image = rng.random((1, 65535, 3)).astype(np.float32)
    alpha = (0.5 + 0.5 * np.sin(np.arange(65535) / 50.0)).astype(np.float32)[None]
    fg = estimate_foreground(image, alpha)
    assert fg.shape == (1, 65535, 3) and np.isfinite(fg).all()
    column = estimate_foreground(image.transpose(1, 0, 2).copy(), alpha.T.copy())
    assert np.abs(fg - column.transpose(1, 0, 2)).max() < 1e-4


def test_a_1x65535_strip_photo_is_cut_out(shared, tmp_path, monkeypatch):
    """Item 7, as a user met it: `mattekit remove strip.png` on a 1 x 65535 photo ended in "Internal error"."""
    monkeypatch.setenv("MATTEKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    strip = tmp_path / "strip.png"
    ramp = np.linspace(0, 1, 65535, dtype=np.float32)
    io.write_image(strip, np.stack([ramp, ramp[::-1], np.full_like(ramp, 0.5)], -1)[None])
    assert main(["remove", str(strip), "--model", "sinet-portrait", "-o", str(tmp_path / "cut.png")]) == 0
    assert io.read_image(tmp_path / "cut.png").pixels.shape == (1, 65535, 4)
