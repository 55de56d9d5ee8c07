"""Operations through the local worker with real models: remove (sync and async alike, warnings, one model load for
many clients, hints), upscale, bokeh and matte."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mattekit import catalog
from mattekit.wire.client import Pixels, WorkerError
from workers import _in_threads, count_loads, meta_header, raw


# ---------------------------------------------------------------- real models through the worker


def _iou(alpha: np.ndarray, gt: np.ndarray) -> float:
    valid = gt != 128
    pred, truth = alpha >= 0.5, gt > 128
    return float((pred & truth & valid).sum() / max(((pred | truth) & valid).sum(), 1))


def _person1(shared) -> tuple[np.ndarray, np.ndarray, Pixels]:
    """grabcut50's person1: (RGB uint8 H x W x 3, its 0/128/255 mask, the photo as worker pixels)."""
    photo = np.asarray(Image.open(shared / "data/grabcut50/im/person1.jpg").convert("RGB"))
    gt = np.asarray(Image.open(shared / "data/grabcut50/gt/person1.png").convert("L"))
    return photo, gt, Pixels(photo.tobytes(), photo.shape[1], photo.shape[0], 3, "u8")


def test_remove_cuts_out_a_real_portrait_sync_and_async_alike(make_worker, mirror, shared):
    _, worker = make_worker()
    photo, gt, pixels = _person1(shared)
    h, w = photo.shape[:2]
    options = {"model": "sinet-portrait", "result": "alpha"}
    (sync,) = worker.run("remove", [pixels], options)
    seen = []
    (asyn,) = worker.run("remove", [pixels], options, progress=lambda f, m: seen.append((f, m)))
    assert sync.data == asyn.data, "the same request must give the same bytes"
    assert seen and seen[-1][0] == 1.0
    for output in (sync, asyn):  # the worker says what made its outputs (the X-Mattekit-Meta answer header)
        record = output.provenance
        assert record["task"] == "remove" and record["options"] == options
        assert record["models"] == [
            {
                "option": "model",
                "name": "sinet-portrait",
                "weights": "SINet.pth",
                "sha256": catalog.load().get("sinet-portrait").weights.sha256,
                "derived": False,
            }
        ]
    alpha = np.frombuffer(sync.data, np.uint8).reshape(h, w) / 255.0
    iou = _iou(alpha, gt)
    print(f"worker remove person1 sinet-portrait IoU {iou:.4f}")
    assert iou > 0.9


def test_a_fully_transparent_result_carries_a_warning_in_the_answer(make_worker, mirror, shared):
    """The answer's X-Mattekit-Meta holds "warnings" (one sentence each, the options named as the
    worker names them) when the subject came out empty, as the CLI's warning line; none otherwise."""
    _, worker = make_worker()
    _, _, pixels = _person1(shared)
    (empty,) = worker.run(
        "remove", [pixels], {"model": "sinet-portrait", "box": "0,0,40,40", "hint_model": "none", "result": "alpha"}
    )
    assert not any(empty.data)
    assert empty.warnings == [
        "the result is fully transparent (no subject was found in the box); try option 'point' "
        "on the subject inside the box, or option 'model' with another model, or option "
        "'hint_model' at its default (SAM 2.1 answers a box)."
    ]
    (person,) = worker.run("remove", [pixels], {"model": "sinet-portrait", "result": "alpha"})
    assert any(person.data) and person.warnings == []


def test_one_model_load_for_many_concurrent_clients(make_worker, mirror, monkeypatch):
    loads = count_loads(monkeypatch)
    _, worker = make_worker()
    img = Pixels(np.full((24, 24, 3), 128, np.uint8).tobytes(), 24, 24, 3, "u8")
    results, errors = [], []

    def one():
        try:
            results.append(worker.run("remove", [img], {"model": "extremec3-portrait"})[0].data)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    _in_threads(lambda k: one(), 8)
    assert not errors and len(results) == 8 and len(set(results)) == 1
    assert loads == ["extremec3-portrait"]
    assert next(m for m in worker.models() if m["name"] == "extremec3-portrait")["loaded"]


