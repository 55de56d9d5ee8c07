"""Conformance of Depth Anything V2 (vits) and MODNet against the upstream goldens (stand-in weights)."""

from __future__ import annotations

import pytest
import torch

from conformance_checks import assert_close
from mattekit.nets import build

ATOL = 1e-4
DA_BLOCKS = [2, 5, 8, 11]


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() counts shared modules once


def _loaded(golden, arch: str, spec: str, **kwargs):
    g = golden(arch)
    model = build(spec, **kwargs)
    model.load_state_dict(g.pseudo_state_dict(model), strict=True)
    return g, model.eval()


@pytest.fixture(scope="module")
def depth(golden):
    return _loaded(
        golden,
        "depth_anything_v2_vits",
        "depth_anything:DepthAnythingV2",
        encoder="vits",
        features=64,
        out_channels=[48, 96, 192, 384],
    )


@pytest.fixture(scope="module")
def modnet(golden):
    return _loaded(golden, "modnet", "modnet:MODNet", in_channels=3, hr_channels=32, backbone_pretrained=False)


def test_depth_anything_n_params(depth):
    g, model = depth
    assert _n_params(model) == g.manifest["n_params"]
    assert len(model.state_dict()) == g.manifest["n_state_dict_entries"]


@pytest.mark.parametrize("prefix", ["", "nonsq_"])
def test_depth_anything_conformance(depth, prefix):
    g, model = depth
    x = g.tensor(prefix + "input")
    with torch.no_grad():
        out = model(x)
        aux = model.pretrained.get_intermediate_layers(x, DA_BLOCKS)
    assert_close(out, g.arrays[prefix + "depth"], ATOL, prefix + "depth")
    assert len(aux) == len(DA_BLOCKS)
    for i, (tokens, cls) in enumerate(aux):
        assert_close(tokens, g.arrays[f"{prefix}aux_tokens_{i}"], ATOL, f"{prefix}aux_tokens_{i}")
        assert_close(cls, g.arrays[f"{prefix}aux_cls_{i}"], ATOL, f"{prefix}aux_cls_{i}")


def test_modnet_n_params(modnet):
    g, model = modnet
    assert _n_params(model) == g.manifest["n_params"]
    keys = model.state_dict().keys()
    assert len(keys) == g.manifest["n_state_dict_entries"]
    assert sum(k.startswith("backbone.") for k in keys) == sum(k.startswith("lr_branch.backbone.") for k in keys)


def test_modnet_lr_branch_backbone_copy_wins(golden, modnet):
    g, model = modnet
    sd = g.pseudo_state_dict(model)
    key = "backbone.model.features.0.0.weight"
    assert not torch.equal(sd[key], sd["lr_branch." + key])  # stand-in copies differ
    assert model.backbone is model.lr_branch.backbone
    assert torch.equal(model.backbone.model.features[0][0].weight, sd["lr_branch." + key])


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_modnet_conformance(modnet):
    g, model = modnet
    x = g.tensor("input")
    with torch.no_grad():
        outs = model(x, inference=False)
        infer = model(x, inference=True)
    assert isinstance(outs, tuple) and len(outs) == 3
    for name, out in zip(("pred_semantic", "pred_detail", "pred_matte"), outs):
        assert_close(out, g.arrays[name], ATOL, name)
    assert infer[0] is None and infer[1] is None
    assert_close(infer[2], g.arrays["pred_matte"], ATOL, "pred_matte (inference=True)")
