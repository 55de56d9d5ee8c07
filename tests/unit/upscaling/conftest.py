"""Fixtures of the upscaling tests: realesr-animevideov3 from the shared user file, loaded on the CPU."""

from __future__ import annotations

import pytest

from mattekit import runtime
from upscale_inputs import ANIME


@pytest.fixture
def anime(shared):
    """realesr-animevideov3 from the shared user file, loaded on the CPU."""
    return runtime.ModelCache().get("realesr-animevideov3", "upscale", "cpu", str(shared / "weights" / ANIME))
