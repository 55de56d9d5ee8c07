"""Fixtures of the tasks' tests: the shared weights folder as the mirror, with the network allowed."""

from __future__ import annotations

import pytest


@pytest.fixture
def mirror(shared, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.delenv("MATTEKIT_OFFLINE", raising=False)
