"""Fixtures of weights, for every test folder (a pytest plugin: tests/conftest.py names it): the shared mirror's real
files, and stand-ins made with the real nets' shapes, saved as the official files are, once per session."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from catalog_copies import SAM_SIDE, small_sam_catalog
from mattekit import catalog, nets


@pytest.fixture
def mirror(shared, monkeypatch):
    """Weights from the shared mirror (MATTEKIT_MIRROR), never from the network (MATTEKIT_OFFLINE=1, which a local
    mirror still serves); the mirror's folder. (Some test modules define their own ``mirror``, which wins there.)"""
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    return shared / "weights"


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """BiRefNet_lite (birefnet-general-lite) stand-in weights, seeded: ({format: path} of the same weights as .pth, as
    torch.compile's and a wrapper's .pth, and as .safetensors; the state dict itself)."""
    from safetensors.torch import save_file

    entry = catalog.load().get("birefnet-general-lite")
    torch.manual_seed(0)
    net = nets.build(entry.net, **entry.kwargs)
    state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    folder = tmp_path_factory.mktemp("birefnet_weights")
    files = {
        "pth": folder / "stand-in.pth",
        "pth_compiled": folder / "stand-in-compiled.pth",
        "pth_wrapped": folder / "stand-in-wrapped.pth",
        "safetensors": folder / "stand-in.safetensors",
    }
    torch.save(state, files["pth"])
    torch.save({"_orig_mod." + k: v for k, v in state.items()}, files["pth_compiled"])
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, files["pth_wrapped"])
    save_file(state, str(files["safetensors"]))
    return files, state


@pytest.fixture(scope="session")
def stand_in(shared, tmp_path_factory):
    """SAM 2.1 Hiera-T stand-in weights (the conformance manifest's) saved as the official file is:
    {"model": state_dict}; the file's path."""
    from mattekit.nets.sam2.model import SAM2

    folder = shared / "conformance" / "sam2_1_hiera_t_image"
    manifest = json.loads((folder / "manifest.json").read_text())
    spec = importlib.util.spec_from_file_location("pseudo_weights", folder.parent / "pseudo_weights.py")
    pseudo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pseudo)
    own = SAM2("hiera_t").state_dict()
    path = tmp_path_factory.mktemp("sam") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": pseudo.pseudo_state_dict(manifest["state_dict"], own)}, path)
    return path


@pytest.fixture
def small_sam(tmp_path, monkeypatch):
    """$MATTEKIT_CATALOG with sam2.1-hiera-tiny at SAM_SIDE x SAM_SIDE (:func:`catalog_copies.small_sam_catalog`); the
    side."""
    monkeypatch.setenv("MATTEKIT_CATALOG", small_sam_catalog(tmp_path))
    catalog.load.cache_clear()  # read afresh (the autouse fixture clears it again after the test)
    assert catalog.load().get("sam2.1-hiera-tiny", "prompt").kwargs["image_size"] == SAM_SIDE
    return SAM_SIDE
