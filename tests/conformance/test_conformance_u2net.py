"""Conformance of U2NET, U2NETP and ISNetDIS against the upstream goldens (pseudo weights)."""

from __future__ import annotations

import pytest
import torch
from conformance_checks import assert_close, slow_params

from mattekit.nets import build

SPECS = {"u2net": "u2net:U2NET", "u2netp": "u2net:U2NETP", "isnetdis": "isnet:ISNetDIS"}


def _flatten(arch, out):
    """The model's return value as a flat list, after checking its structure against upstream."""
    if arch == "isnetdis":
        assert isinstance(out, tuple) and len(out) == 2
        assert all(isinstance(part, list) and len(part) == 6 for part in out)
        return out[0] + out[1]
    assert isinstance(out, tuple) and len(out) == 7
    return list(out)


@pytest.mark.parametrize("arch", slow_params(SPECS, ("u2net",)))  # 31 s on a busy 2-core machine
def test_conformance(arch, golden):
    g = golden(arch)
    man = g.manifest
    model = build(SPECS[arch], **man["upstream"]["kwargs"])
    model.load_state_dict(g.pseudo_state_dict(model), strict=True)
    model.eval()
    assert sum(p.numel() for p in model.parameters()) == man["n_params"]

    runs = [("", man["outputs"]["order"])] + [(e["prefix"], e["outputs"]) for e in man["extra_inputs"]]
    errors = {}
    with torch.no_grad():
        for prefix, outputs in runs:
            got = _flatten(arch, model(g.tensor(prefix + "input")))
            assert len(got) == len(outputs)
            for tensor, (key, _) in zip(got, outputs):
                errors[key] = assert_close(tensor, g.arrays[key], 1e-4, f"{arch}.{key}")
    print(arch, {k: f"{v:.2e}" for k, v in errors.items()})
