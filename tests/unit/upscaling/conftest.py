"""Fixtures of the upscaling tests: realesr-animevideov3 from the shared user file, loaded on the CPU."""

from __future__ import annotations

import pytest

from mattekit import runtime
from mattekit.options import model_choice
from upscale_inputs import ANIME


@pytest.fixture
def anime(shared):
    """realesr-animevideov3 from the shared user file, loaded on the CPU."""
    return runtime.ModelCache().get(
        model_choice("realesr-animevideov3", "upscale"), "cpu", str(shared / "weights" / ANIME)
    )
