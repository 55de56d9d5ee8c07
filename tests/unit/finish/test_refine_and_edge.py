"""The finish of a network's prediction (mattekit.finish.refine, mattekit.finish.edge): the uncertain band, its
edge-aware refinement and matting in tiles, the second pass."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mattekit import io
from mattekit_bench import metrics
from mattekit.ops import regions
from mattekit.ops.filters import guided_filter
from mattekit.ops.regions import tiles_holding
from mattekit.ops.resizing import resize, resized_map, shrunk
from mattekit.finish import edge, refine
from mattekit.subject import answer
from mattekit.options import model_choice
from mask_scores import gt_mask


def test_refinement_follows_photo_edges(shared, mirror):
    """On a few grabcut50 images the refined mask scores higher boundary F than plain upsampling."""
    from mattekit import runtime

    predictor = runtime.ModelCache().get(model_choice("csnet-sod", "segment"), "cpu")
    plain_bf, refined_bf = [], []
    for name in ("106024.jpg", "189080.jpg", "209070.jpg", "teddy.jpg", "person4.jpg"):
        image = io.read_image(shared / "data/grabcut50/im" / name).pixels
        low = predictor.predict_map(image)
        gt = gt_mask(shared, name)
        plain_bf.append(metrics.boundary_f(np.clip(resize(low, *image.shape[:2]), 0, 1), gt))
        refined_bf.append(metrics.boundary_f(refine.refine_mask(image, low), gt))
    assert np.mean(refined_bf) > np.mean(plain_bf)


def _edge_scene(size: int = 96, step: int = 8):
    """A dark/bright photo split by a vertical edge at column 37 (off the low grid), its exact mask, and a
    blurry low-resolution prediction of it (the mask area-shrunk ``step`` times, then blurred)."""
    truth = np.zeros((size, size), np.float32)
    truth[:, 37:] = 1.0
    image = np.repeat((0.2 + 0.6 * truth)[..., None], 3, axis=2)
    image += np.random.default_rng(0).normal(0, 0.01, image.shape).astype(np.float32)
    low = cv2.GaussianBlur(resize(truth, size // step, size // step, "area"), (0, 0), 1.0)
    return np.clip(image, 0, 1), truth, low


def test_sure_regions_are_the_models_own_rounded():
    """Outside the uncertain band the default mask is the plain model's, rounded to 0 or 1."""
    image, _, low = _edge_scene()
    plain = resized_map(low, *image.shape[:2])
    refined = refine.refine_mask(image, low)
    band = refine.edge_band(plain, grow=max(1, round(refine.GROW * 8)))
    assert band.any() and not band.all()
    assert np.array_equal(refined[~band], (plain[~band] >= 0.5).astype(np.float32))
    assert set(np.unique(refine.round_sure(plain.copy())[~refine.unsure(plain)])) <= {0.0, 1.0}


