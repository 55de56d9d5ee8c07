"""Conformance of the portrait segmenters (SINet, ExtremeC3Net) against real-weight goldens."""

from __future__ import annotations

import pytest
import torch
from conformance_checks import assert_close

from mattekit.nets import build
from mattekit.weights import load_state_dict_file

CASES = {
    "sinet_real": ("sinet:SINet", dict(classes=2, p=2, q=8, chnn=1), "SINet.pth"),
    "extremec3_real": ("extremec3:ExtremeC3Net", dict(classes=1, p=1, q=5), "ExtremeC3.pth"),
}


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
@pytest.mark.parametrize("arch", list(CASES))
def test_portrait_real_weights(arch, golden, shared):
    spec, kwargs, ckpt = CASES[arch]
    g = golden(arch)
    assert g.manifest["upstream"]["kwargs"] == kwargs
    model = build(spec, **kwargs).eval()
    assert sum(p.numel() for p in model.parameters()) == g.manifest["n_params"]

    sd = load_state_dict_file(shared / "weights" / ckpt)
    assert len(sd) == g.manifest["checkpoint"]["n_keys"]
    # ExtremeC3.pth predates BatchNorm's num_batches_tracked (63 keys absent). BatchNorm's
    # versioned loader adds them (version 1 in _metadata, or no metadata at all), so strict holds.
    model.load_state_dict(sd, strict=True)

    n_inputs = len(g.manifest["inputs"])
    assert n_inputs == 2
    with torch.no_grad():
        for i in range(n_inputs):
            out = model(g.tensor(f"input_{i}"))
            assert_close(out, g.arrays[f"output_{i}"], 1e-4, f"{arch} output_{i}")
