"""BiRefNet's ONNX releases (rembg's ``~/.u2net/birefnet-*.onnx``) run through ONNX Runtime as they are:
:mod:`mattekit.onnx_import` cannot map Swin's LayerNorms onto the module, so the file's own graph runs, with the
catalog's preprocessing (1024 x 1024, ImageNet mean/std) and postprocessing (sigmoid, back to the photo's size).

The file here is an ONNX export of the stand-in birefnet-general-lite module (the net's seeded initialisation):
it proves the path and that both engines give the same mask, not quality, the same at any size: the export and
the two forwards run at 512 x 512 (a catalog whose birefnet-general-lite takes 512 x 512, 1/4 of the catalog's
1024 x 1024 pixels, where they took minutes on the 2-core build machine). Not smaller: the backbone also runs on
the input at half size, and below 480 x 480 its last Swin stage fits in one window, where the legacy ONNX exporter
fails on the shift mask's empty slice. Marked slow all the same (an export and two whole-net forwards).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import mattekit
from mattekit import catalog, io, nets, weights
from mattekit.engines.torch_engine import Selected
from catalog_copies import small_catalog

SIDE = 512  # the export's and the forwards' input side (the catalog's is 1024)

MODEL = "birefnet-general-lite"
PHOTO = "data/grabcut50/im/106024.jpg"


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    """(a .pth of the stand-in weights, an ONNX export of the same module at SIDE x SIDE, opset 17)."""
    entry = catalog.load().get(MODEL)
    torch.manual_seed(0)
    net = nets.build(entry.net, **entry.kwargs).eval()
    folder = tmp_path_factory.mktemp("birefnet_onnx")
    pth, onnx = folder / "stand-in.pth", folder / "birefnet-general-lite.onnx"
    torch.save(net.state_dict(), pth)
    with torch.no_grad():
        torch.onnx.export(
            Selected(net, entry.output.index).eval(),
            (torch.rand(1, 3, SIDE, SIDE),),
            str(onnx),
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["logits"],
        )
    return pth, onnx


@pytest.mark.slow
def test_an_unmappable_onnx_release_runs_as_it_is_with_the_torch_paths_mask(shared, stand_in, tmp_path, monkeypatch):
    monkeypatch.setenv("MATTEKIT_CATALOG", small_catalog(tmp_path, SIDE))
    catalog.load.cache_clear()  # read afresh (the autouse fixture clears it again after the test)
    assert catalog.load().get(MODEL).input.size == (SIDE, SIDE)
    pth, onnx = stand_in
    photo = np.asarray(Image.open(shared / PHOTO).convert("RGB"), np.float32) / 255.0
    as_is = mattekit.load_model(MODEL, device="cpu", weights=str(onnx))
    plain = mattekit.load_model(MODEL, device="cpu", weights=str(pth))
    assert as_is.backend == "onnx-file-cpu-fp32" and as_is.net is None, as_is.backend
    assert not plain.backend.startswith("onnx"), plain.backend
    masks = [
        mattekit.remove_background(photo, model=m, result="alpha", refine=False, matting=False) for m in (as_is, plain)
    ]
    assert masks[0].shape == masks[1].shape == photo.shape[:2]
    assert float(masks[1].std()) > 1e-3  # not a flat map, so a preprocessing slip would show
    delta = float(np.abs(masks[0] - masks[1]).mean())
    print(f"mean |delta| as-is ONNX vs torch: {delta:.2e}")
    assert delta <= 1e-3


def test_without_onnx_runtime_an_unmappable_release_stops_with_one_sentence(tmp_path):
    """A base install has no onnxruntime: ``sys.modules["onnxruntime"] = None`` makes its import fail the same way."""
    release, photo = tmp_path / "birefnet-general-lite.onnx", tmp_path / "photo.png"
    release.write_bytes(b"never read: ONNX Runtime is missing first")
    io.write_image(photo, np.full((8, 8, 3), 0.5, np.float32))
    code = (
        "import sys; sys.modules['onnxruntime'] = None\nfrom mattekit.cli import main\n"
        f"sys.exit(main(['remove', {str(photo)!r}, '--model', {MODEL!r}, '--weights', {str(release)!r}, "
        f"'-o', {str(tmp_path / 'out.png')!r}, '--device', 'cpu']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    err = done.stderr.strip()
    assert done.returncode != 0 and "Traceback" not in err, err
    assert "pip install 'mattekit[onnx]'" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out.png").exists()


def test_models_add_takes_an_as_is_release_only_at_the_catalogs_input_size(tmp_path, capsys):
    """`mattekit models add --derived` checks an .onnx file that will run as it is by loading it in ONNX Runtime and
    reading its input shape (a one-convolution graph stands in: nothing else of the file is checked)."""
    from mattekit.cli import main

    conv = torch.nn.Conv2d(3, 1, 1).eval()
    for side in (1024, 512):
        with torch.no_grad():
            torch.onnx.export(
                conv,
                (torch.rand(1, 3, side, side),),
                str(tmp_path / f"conv{side}.onnx"),
                dynamo=False,
                opset_version=17,
            )
    assert main(["models", "add", MODEL, str(tmp_path / "conv512.onnx"), "--derived"]) != 0
    assert "not the 1 x 3 x 1024 x 1024 of model 'birefnet-general-lite'" in capsys.readouterr().err
    assert weights.added(MODEL) is None
    assert main(["models", "add", MODEL, str(tmp_path / "conv1024.onnx"), "--derived"]) == 0
    assert weights.added(MODEL)["derived"] is True
