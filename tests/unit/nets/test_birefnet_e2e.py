"""BiRefNet end to end with stand-in weights: checkpoint-shaped files for birefnet-general-lite (Swin-T) in each
format the catalog's files come in, loaded strictly, and `mattekit remove --model birefnet-general-lite --weights
FILE` through the CLI and the Python API, and `remove` through a real worker on loopback with the file added by
`mattekit models add` (the worker takes no weights path), the model in the menus the hosts build from the worker.

The stand-in weights are the net's own seeded initialisation; they test loading and the pipeline, not quality.
The authors' loader (``utils.check_state_dict``) strips ``module.`` and ``_orig_mod.`` prefixes, so one .pth
carries ``_orig_mod.`` keys as a ``torch.compile``'d net saves them and one a ``module.``-prefixed dict inside
``{"state_dict": ...}``. A whole-net forward at the catalog's 1024 x 1024 took 20-90 s on the 2-core build machine;
the runs here check plumbing, the same at any size, so they run at 256 x 256 (``small``: a catalog whose
birefnet-general-lite takes 256 x 256, 1/16 of the pixels). The net at 1024 is pinned by test_conformance_birefnet.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import mattekit
from mattekit import catalog, io, nets, weights
from mattekit.cli import main
from mattekit.wire.client import Pixels
from catalog_copies import small_catalog

MODEL = "birefnet-general-lite"
SMALL = 256  # input side of the plumbing runs (the catalog's is 1024; BiRefNet takes multiples of 32)


@pytest.fixture
def small(tmp_path, monkeypatch):
    """$MATTEKIT_CATALOG with birefnet-general-lite at SMALL x SMALL; the size."""
    monkeypatch.setenv("MATTEKIT_CATALOG", small_catalog(tmp_path, SMALL, MODEL))
    catalog.load.cache_clear()  # read afresh (the autouse fixture clears it again after the test)
    assert catalog.load().get(MODEL).input.size == (SMALL, SMALL)
    return SMALL


@pytest.mark.parametrize("kind", ["pth", "pth_compiled", "pth_wrapped", "safetensors"])
def test_each_checkpoint_format_loads_strictly(checkpoints, kind):
    files, state = checkpoints
    entry = catalog.load().get(MODEL)
    with torch.device("meta"):
        net = nets.build(entry.net, **entry.kwargs)
    net.load_state_dict(weights.load_state_dict_file(files[kind], net), strict=True, assign=True)
    loaded = net.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], v) for k, v in state.items()), kind


def _photo(tmp_path, height=45, width=60):
    """A small RGB photo: a bright disc on a darker gradient, 8-bit PNG."""
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([xx / width, yy / height, np.full_like(xx, 0.3, dtype=float)], -1) * 0.5
    rgb[(yy - height / 2) ** 2 + (xx - width / 2) ** 2 < (height / 3) ** 2] = (0.9, 0.8, 0.2)
    path = tmp_path / "photo.png"
    io.write_image(path, rgb.astype(np.float32))
    return path


def _is_rgba_of(path, height, width):
    image = io.read_image(path)
    assert image.has_alpha and image.pixels.shape == (height, width, 4), image.pixels.shape
    assert np.isfinite(image.pixels).all()


@pytest.mark.slow
def test_remove_through_the_cli_with_an_authors_style_pth(checkpoints, small, tmp_path):
    files, _ = checkpoints
    photo, out = _photo(tmp_path), tmp_path / "cut.png"
    start = time.perf_counter()
    assert (
        main(
            [
                "remove",
                str(photo),
                "--model",
                MODEL,
                "--weights",
                str(files["pth_compiled"]),
                "-o",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    print(f"cli remove {time.perf_counter() - start:.0f} s")
    _is_rgba_of(out, 45, 60)


@pytest.mark.slow
def test_remove_through_the_python_api_with_safetensors(checkpoints, small, tmp_path):
    files, _ = checkpoints
    photo, out = _photo(tmp_path), tmp_path / "cut.png"
    start = time.perf_counter()
    written = mattekit.remove_background(
        str(photo), output=str(out), model=MODEL, weights=str(files["safetensors"]), device="cpu"
    )
    print(f"api remove {time.perf_counter() - start:.0f} s")
    assert written == out
    _is_rgba_of(out, 45, 60)


@pytest.mark.slow
def test_remove_through_a_real_worker_with_an_added_stand_in_file(checkpoints, small, make_worker, tmp_path):
    files, _ = checkpoints
    assert main(["models", "add", MODEL, str(files["pth"]), "--derived"]) == 0  # not the authors' file: derived
    _, worker = make_worker(threads=2)
    menus = worker.schema()["models"]["segment"]  # what the GIMP dialogs and the Blender enums list
    assert {"birefnet-general", MODEL, "birefnet-dis"} <= {m["name"] for m in menus}
    photo = np.asarray(io.read_image(_photo(tmp_path)).pixels[..., :3] * 255 + 0.5, np.uint8)
    start = time.perf_counter()
    (out,) = worker.run("remove", [Pixels(photo.tobytes(), 60, 45, 3, "u8")], {"model": MODEL, "result": "alpha"})
    print(f"worker remove {time.perf_counter() - start:.0f} s")
    (record,) = out.provenance["models"]
    assert record["name"] == MODEL and record["derived"] is True, record
    assert (out.width, out.height, out.channels, out.dtype, len(out.data)) == (60, 45, 1, "u8", 45 * 60)
