"""Runtime: input sizing policies, preprocessing, one predictor per model."""

from __future__ import annotations

import numpy as np
import pytest

from mattekit import catalog, runtime
from mattekit.engines import inputs
from mattekit.catalog import InputSpec
from mattekit.errors import MattekitError
from mattekit.options import model_choice


def test_input_size_policies():
    assert InputSpec(size=(320, 320)).net_size(480, 640) == (320, 320)
    # Depth Anything: keep aspect, short side >= 518, multiples of 14.
    h, w = InputSpec(short_side=518, multiple=14).net_size(480, 640)
    assert h % 14 == 0 and w % 14 == 0 and min(h, w) >= 518 and abs(w / h - 640 / 480) < 0.05
    # MODNet: inside the reference size nothing changes but the multiple of 32.
    assert InputSpec(ref_size=512, multiple=32).net_size(400, 600) == (384, 576)
    assert InputSpec(ref_size=512, multiple=32).net_size(1000, 2000) == (512, 1024)
    # BiRefNet_dynamic: the photo's own size floored to multiples of 32, shrunk (aspect kept) to a long side <= 2304
    dynamic = catalog.load().get("birefnet-dynamic").input
    assert dynamic.net_size(6000, 8000) == (1728, 2304)  # 50 MP 4:3
    assert dynamic.net_size(8000, 6000) == (2304, 1728)
    assert dynamic.net_size(450, 600) == (448, 576)  # small photos at (about) their own size
    assert dynamic.net_size(20, 30) == (32, 32)
    assert catalog.load().get("birefnet-hr").input.size == (2048, 2048)


def test_a_big_photo_model_without_the_memory_it_needs_is_one_sentence(monkeypatch):
    """The big-photo BiRefNets declare their measured peak (catalog ``memory_gb``); on a CPU with less free the
    load is refused before any weights are looked for, not left to swap or to the kernel's OOM killer."""
    from mattekit.engines import policy

    monkeypatch.setattr(policy, "available_memory", lambda device: 4 * 2**30)
    with pytest.raises(
        MattekitError,
        match=r"^Model 'birefnet-hr' needs about 13.5 GiB of memory on the CPU and "
        r"4.0 GiB is free; .*birefnet-general",
    ):
        runtime.ModelCache().get(model_choice("birefnet-hr", "segment"), "cpu")
    assert catalog.load().get("birefnet-dynamic").memory_gb == 13
    assert catalog.load().get("birefnet-general").memory_gb is None  # the 1024 px ones fit (4.8 GiB)


def test_prepare_bgr_quirk_of_the_portrait_nets():
    """SINet's input: ((x255 - mean) / std) / 255 in BGR order, as the conformance golden was made."""
    image = np.zeros((224, 224, 3), np.float32)
    image[..., 0] = 1.0  # pure red
    x = inputs.prepare(catalog.load().get("sinet-portrait"), image)
    assert x.shape == (1, 3, 224, 224)
    expected_red = (255 - 132.35703) / 68.29726 / 255  # red is the last channel in BGR
    assert abs(float(x[0, 2, 0, 0]) - expected_red) < 1e-6
    assert abs(float(x[0, 0, 0, 0]) - (0 - 107.304565) / 63.97182 / 255) < 1e-6


def test_one_predictor_per_model_and_cache(shared, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    cache, other = runtime.ModelCache(), runtime.ModelCache()
    a = cache.get(model_choice("extremec3-portrait", "segment"), "cpu")
    assert cache.get(model_choice("extremec3-portrait", "segment"), "cpu") is a
    assert other.get(model_choice("extremec3-portrait", "segment"), "cpu") is not a  # caches are owned, not global
    cache.clear()
    assert cache.loaded() == []


def test_weights_that_do_not_fit_are_a_sentence(shared, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    with pytest.raises(MattekitError, match="does not fit model 'sinet-portrait'"):
        runtime.ModelCache().get(
            model_choice("sinet-portrait", "segment"), "cpu", weights_path=shared / "weights/ExtremeC3.pth"
        )


def test_a_loads_plan_holds_the_file_its_model_is_built_from(shared, monkeypatch):
    """A load's plan (ModelCache.plan) holds the weights file found for it, and the model loaded from that plan runs
    with that file; a plan made without loading (doctor's) holds none, and no engine is built from it."""
    from mattekit import engines
    from mattekit.engines.plan import decide

    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    cache, entry = runtime.ModelCache(), catalog.load().get("extremec3-portrait")
    plan = cache.plan(entry, "cpu")
    predictor = cache.get(model_choice("extremec3-portrait", "segment"), "cpu")
    assert predictor.plan is plan and predictor.weights_path == plan.recipe.weights and plan.recipe.weights.is_file()
    assert plan.recipe.spec == {"net": entry.net, "kwargs": entry.kwargs}
    assert decide(entry, "cpu").recipe is None
    with pytest.raises(ValueError, match="a load's plan"):
        engines.build(decide(entry, "cpu"))
