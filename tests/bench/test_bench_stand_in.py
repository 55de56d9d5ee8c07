"""`bench speed --stand-in` / `bench engines --stand-in`: stand-in weights the package makes itself (the catalog
row's net, seeded, its batch norms calibrated), the same on every build, finite and not degenerate; the bench
runs with no test data anywhere, and without --data and MATTEKIT_TEST_DATA it is refused in one sentence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mattekit import catalog, nets
from mattekit_bench.stand_in import CALIBRATION_PHOTO, stand_in_state, write_stand_in
from mattekit.cli import main


def _stand_in_net(name: str) -> tuple[torch.nn.Module, tuple[int, int]]:
    """The catalog model ``name``'s net holding its stand-in weights (eval mode), and its (H, W) for a photo."""
    entry = catalog.load().get(name)
    net = nets.build(entry.net, **entry.kwargs).eval()
    net.load_state_dict(stand_in_state(entry), strict=True)
    return net, entry.input.net_size(*CALIBRATION_PHOTO)


def test_stand_in_weights_are_the_same_on_two_builds_finite_and_leave_the_seed_alone(tmp_path):
    """Two builds write the same bytes (an ONNX export cached by the file's hash is found again); the state
    dict has the net's keys, shapes and dtypes, finite values, and batch norms calibrated (not the init's 0/1)."""
    entry = catalog.load().get("sinet-portrait")
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = write_stand_in(entry, tmp_path / "first")
    assert torch.equal(torch.rand(3), expected_next)  # torch's global random state as it was
    second = write_stand_in(entry, tmp_path / "second")
    assert first.read_bytes() == second.read_bytes()
    state = torch.load(first, weights_only=True)
    own = nets.build(entry.net, **entry.kwargs).state_dict()
    assert state.keys() == own.keys()
    for key, value in state.items():
        assert value.shape == own[key].shape and value.dtype == own[key].dtype, key
        if value.is_floating_point():
            assert torch.isfinite(value).all(), key
    variances = [v for k, v in state.items() if k.endswith("running_var")]
    assert variances and all((v > 0).all() for v in variances)
    assert not any(torch.equal(v, torch.ones_like(v)) for v in variances)


@pytest.mark.parametrize("name", ["sinet-portrait", pytest.param("csnet-sod", marks=pytest.mark.slow)])
def test_stand_in_masks_vary_with_the_image(name):
    """Not degenerate: in inference mode the mask (sigmoid of the main output) varies over each image and
    between two images instead of collapsing to one value; every value finite. (CSNet's convs hold no value
    until its own init fills them like ``nn.Conv2d``'s.)"""
    net, size = _stand_in_net(name)
    generator = torch.Generator().manual_seed(7)
    images = torch.randn((2, 3) + tuple(size), generator=generator)
    with torch.no_grad():
        out = net(images)
    masks = torch.sigmoid((out[0] if isinstance(out, (list, tuple)) else out).float())
    assert torch.isfinite(masks).all()
    assert all(float(m.std()) > 1e-3 for m in masks), [float(m.std()) for m in masks]
    assert float((masks[0] - masks[1]).abs().mean()) > 1e-3


@pytest.mark.slow
def test_bench_speed_stand_in_runs_with_no_test_data(tmp_path, monkeypatch, capsys):
    """Two generated photos, MATTEKIT_TEST_DATA and the weights mirror pointing nowhere: the bench makes its
    weights itself and measures."""
    monkeypatch.setenv("MATTEKIT_TEST_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("MATTEKIT_MIRROR", str(tmp_path / "no-mirror"))
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(photos / f"p{i}.png")
    code = main(
        [
            "bench",
            "speed",
            "--stand-in",
            "--model",
            "u2netp",
            "--no-rembg",
            "--limit",
            "2",
            "--data",
            str(photos),
            "--device",
            "cpu",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    line = next(line for line in out.splitlines() if "engine vs eager PyTorch" in line)
    assert float(line.split()[-1]) < 1e-3, line
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize(
    "data, said",
    [
        (None, "Give a folder of images with --data."),
        ("missing", "is not a folder: give a folder of images with --data."),
    ],
)
def test_bench_speed_without_a_folder_of_images_is_one_sentence(data, said, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MATTEKIT_TEST_DATA", raising=False)
    argv = ["bench", "speed", "--stand-in", "--model", "u2netp", "--no-rembg", "--keep", str(tmp_path / "keep")]
    code = main(argv + (["--data", str(tmp_path / data)] if data else []))
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert said in err and err.count("\n") == 0, err
    assert not (tmp_path / "keep").exists()  # refused before anything was made


def test_bench_engines_stand_in_runs_with_no_test_data(tmp_path, monkeypatch, capsys):
    """`bench engines --stand-in` times both engines on the stand-in module and records it as such."""
    pytest.importorskip("onnxruntime")
    import json

    from mattekit.engines import plan

    monkeypatch.setenv("MATTEKIT_TEST_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("MATTEKIT_CPU_CLASS", "test-class")
    code = main(["bench", "engines", "--model", "sinet-portrait", "--stand-in", "--repeat", "1", "--save"])
    out = capsys.readouterr().out
    assert code == 0, out
    row = json.loads(plan.own_table_path().read_text())[plan.fingerprint()]["sinet-portrait"]
    assert row["weights"] == "stand-in" and row["torch_s"] > 0 and row["onnx_s"] > 0 and row["max_diff"] < 1e-4


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_birefnet_general_stand_in_calibrates_its_pooled_norms_and_is_not_degenerate():
    """BiRefNet general (Swin-L; calibrated at 256 x 256 here to keep the test short, the bench uses 1024 x 1024):
    its ASPP batch norms after global pooling see one value per channel at batch 1, which training mode refuses;
    they take that value as their mean and keep variance 1, every other norm is measured, and the mask varies
    over an image and between two."""
    import dataclasses

    entry = catalog.load().get("birefnet-general")
    small = dataclasses.replace(entry, input=dataclasses.replace(entry.input, size=(256, 256)))
    state = stand_in_state(small)
    pooled = [k for k in state if ".global_avg_pool.2.running_var" in k]
    assert len(pooled) == 5 and all(torch.equal(state[k], torch.ones_like(state[k])) for k in pooled)
    assert all(not torch.equal(state[k.replace("_var", "_mean")], torch.zeros(256)) for k in pooled)
    measured = [v for k, v in state.items() if k.endswith("running_var") and k not in pooled]
    assert measured and not any(torch.equal(v, torch.ones_like(v)) for v in measured)
    net = nets.build(entry.net, **entry.kwargs).eval()
    net.load_state_dict(state, strict=True)
    images = torch.randn((2, 3, 256, 256), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        masks = torch.sigmoid(net(images)[0])
    assert torch.isfinite(masks).all() and all(float(m.std()) > 1e-3 for m in masks)
    assert float((masks[0] - masks[1]).abs().mean()) > 1e-3
