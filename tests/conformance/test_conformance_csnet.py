"""Conformance of CSNet (csnet-L-x2, real SOD100K checkpoint) against the upstream golden outputs."""

from __future__ import annotations

import pytest
import torch
from conformance_checks import assert_close

from mattekit.nets import build
from mattekit.nets.csnet import CSNET_L_X2
from mattekit.weights import load_state_dict_file

ARCH = "csnet_real"


@pytest.fixture(scope="module")
def model(golden, shared):
    g = golden(ARCH)
    net = build("csnet:CSNet", layer_config=g.manifest["upstream"]["layer_config_from_bin"], num_classes=1)
    path = shared / "weights" / g.manifest["checkpoint"]["file"]
    net.load_state_dict(load_state_dict_file(path), strict=True)
    return net.eval()


def test_config_constant_matches_manifest(golden):
    assert CSNET_L_X2 == golden(ARCH).manifest["upstream"]["layer_config_from_bin"]


def test_n_params(model, golden):
    assert sum(p.numel() for p in model.parameters()) == golden(ARCH).manifest["n_params"]


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_outputs(model, golden):
    g = golden(ARCH)
    with torch.no_grad():
        for i, spec in enumerate(g.manifest["inputs"]):
            out = model(g.tensor(spec["name"]))
            assert_close(out, g.arrays[f"output_{i}"], 1e-4, f"output_{i}")
