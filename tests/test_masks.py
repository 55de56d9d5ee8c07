"""Subject masks from a network's prediction (mattekit.masks): the uncertain band, its edge-aware
refinement and matting in tiles, the second pass."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mattekit import io, masks, metrics, ops
from test_remove import gt_mask, mirror  # noqa: F401 - mirror is a fixture


def test_refinement_follows_photo_edges(shared, mirror):
    """On a few grabcut50 images the refined mask scores higher boundary F than plain upsampling."""
    from mattekit import ops, runtime

    predictor = runtime.ModelCache().get("csnet-sod", "segment", "cpu")
    plain_bf, refined_bf = [], []
    for name in ("106024.jpg", "189080.jpg", "209070.jpg", "teddy.jpg", "person4.jpg"):
        image = io.read_image(shared / "data/grabcut50/im" / name).pixels
        low = predictor.predict_map(image)
        gt = gt_mask(shared, name)
        plain_bf.append(metrics.boundary_f(np.clip(ops.resize(low, *image.shape[:2]), 0, 1), gt))
        refined_bf.append(metrics.boundary_f(masks.refine_mask(image, low), gt))
    assert np.mean(refined_bf) > np.mean(plain_bf)


def _edge_scene(size: int = 96, step: int = 8):
    """A dark/bright photo split by a vertical edge at column 37 (off the low grid), its exact mask, and a
    blurry low-resolution prediction of it (the mask area-shrunk ``step`` times, then blurred)."""
    truth = np.zeros((size, size), np.float32)
    truth[:, 37:] = 1.0
    image = np.repeat((0.2 + 0.6 * truth)[..., None], 3, axis=2)
    image += np.random.default_rng(0).normal(0, 0.01, image.shape).astype(np.float32)
    low = cv2.GaussianBlur(ops.resize(truth, size // step, size // step, "area"), (0, 0), 1.0)
    return np.clip(image, 0, 1), truth, low


def test_sure_regions_are_the_models_own_rounded():
    """Outside the uncertain band the default mask is the plain model's, rounded to 0 or 1."""
    image, _, low = _edge_scene()
    plain = masks.upsample(low, *image.shape[:2])
    refined = masks.refine_mask(image, low)
    band = masks.edge_band(plain, grow=max(1, round(masks.GROW * 8)))
    assert band.any() and not band.all()
    assert np.array_equal(refined[~band], (plain[~band] >= 0.5).astype(np.float32))
    assert set(np.unique(masks.round_sure(plain.copy())[~masks.unsure(plain)])) <= {0.0, 1.0}


