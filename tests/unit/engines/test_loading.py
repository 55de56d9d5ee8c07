"""A catalog model's net loaded with its weights (mattekit.engines.load_net): built empty on the meta device,
its random initialisation skipped, where the checkpoint fills every tensor; built as before where it cannot."""

from __future__ import annotations

import pytest
import torch

from mattekit import catalog, engines, nets


def _built_as_before(entry, path, monkeypatch):
    monkeypatch.setattr(engines, "_empty_net", lambda *_: None)
    net = engines.load_net(entry, path)
    monkeypatch.undo()
    return net


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_real_weights_load_into_an_empty_net_as_into_a_built_one(shared, monkeypatch):
    entry = catalog.load().get("sinet-portrait")
    path = shared / "weights" / "SINet.pth"
    assert engines._empty_net(entry, path) is not None, "SINet's checkpoint fills every tensor of its net"
    net, before = engines.load_net(entry, path), _built_as_before(entry, path, monkeypatch)
    assert not any(t.is_meta for t in [*net.parameters(), *net.buffers()])
    assert list(net.state_dict()) == list(before.state_dict())
    for key, value in net.state_dict().items():
        assert value.dtype == before.state_dict()[key].dtype and torch.equal(value, before.state_dict()[key]), key
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(net(x)[0], before(x)[0])


def test_a_half_precision_checkpoint_is_cast_to_fp32_in_an_empty_net(tmp_path, monkeypatch):
    entry = catalog.load().get("u2netp")
    torch.manual_seed(0)
    state = {
        k: v.half() if v.is_floating_point() else v
        for k, v in nets.build(entry.net, **entry.kwargs).state_dict().items()
    }
    path = tmp_path / "u2netp-fp16.pth"
    torch.save(state, path)
    net, before = engines.load_net(entry, path), _built_as_before(entry, path, monkeypatch)
    assert all(p.dtype is torch.float32 for p in net.parameters())
    for key, value in net.state_dict().items():
        assert torch.equal(value, before.state_dict()[key]), key


def test_a_net_with_tensors_no_checkpoint_holds_is_built_as_before(tmp_path, monkeypatch):
    rvm = catalog.load().get("rvm-people")  # RVM's backbone keeps its normalisation in non-persistent buffers
    assert engines._empty_net(rvm, tmp_path / "rvm.pth") is None
    sinet = catalog.load().get("sinet-portrait")
    assert engines._empty_net(sinet, tmp_path / "x.onnx") is None  # a release mapped through a traced net

    class Plain(torch.nn.Module):  # a plain tensor attribute, made in __init__: no state dict holds it
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 1, 1)
            self.scale = torch.tensor(2.0)

    class Listed(torch.nn.Module):  # tensors kept in a list
        def __init__(self):
            super().__init__()
            self.levels = [torch.zeros(1), torch.ones(1)]

    class Reading(torch.nn.Module):  # a constructor that reads a tensor's value, which the meta device has not
        def __init__(self):
            super().__init__()
            self.width = int(torch.tensor(3.0).item())

    for made in (Plain, Listed, Reading):
        monkeypatch.setattr(nets, "build", lambda spec, _made=made, **kwargs: _made())
        assert engines._empty_net(sinet, tmp_path / "x.pth") is None, made.__name__
    monkeypatch.setattr(nets, "build", lambda spec, **kwargs: torch.nn.Sequential(torch.nn.Conv2d(3, 1, 1)))
    assert engines._empty_net(sinet, tmp_path / "x.pth") is not None