def test_upscale_operation(make_worker, mirror):
    _, worker = make_worker()
    rgba = np.random.default_rng(0).integers(0, 256, (20, 18, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    seen = []
    (out,) = worker.run(
        "upscale",
        [Pixels(rgba.tobytes(), 18, 20, 4, "u8")],
        {"model": "rfdn-x4", "scale": 2.0},
        progress=lambda f, m: seen.append(m),
    )
    assert (out.width, out.height, out.channels, out.dtype) == (36, 40, 4, "u8")
    assert np.all(np.frombuffer(out.data, np.uint8).reshape(40, 36, 4)[..., 3] == 255)
    assert seen and seen[-1] == "Done"


def test_bokeh_operation_keeps_the_given_subject_sharp(make_worker):
    _, worker = make_worker()
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    subject = np.zeros((48, 64), np.uint8)
    subject[12:36, 16:48] = 255
    (out,) = worker.run(
        "bokeh",
        [Pixels(img.tobytes(), 64, 48, 3, "u8"), Pixels(subject.tobytes(), 64, 48, 1, "u8")],
        {"mask_only": True, "strength": 4.0},
    )
    got = np.frombuffer(out.data, np.uint8).reshape(48, 64, 3).astype(int)
    inner, outer = (slice(16, 32), slice(20, 44)), (slice(0, 6), slice(0, 64))
    assert np.abs(got[inner] - img[inner]).mean() < 3  # the subject stays sharp
    assert got[outer].std() < img[outer].std() * 0.8  # the background is blurred


def _u8(array: np.ndarray, h: int, w: int, c: int) -> Pixels:
    return Pixels(np.ascontiguousarray(array, np.uint8).tobytes(), w, h, c, "u8")


def test_matte_refines_a_coarse_mask_towards_the_true_alpha(make_worker, shared):
    """Refine Edges on a real photo: a blocky mask (the true alpha thresholded, 1/16 size, upsampled)
    must come back much closer to the ground-truth alpha; output=rgba carries the same alpha."""
    _, worker = make_worker()
    root = shared / "data/alphamatting"
    photo = np.asarray(Image.open(root / "im/GT05.png").convert("RGB"))
    gt = np.asarray(Image.open(root / "gt/GT05.png").convert("L")) / 255.0
    h, w = gt.shape
    binary = Image.fromarray(((gt >= 0.5) * 255).astype(np.uint8))
    coarse = np.asarray(binary.resize((w // 16, h // 16), Image.BOX).resize((w, h), Image.BILINEAR))
    inputs = {"image": _u8(photo, h, w, 3), "mask": _u8(coarse, h, w, 1)}
    (out,) = worker.run("matte", inputs, {"result": "alpha"})
    assert (out.width, out.height, out.channels, out.dtype) == (w, h, 1, "u8")
    alpha = np.frombuffer(out.data, np.uint8).reshape(h, w) / 255.0
    before, after = np.abs(coarse / 255.0 - gt).mean(), np.abs(alpha - gt).mean()
    print(f"worker matte GT05 {w}x{h}: alpha MAE coarse mask {before:.4f} -> refined {after:.4f}")
    assert after < 0.5 * before
    seen = []
    (rgba,) = worker.run("matte", inputs, {"result": "rgba"}, progress=lambda f, m: seen.append(f))
    assert (rgba.width, rgba.height, rgba.channels) == (w, h, 4) and seen[-1] == 1.0
    rgba = np.frombuffer(rgba.data, np.uint8).reshape(h, w, 4)
    assert np.array_equal(rgba[..., 3], np.rint(alpha * 255)), "the cut-out carries the refined alpha"
    soft = (alpha > 0.05) & (alpha < 0.95)
    assert np.abs(rgba[..., :3][soft].astype(int) - photo[soft]).mean() > 1, "colours are decontaminated"


def test_matte_refuses_masks_it_cannot_refine_in_one_sentence(make_worker):
    srv, worker = make_worker()
    image = _u8(np.zeros((48, 64, 3)), 48, 64, 3)
    with pytest.raises(WorkerError) as err:
        worker.run("matte", {"image": image, "mask": _u8(np.zeros((30, 40)), 30, 40, 1)})
    assert (err.value.status, err.value.code) == (400, "bad_meta")
    assert str(err.value) == (
        "Input 'mask' is 40 x 30 pixels but 'image' is 64 x 48; all inputs of one request must have the same size."
    )
    for value, missing in ((0, "white (subject)"), (255, "black (background)"), (128, "white (subject) or black")):
        with pytest.raises(WorkerError) as err:
            worker.run("matte", {"image": image, "mask": _u8(np.full((48, 64), value), 48, 64, 1)})
        assert err.value.status == 422 and str(err.value).startswith("The mask has no edge to refine")
        assert f"it has no {missing}" in str(err.value) and str(err.value).count(".") == 1
    edge = np.zeros((48, 64))
    edge[:, 32:] = 255
    for options in ({"band": -1}, {"iterations": 0}, {"result": "trimap"}):
        with pytest.raises(WorkerError) as err:
            worker.run("matte", {"image": image, "mask": _u8(edge, 48, 64, 1)}, options)
        assert (err.value.status, err.value.code) == (400, "bad_option"), options
    assert raw(srv, "GET", "/v1/health")[0] == 200


def test_remove_takes_a_box_or_a_hint_mask_and_refuses_bad_hints(make_worker, mirror, shared):
    srv, worker = make_worker()
    photo, gt, pixels = _person1(shared)
    h, w = photo.shape[:2]
    ys, xs = np.nonzero(gt >= 128)
    box = f"{xs.min() - 5},{ys.min() - 5},{xs.max() + 6},{ys.max() + 6}"
    options = {"model": "u2netp", "hint_model": "none", "result": "alpha"}  # the segmentation model answers the hint
    (boxed,) = worker.run("remove", [pixels], dict(options, box=box, point=f"{int(xs.mean())},{int(ys.mean())}"))
    alpha = np.frombuffer(boxed.data, np.uint8).reshape(h, w) / 255.0
    assert _iou(alpha, gt) > 0.85 and alpha[:, : max(0, xs.min() - 5)].max() == 0
    selection = np.zeros((h, w), np.uint8)
    selection[:, : w // 3] = 255  # a selection that leaves the subject out: nothing of it is kept
    (masked,) = worker.run(
        "remove", {"image": pixels, "hint_mask": Pixels(selection.tobytes(), w, h, 1, "u8")}, options
    )
    outside = np.frombuffer(masked.data, np.uint8).reshape(h, w)
    reach = w // 3 + int(0.05 * max(h, w)) + 1
    assert outside[:, reach:].max() == 0
    one = [{"width": w, "height": h, "channels": 3, "dtype": "u8"}]
    for bad in ({"box": "1,2,3"}, {"box": "5,5,5,9"}, {"point": "a,b"}, {"exclude": "1,2;3"}):
        status, answer, _ = raw(srv, "POST", "/v1/run/remove", photo.tobytes(), meta_header(one, **bad))
        assert (status, answer["error"]["code"]) == (400, "bad_option") and answer["error"]["message"].endswith("."), (
            bad
        )
    for bad, words in (({"box": f"{w + 10},0,{w + 50},40"}, "lies outside"), ({"point": f"3,{h}"}, "lies outside")):
        with pytest.raises(WorkerError) as err:
            worker.run("remove", [pixels], dict(options, **bad))
        assert err.value.status == 422 and words in str(err.value)
    with pytest.raises(WorkerError) as err:
        worker.run("remove", {"image": pixels, "hint_mask": Pixels(bytes(100), 10, 10, 1, "u8")}, options)
    assert err.value.status == 400 and "same size" in str(err.value)
