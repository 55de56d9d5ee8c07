"""Shared fixtures: the read-only test data folder (MATTEKIT_TEST_DATA) and conformance helpers."""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch


def _shared_dir() -> Path:
    value = os.environ.get("MATTEKIT_TEST_DATA")
    if not value:
        raise pytest.UsageError(
            "MATTEKIT_TEST_DATA is not set: point it at the shared test data folder (../shared)."
        )
    path = Path(value).resolve()
    if not (path / "conformance").is_dir():
        raise pytest.UsageError(f"MATTEKIT_TEST_DATA={value} has no conformance/ folder.")
    return path


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared data root: conformance/, weights/, data/."""
    return _shared_dir()


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own weights cache, so no test sees another's downloads."""
    home = tmp_path_factory.mktemp("mattekit_home")
    monkeypatch.setenv("MATTEKIT_HOME", str(home))
    torch.set_num_threads(2)


class Golden:
    """One conformance folder: its manifest, its arrays, and stand-in weights."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.manifest = json.loads((folder / "manifest.json").read_text())
        with np.load(folder / "golden.npz") as npz:
            self.arrays = {k: npz[k] for k in npz.files}

    def tensor(self, name: str) -> torch.Tensor:
        return torch.from_numpy(self.arrays[name])

    def pseudo_state_dict(self, model: torch.nn.Module) -> dict:
        spec = importlib.util.spec_from_file_location(
            "pseudo_weights", self.folder.parent / "pseudo_weights.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.pseudo_state_dict(self.manifest["state_dict"], model.state_dict())


@pytest.fixture(scope="session")
def golden(shared):
    """golden('u2net') -> Golden for shared/conformance/u2net."""
    cache: dict[str, Golden] = {}

    def load(arch: str) -> Golden:
        if arch not in cache:
            cache[arch] = Golden(shared / "conformance" / arch)
        return cache[arch]

    return load


def assert_close(actual: torch.Tensor, expected, atol: float, what: str = "") -> float:
    """Assert max |actual - expected| <= atol; return the max error for reporting."""
    expected = torch.as_tensor(np.asarray(expected))
    assert tuple(actual.shape) == tuple(expected.shape), f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    err = (actual.detach().float() - expected.float()).abs().max().item()
    assert err <= atol, f"{what}: max abs error {err:.3g} > {atol:g}"
    return err