def test_band_tiles_give_the_whole_image_filter(monkeypatch):
    """Work in small tiles around the band equals the guided filter over the whole image, inside the band
    (an upsampling factor of 4: the filter runs at full resolution, no subsampling)."""
    image, _, low = _edge_scene(size=160, step=4)
    image[40:90, 100:140] = 0.9  # a second edge elsewhere: several tiles hold band pixels
    monkeypatch.setattr(masks, "TILE", 32)
    tiled = masks.refine_mask(image, low)
    plain = masks.upsample(low, *image.shape[:2])
    factor = image.shape[0] / low.shape[0]
    whole = np.clip(ops.guided_filter(image, plain, max(2, round(masks.RADIUS * factor)), eps=masks.EPS), 0, 1)
    band = masks.edge_band(plain, max(1, round(masks.GROW * factor)))
    assert len(ops.tiles_holding(masks.unsure(plain), 1, 32)) < (160 // 32) ** 2
    assert np.allclose(tiled[band], masks.round_sure(whole)[band], atol=1e-5)


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
        monkeypatch.setattr(masks, "MATTE_TILE", 10**6)
        whole = masks.alpha_from_mask(image, mask)
        monkeypatch.setattr(masks, "MATTE_TILE", 96)
        assert len(ops.tiles_holding(masks.unsure(mask), 2, 96)) > 4
        tiled = masks.alpha_from_mask(image, mask)
        band = masks.unsure(mask)
        difference = np.abs(tiled - whole)[band]
        assert difference.mean() < 0.005 and np.quantile(difference, 0.95) < 0.02
        assert np.array_equal(tiled >= 0.5, mask >= 0.5)  # each pixel keeps the mask's side


def test_default_pipeline_sharpens_a_blurry_edge():
    image, truth, low = _edge_scene()
    plain = masks.upsample(low, *image.shape[:2])
    alpha = masks.alpha_from_mask(image, masks.refine_mask(image, low))
    gt = (truth * 255).astype(np.uint8)
    assert metrics.mae(alpha, gt) < 0.5 * metrics.mae(plain, gt)
    assert metrics.iou(alpha, gt) >= metrics.iou(plain, gt)


def test_matting_keeps_the_masks_side_of_half():
    """The matte softens the edge but never moves it across 0.5; a mask without unsure pixels is left alone."""
    image, _, low = _edge_scene()
    mask = masks.upsample(low, *image.shape[:2])
    alpha = masks.alpha_from_mask(image, mask)
    assert np.array_equal(alpha >= 0.5, mask >= 0.5) and not np.array_equal(alpha, mask)
    hard = (mask >= 0.5).astype(np.float32)
    assert masks.alpha_from_mask(image, hard) is hard


def test_unsure_is_strictly_between_the_known_levels():
    """unsure: strictly between 0.1 and 0.9 (OpenCV's one-pass range for float32 maps, numpy's comparison
    otherwise), at the float32 neighbours of the levels, on strided views, and never at NaN."""
    lo, hi = np.float32(0.1), np.float32(0.9)
    values = [lo, np.nextafter(lo, np.float32(1)), 0.5, np.nextafter(hi, np.float32(0)), hi, np.nan, 0.0, 1.0, -0.0]
    m = np.array([values, values[::-1]], np.float32)
    want = (m > 0.1) & (m < 0.9)
    assert want.any() and not want.all()
    assert np.array_equal(masks.unsure(m), want) and masks.unsure(m).dtype == bool
    assert np.array_equal(masks.unsure(m[:, ::2]), want[:, ::2])
    assert np.array_equal(masks.unsure(m.astype(np.float64)), (m.astype(np.float64) > 0.1) & (m.astype(np.float64) < 0.9))
    rounded = masks.round_sure(m.copy())
    assert np.array_equal(rounded[want], m[want]) and set(rounded[~want & ~np.isnan(m)]) == {0.0, 1.0}


def test_the_finish_on_every_core_is_the_one_thread_finish_byte_for_byte(shared, monkeypatch):
    """Refinement and decontamination spread their tiles over threads (ops.each_tile): a 2.4 MP
    grabcut50 photo (several tiles of each stage) gives the same RGBA bytes on one thread and on four (forced, so a
    1-core machine takes the threaded path too)."""
    from mattekit import cutout

    photo = io.read_image(shared / "data/grabcut50/im/106024.jpg", integers=True).pixels
    photo = cv2.resize(photo, (1924, 1284), interpolation=cv2.INTER_CUBIC)
    truth = cv2.imread(str(shared / "data/grabcut50/gt/106024.png"), cv2.IMREAD_GRAYSCALE) > 127
    low = cv2.GaussianBlur(cv2.resize(truth.astype(np.float32), (320, 320), interpolation=cv2.INTER_AREA), (0, 0), 2)

    def finish() -> np.ndarray:
        mask = masks.mask_from_prediction(photo, low, refine=True)
        alpha = masks.alpha_from_mask(photo, mask, matting=True, in_place=True)
        return cutout.assemble(photo, alpha, cutout.CutoutOptions())

    monkeypatch.setenv("MATTEKIT_FINISH_THREADS", "1")
    alone = finish()
    monkeypatch.delenv("MATTEKIT_FINISH_THREADS")
    monkeypatch.setattr(ops, "cpu_count", lambda: 4)
    spread = finish()
    assert alone.dtype == np.uint8 and 0 < (alone[..., 3] % 255 != 0).mean() < 0.2  # a soft edge was made
    assert alone.tobytes() == spread.tobytes()
