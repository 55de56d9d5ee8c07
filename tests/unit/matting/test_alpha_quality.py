"""Alpha on real data (alphamatting.com): against closed-form matting, pinned on wide trimaps, ``remove``'s matting
of a mask by default, and MODNet through the catalog (stand-in weights)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from alphamatting_data import alphamatting
from conformance_checks import assert_close
from mattekit import catalog, io, runtime
from mattekit.finish import edge
from mattekit.subject import answer
from mattekit.matting import estimate_alpha
from mattekit.matting import trimap as trimaps
from mattekit.tasks import matte, remove
from mattekit.options import model_choice, ModelChoice


@pytest.fixture
def mirror(shared, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.delenv("MATTEKIT_OFFLINE", raising=False)


def sad_mse(alpha, gt, trimap):
    unknown = trimaps.split(trimap)[2]
    d = alpha[unknown].astype(np.float64) - gt[unknown]
    return np.abs(d).sum() / 1000, (d**2).mean() * 1e3


@pytest.mark.slow
def test_alpha_beats_closed_form_matting_on_alphamatting(shared):
    """SAD and MSE below pymatting's closed-form matting on the same trimaps; both times printed, not compared
    (a wall-clock race on shared build machines; `mattekit bench matte` is where speed is measured)."""
    pymatting = pytest.importorskip("pymatting")
    names = ("GT01.png", "GT05.png", "GT19.png")
    small = alphamatting(shared, "GT19.png")
    pymatting.estimate_alpha_cf(small[0][::8, ::8].astype(np.float64), small[1][::8, ::8].astype(np.float64))  # JIT
    estimate_alpha(*alphamatting(shared, "GT05.png")[:2])  # warm-up
    ours, theirs, t_ours, t_theirs = [], [], 0.0, 0.0
    for name in names:
        image, trimap, gt = alphamatting(shared, name)
        t0 = time.perf_counter()
        alpha = estimate_alpha(image, trimap)
        t1 = time.perf_counter()
        cf = np.clip(pymatting.estimate_alpha_cf(image.astype(np.float64), trimap.astype(np.float64)), 0, 1)
        t2 = time.perf_counter()
        t_ours, t_theirs = t_ours + t1 - t0, t_theirs + t2 - t1
        assert alpha.shape == gt.shape and alpha.dtype == np.float32 and 0 <= alpha.min() and alpha.max() <= 1
        fg, bg, _ = trimaps.split(trimap)
        assert (alpha[fg] == 1).all() and (alpha[bg] == 0).all()
        ours.append(sad_mse(alpha, gt, trimap))
        theirs.append(sad_mse(cf, gt, trimap))
    ours, theirs = np.mean(ours, 0), np.mean(theirs, 0)
    print(f"SAD/MSE mattekit {ours.round(3)} closed-form {theirs.round(3)}; s {t_ours:.2f} vs {t_theirs:.2f}")
    assert ours[0] < theirs[0] and ours[1] < theirs[1]


def test_alpha_quality_pins_on_wide_trimaps(shared):
    """Trimap2 (wide unknown regions) on two hard images: pinned near the measured figures."""
    sad, mse = zip(
        *(
            sad_mse(estimate_alpha(im, t), gt, t)
            for im, t, gt in (alphamatting(shared, n, "Trimap2") for n in ("GT13.png", "GT09.png"))
        )
    )
    print(f"Trimap2 GT13/GT09 SAD {np.round(sad, 2)} MSE {np.round(mse, 2)}")
    # closed-form matting: SAD 18.69 / 6.55, MSE 48.1 / 17.0 on these two
    assert sad[0] < 14 and sad[1] < 5.5 and mse[0] < 25 and mse[1] < 10


def test_remove_mattes_by_default_and_beats_the_mask(shared, mirror):
    predictor = runtime.ModelCache().get(model_choice("csnet-sod", "segment"), "cpu")
    mask_mae, matte_mae = [], []
    for name in ("GT05.png", "GT17.png", "GT19.png"):
        image, _, gt = alphamatting(shared, name)
        mask = answer.predict_mask(predictor, image)
        alpha = edge.alpha_from_mask(image, mask)  # what remove does by default
        mask_mae.append(np.abs(mask - gt).mean())
        matte_mae.append(np.abs(alpha - gt).mean())
    print(f"alpha MAE mask {np.mean(mask_mae):.4f} matted {np.mean(matte_mae):.4f}")
    assert np.mean(matte_mae) < 0.8 * np.mean(mask_mae)
    task = remove.TASK
    plain = remove.TASK.make_options({"matting": False, "result": "alpha"})
    assert np.array_equal(task.run({"model": predictor}, {"image": image}, plain)["result"], mask)
    rgba = task.run({"model": predictor}, {"image": image}, remove.RemoveOptions())["result"]
    assert rgba.shape[-1] == 4 and np.allclose(rgba[..., 3], alpha)
    assert not np.allclose(rgba[..., :3], image), "cut-outs carry decontaminated colours"


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_modnet_portrait_through_the_catalog_with_stand_in_weights(golden, tmp_path, shared):
    entry = catalog.load().get("modnet-portrait", "matte")
    assert entry.task == "matte" and entry.licence == "Apache-2.0" and entry.notice is None  # relicensed by its authors
    assert "modnet-portrait" not in catalog.load().defaults.values()
    g = golden("modnet")
    net = __import__("mattekit.nets", fromlist=["build"]).build(entry.net, **entry.kwargs)
    path = tmp_path / "modnet_stand_in.ckpt"
    torch.save({"state_dict": {"module." + k: v for k, v in g.pseudo_state_dict(net).items()}}, path)
    predictor = runtime.ModelCache().get(ModelChoice(entry.name, entry), device="cpu", weights_path=path)
    assert_close(predictor(g.tensor("input")), g.arrays["pred_matte"], 1e-4, "pred_matte via catalog")
    image = io.read_image(shared / "data/grabcut50/im/person4.jpg").pixels
    options = matte.MatteOptions(model="modnet-portrait", result="alpha")
    alpha = matte.TASK.run({"model": predictor}, {"image": image}, options)["result"]
    assert alpha.shape == image.shape[:2] and alpha.dtype == np.float32 and 0 <= alpha.min() <= alpha.max() <= 1