def test_band_tiles_give_the_whole_image_filter(monkeypatch):
    """Work in small tiles around the band equals the guided filter over the whole image, inside the band
    (an upsampling factor of 4, the coefficients at 4 px per network px: the filter runs at full resolution, no
    subsampling)."""
    image, _, low = _edge_scene(size=160, step=4)
    image[40:90, 100:140] = 0.9  # a second edge elsewhere: several tiles hold band pixels
    monkeypatch.setattr(refine, "TILE", 32)
    monkeypatch.setattr(refine, "COEFFICIENTS", 4.0)
    tiled = refine.refine_mask(image, low)
    plain = resized_map(low, *image.shape[:2])
    factor = image.shape[0] / low.shape[0]
    whole = np.clip(guided_filter(image, plain, max(2, round(refine.RADIUS * factor)), eps=refine.EPS), 0, 1)
    band = refine.edge_band(plain, max(1, round(refine.GROW * factor)))
    assert len(tiles_holding(refine.unsure(plain), 1, 32)) < (160 // 32) ** 2
    assert np.allclose(tiled[band], refine.round_sure(whole)[band], atol=1e-5)


def test_band_tiled_matting_is_the_whole_image_matting(shared, monkeypatch):
    """Matting in small tiles around the unsure band (each with its margin and the photo's size-dependent
    choices) gives the one-piece matting's alpha inside the band: mean difference under 0.005 and 95 %
    of pixels within 0.02 (measured 0.001 / 0.005 on these: the solve is global, so a few pixels near
    0.5 on a tile's edge differ more)."""
    root = shared / "data/grabcut50"
    for name in sorted(p.name for p in (root / "im").iterdir())[:2]:
        image = io.read_image(root / "im" / name).pixels[..., :3]
        gt = io.read_image(next((root / "gt").glob(Path(name).stem + ".*"))).pixels[..., 0]
        mask = cv2.GaussianBlur((gt > 0.75).astype(np.float32), (0, 0), 3.0)
        monkeypatch.setattr(edge, "MATTE_TILE", 10**6)
        whole = edge.alpha_from_mask(image, mask)
        monkeypatch.setattr(edge, "MATTE_TILE", 96)
        assert len(tiles_holding(refine.unsure(mask), 2, 96)) > 4
        tiled = edge.alpha_from_mask(image, mask)
        band = refine.unsure(mask)
        difference = np.abs(tiled - whole)[band]
        assert difference.mean() < 0.005 and np.quantile(difference, 0.95) < 0.02
        assert np.array_equal(tiled >= 0.5, mask >= 0.5)  # each pixel keeps the mask's side


def test_default_pipeline_sharpens_a_blurry_edge():
    image, truth, low = _edge_scene()
    plain = resized_map(low, *image.shape[:2])
    alpha = edge.alpha_from_mask(image, refine.refine_mask(image, low))
    gt = (truth * 255).astype(np.uint8)
    assert metrics.mae(alpha, gt) < 0.5 * metrics.mae(plain, gt)
    assert metrics.iou(alpha, gt) >= metrics.iou(plain, gt)


def test_matting_keeps_the_masks_side_of_half():
    """The matte softens the edge but never moves it across 0.5; a mask without unsure pixels is left alone."""
    image, _, low = _edge_scene()
    mask = resized_map(low, *image.shape[:2])
    alpha = edge.alpha_from_mask(image, mask)
    assert np.array_equal(alpha >= 0.5, mask >= 0.5) and not np.array_equal(alpha, mask)
    hard = (mask >= 0.5).astype(np.float32)
    assert edge.alpha_from_mask(image, hard) is hard


def test_unsure_is_strictly_between_the_known_levels():
    """unsure: strictly between 0.1 and 0.9 (OpenCV's one-pass range for float32 maps, numpy's comparison
    otherwise), at the float32 neighbours of the levels, on strided views, and never at NaN."""
    lo, hi = np.float32(0.1), np.float32(0.9)
    values = [lo, np.nextafter(lo, np.float32(1)), 0.5, np.nextafter(hi, np.float32(0)), hi, np.nan, 0.0, 1.0, -0.0]
    m = np.array([values, values[::-1]], np.float32)
    want = (m > 0.1) & (m < 0.9)
    assert want.any() and not want.all()
    assert np.array_equal(refine.unsure(m), want) and refine.unsure(m).dtype == bool
    assert np.array_equal(refine.unsure(m[:, ::2]), want[:, ::2])
    assert np.array_equal(
        refine.unsure(m.astype(np.float64)), (m.astype(np.float64) > 0.1) & (m.astype(np.float64) < 0.9)
    )
    rounded = refine.round_sure(m.copy())
    assert np.array_equal(rounded[want], m[want]) and set(rounded[~want & ~np.isnan(m)]) == {0.0, 1.0}


def test_the_finish_on_every_core_is_the_one_thread_finish_byte_for_byte(shared, monkeypatch):
    """Refinement and decontamination spread their tiles over threads (each_tile): a 2.4 MP
    grabcut50 photo (several tiles of each stage) gives the same RGBA bytes on one thread and on four (forced, so a
    1-core machine takes the threaded path too)."""
    from mattekit.finish import cutout
    from mattekit.tasks.common import CutoutOptions

    photo = io.read_image(shared / "data/grabcut50/im/106024.jpg", integers=True).pixels
    photo = cv2.resize(photo, (1924, 1284), interpolation=cv2.INTER_CUBIC)
    truth = cv2.imread(str(shared / "data/grabcut50/gt/106024.png"), cv2.IMREAD_GRAYSCALE) > 127
    low = cv2.GaussianBlur(cv2.resize(truth.astype(np.float32), (320, 320), interpolation=cv2.INTER_AREA), (0, 0), 2)

    def finish() -> np.ndarray:
        mask = refine.mask_from_prediction(photo, low, refine=True)
        alpha = edge.alpha_from_mask(photo, mask, matting=True, in_place=True)
        return cutout.cut_out(photo, alpha, CutoutOptions())

    monkeypatch.setenv("MATTEKIT_FINISH_THREADS", "1")
    alone = finish()
    monkeypatch.delenv("MATTEKIT_FINISH_THREADS")
    monkeypatch.setattr(regions, "cpu_count", lambda: 4)
    spread = finish()
    assert alone.dtype == np.uint8 and 0 < (alone[..., 3] % 255 != 0).mean() < 0.2  # a soft edge was made
    assert alone.tobytes() == spread.tobytes()


def test_the_working_scale_follows_the_network_and_the_mattes_solve():
    """The finish shrinks the photo by the largest power of two keeping WORK px per network px and twice the
    whole photo's matte solve resolution per side: never for an ordinary photo, 2 from about 6 MP, 4 at 50 MP."""
    assert edge.WORK == 2.0
    cases = {
        (100.0, 480, 640): 1,
        (3.97, 788, 1269): 1,
        (3.04, 1931, 3108): 1,
        (9.71, 1931, 3108): 2,
        (6.07, 3861, 6215): 2,
        (3.9, 3861, 6215): 1,
        (8.76, 5573, 8971): 4,
        (28.0, 5573, 8971): 4,
    }
    assert {case: edge.working_scale(*case) for case in cases} == cases
    assert answer.detail_of(5573, 8971, np.zeros((1024, 1024), np.float32)) == 8971 / 1024


def test_shrunk_is_the_block_means_and_the_leftover_blocks_means():
    """shrunk: each output pixel the mean of its scale x scale block (an integer photo rounded to its own
    integers), the last row and column the mean of the leftover rows and columns; float32 in [0,1]."""
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    values = rng.random((37, 53), dtype=np.float32)
    small, plane = shrunk(photo, 4), shrunk(values, 4)
    assert small.shape == (10, 14, 3) and plane.shape == (10, 14) and small.dtype == plane.dtype == np.float32
    for y, x in ((0, 0), (3, 7), (9, 5), (4, 13), (9, 13)):
        block = (slice(4 * y, 4 * y + 4), slice(4 * x, 4 * x + 4))
        assert np.abs(small[y, x] - photo[block].mean((0, 1)) / 255).max() <= 0.5 / 255 + 1e-6
        assert abs(plane[y, x] - values[block].mean()) < 1e-6


@pytest.mark.slow
def test_the_carried_matte_scores_as_the_full_size_matte(shared):
    """A 6 MP photo the network saw coarsely (alphamatting photos enlarged 4x, 3200 px, the mask from a 160-px
    prediction: 20 photo px per network px) is matted at half size and carried back by the colours: SAD against
    the true alpha within 6 % of the full-size matte's, together well below the masks', each pixel on the mask's
    side of 0.5. (Measured: GT05 9.65 against 9.87, GT17 24.93 against 23.83; the masks 16.36 and 24.64.)"""
    root = shared / "data/alphamatting"
    sads = []
    for name in ("GT05.png", "GT17.png"):
        image = io.read_image(root / "im" / name, integers=True).pixels[..., :3]
        truth = io.read_image(root / "gt" / name).pixels[..., 0]
        size = (4 * image.shape[1], 4 * image.shape[0])
        image, truth = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC), cv2.resize(truth, size)
        low = cv2.resize(truth, (160, 160), interpolation=cv2.INTER_AREA)
        mask = refine.mask_from_prediction(image, low)
        detail = answer.detail_of(*image.shape[:2], low)
        assert edge.working_scale(detail, *image.shape[:2]) == 2
        full = edge.alpha_from_mask(image, mask)
        carried = edge.alpha_from_mask(image, mask, detail=detail)
        sads.append([float(np.abs(a - truth).sum()) for a in (carried, full, mask)])
        assert np.array_equal(carried >= 0.5, mask >= 0.5) and not np.array_equal(carried, full)
    print("SAD carried / full / mask", np.round(np.array(sads) / 1000, 2))
    assert all(carried < 1.06 * full for carried, full, _ in sads)
    assert sum(s[0] for s in sads) < 0.9 * sum(s[2] for s in sads)


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_the_edge_is_matted_where_the_models_catalog_entry_says(shared, mirror):
    """``remove`` with a model whose catalog entry turns edge matting off (IS-Net's rule) gives the refined mask as
    the alpha, its soft edge's colours still decontaminated; with it on (u2netp's) the edge is matted, which on these
    alphamatting photos brings the alpha closer to the true one (its purpose), and ``--no-matting`` leaves the
    photo's colours."""
    import copy
    from dataclasses import replace

    from mattekit import runtime
    from mattekit.tasks import remove

    on = runtime.ModelCache().get(model_choice("u2netp", "segment"), "cpu", shared / "weights" / "u2netp.onnx")
    assert on.entry.edge_matting and not runtime.catalog_mod.load().get("isnet-general-use").edge_matting
    off = copy.copy(on)
    off.entry = replace(on.entry, edge_matting=False)
    sad = {"on": 0.0, "off": 0.0}
    for name in ("GT01.png", "GT05.png", "GT09.png"):
        image = io.read_image(shared / "data/alphamatting/im" / name, integers=True).pixels[..., :3]
        truth = cv2.imread(str(shared / "data/alphamatting/gt" / name), cv2.IMREAD_GRAYSCALE) / 255.0
        prediction = on(on.prepare(image))
        refined = refine.mask_from_prediction(image, prediction, refine=True, upsampling=on.entry.output.upsample)
        partial = (refined > 0.02) & (refined < 0.98)

        def run(model, result, **given):
            options = remove.TASK.make_options({"result": result, **given})
            return remove.TASK.run({"model": model}, {"image": image}, options)["result"]

        for label, model in (("on", on), ("off", off)):
            alpha = run(model, "alpha")
            sad[label] += np.abs(alpha - truth).sum()
            if label == "off":
                assert np.array_equal(alpha, refined)
                rgba = run(model, "rgba")
                assert (rgba[..., :3][partial] != image[partial]).any(axis=1).mean() > 0.5  # decontaminated
            else:
                assert not np.array_equal(alpha, refined)
        assert np.array_equal(run(off, "alpha", matting=False), refined)
        assert np.array_equal(run(off, "rgba", matting=False)[..., :3], image)
    assert sad["on"] < 0.97 * sad["off"]
