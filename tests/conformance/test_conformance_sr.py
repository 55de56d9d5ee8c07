"""Conformance of the super-resolution nets (SRVGGNetCompact, RRDBNet, RFDN) against the goldens."""

from __future__ import annotations

import pytest
import torch
from conformance_checks import assert_close, slow_params

from mattekit.nets import build
from mattekit.weights import load_state_dict_file


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() yields shared ones once


def _kwargs(manifest: dict) -> dict:
    return dict(manifest["upstream"]["kwargs"])


def _run(model, x):
    with torch.no_grad():
        return model(x)


def _atol(expected_max_abs: float) -> float:
    """1e-4 relative to the output magnitude (at least 1e-4)."""
    return 1e-4 * max(1.0, expected_max_abs)


PSEUDO = [
    ("srvgg_general_x4v3", "srvgg:SRVGGNetCompact"),
    ("srvgg_animevideov3", "srvgg:SRVGGNetCompact"),
    ("rrdbnet_x4plus", "rrdbnet:RRDBNet"),
    ("rrdbnet_x2plus", "rrdbnet:RRDBNet"),
]


@pytest.mark.parametrize("arch,spec", slow_params(PSEUDO, ("rrdbnet_x4plus", "rrdbnet_x2plus")))  # 35-70 s, busy
def test_pseudo_golden(golden, arch, spec):
    g = golden(arch)
    model = build(spec, **_kwargs(g.manifest)).eval()
    assert _n_params(model) == g.manifest["n_params"]
    model.load_state_dict(g.pseudo_state_dict(model), strict=True)
    prefixes = [""] + [extra["prefix"] for extra in g.manifest.get("extra_inputs", [])]
    for prefix in prefixes:
        expected = g.arrays[f"{prefix}out"]
        out = _run(model, g.tensor(f"{prefix}input"))
        assert_close(out, expected, _atol(abs(expected).max()), f"{arch} {prefix}out")


REAL = [
    ("rfdn_real", "rfdn:RFDN", "RFDN_AIM.pth"),
    ("animevideov3_real", "srvgg:SRVGGNetCompact", "realesr-animevideov3.pth"),
]


@pytest.mark.parametrize("arch,spec,weights", REAL)
def test_real_golden(golden, shared, arch, spec, weights):
    g = golden(arch)
    model = build(spec, **_kwargs(g.manifest)).eval()
    assert _n_params(model) == g.manifest["n_params"]
    model.load_state_dict(load_state_dict_file(shared / "weights" / weights), strict=True)
    for i in range(len(g.manifest["inputs"])):
        expected = g.arrays[f"output_{i}"]
        out = _run(model, g.tensor(f"input_{i}"))
        assert_close(out, expected, _atol(abs(expected).max()), f"{arch} output_{i}")
