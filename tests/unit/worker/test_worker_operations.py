"""Operations through the local worker: real models (remove, upscale, bokeh, matte), every bad or odd option,
hints, and roto's folders, outputs and loaded model."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PIL import Image

from mattekit import catalog
from mattekit.wire.client import Pixels, WorkerError
from mattekit.wire import protocol
from mattekit.worker import operations
from workers import IDENTITY, _in_threads, _slow_operation, _until, count_loads, meta_header, raw


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


# ---------------------------------------------------------------- bad and odd options, hints, roto's folders


def _image_request(op: dict, side: int = 8) -> tuple[list, bytes]:
    """Metas and zero bytes for every required input of an operation's schema (u8)."""
    metas = [
        {"width": side, "height": side, "channels": max(p["channels"]), "dtype": "u8"}
        for p in op["inputs"]
        if not p["optional"]
    ]
    return metas, bytes(sum(m["width"] * m["height"] * m["channels"] for m in metas))


def _bad_values(spec: dict) -> list:
    """Values that the option's declaration must refuse."""
    wrong_type = {
        "bool": [1, "yes", None if not spec["nullable"] else []],
        "int": [1.5, "3", True, [1]],
        "float": ["1.0", True, {"a": 1}],
        "str": [3, ["a"], "x" * 5000],
    }[spec["type"]]
    bad = [v for v in wrong_type if not (v is None and spec["nullable"])]
    if spec["type"] in ("int", "float"):
        bad += (
            [float("nan"), float("inf"), float("-inf")]
            if spec["type"] == "float"
            else [10**30 if "maximum" in spec else 0.5]
        )
        if "minimum" in spec:
            bad.append(spec["minimum"] - 1)
        if "maximum" in spec:
            bad.append(spec["maximum"] + 1)
    if "choices" in spec:
        bad.append("no-such-choice" if spec["type"] == "str" else 12345)
    return bad


def test_every_bad_option_of_every_operation_is_a_400(make_worker, tmp_path):
    srv, worker = make_worker(allow_dirs=[str(tmp_path)])
    schema = worker.schema()
    assert {op["name"] for op in schema["operations"]} == set(srv.operations)
    assert "segment" in schema["models"] and all(
        {"name", "description", "licence", "default", "cached"} <= set(m)
        for models in schema["models"].values()
        for m in models
    )
    count = 0
    for op in schema["operations"]:
        metas, body = _image_request(op)
        for name, spec in op["options"].items():
            for value in _bad_values(spec):
                head = {protocol.META_HEADER: json.dumps({"inputs": metas, "options": {name: value}})}
                status, answer, _ = raw(srv, "POST", f"/v1/run/{op['name']}", body, head)
                assert (status, answer["error"]["code"]) == (400, "bad_option"), (op["name"], name, value, answer)
                assert answer["error"]["message"].endswith(".") and "\n" not in answer["error"]["message"]
                count += 1
    deep = {"inputs": [], "options": {"a": [[[[[[[[[[1]]]]]]]]]]}}
    status, answer, _ = raw(srv, "POST", "/v1/run/matte", b"", {protocol.META_HEADER: json.dumps(deep)})
    assert (status, answer["error"]["code"]) == (400, "bad_meta") and "nests deeper" in answer["error"]["message"]
    print(
        f"worker options: {count} bad values over {len(schema['operations'])} operations, all answered 400 bad_option"
    )


def test_the_schema_names_the_words_a_text_option_takes(make_worker):
    """remove's shadow is free text (DY,DX,BLUR,OPACITY) that also takes the word keep: the worker's schema names it,
    so a host (the GIMP plug-in) reads it there and keeps no copy; an option without words says none."""
    _, worker = make_worker()
    ops = {op["name"]: op for op in worker.schema()["operations"]}
    for name in ("remove", "matte"):  # the tasks that end in a cut-out
        shadow = ops[name]["options"]["shadow"]
        assert shadow["keywords"] == ["keep"] and shadow["type"] == "str" and "choices" not in shadow, shadow
    assert "keywords" not in ops["remove"]["options"]["background"]


def test_roto_paths_are_confined_to_the_allowed_folders(make_worker, tmp_path):
    allowed = tmp_path / "shots"
    (allowed / "plate").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (allowed / "escape").symlink_to(tmp_path / "elsewhere")
    srv, _ = make_worker(allow_dirs=[str(allowed)])
    good_plate, good_out = str(allowed / "plate" / "f.####.png"), str(allowed / "mattes" / "m.####.png")
    cases = {
        "plate": [
            str(allowed / ".." / "elsewhere" / "f.####.png"),
            "/etc/passwd",
            "plate/f.####.png",
            str(allowed / "escape" / "f.####.png"),
        ],
        "output": [
            str(allowed / "mattes" / ".." / ".." / "m.####.png"),
            str(tmp_path / "elsewhere" / "m.####.png"),
            str(tmp_path.parent / "m.####.png"),
        ],
        "rgba": [str(allowed / "..")],
        "fg": [str(allowed / "escape")],
    }
    for field_name, values in cases.items():
        for value in values:
            options = {"plate": good_plate, "output": good_out, field_name: value}
            status, answer, _ = raw(srv, "POST", "/v1/jobs/roto", b"", meta_header([], **options))
            assert (status, answer["error"]["code"]) == (400, "bad_option"), (field_name, value, answer)
            assert f"'{field_name}'" in answer["error"]["message"]
    # inside the allowed folder the request passes the path checks (and the job's own check refuses it: no frames)
    status, answer, _ = raw(srv, "POST", "/v1/run/roto", b"", meta_header([], plate=good_plate, output=good_out))
    assert status == 400 and answer["error"]["message"].startswith("No frames match"), answer


def test_the_default_roto_folder_is_home_without_hidden_folders(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MATTEKIT_ALLOW_DIRS", raising=False)
    policy = operations.PathPolicy()
    policy.check("plate", str(tmp_path / "shots" / "f.####.exr"))
    for path in (str(tmp_path / ".ssh" / "f.####.png"), str(tmp_path / "shots" / ".hidden" / "m.png"), "/etc/x.png"):
        with pytest.raises(operations.OptionError):
            policy.check("output", path)


def test_odd_but_well_typed_option_values_never_give_a_500(make_worker, mirror):
    """Values that pass the declared types but that a check may still refuse: 200, or 400 (the option check,
    before any model loads) or 422 (the task) with one sentence."""
    _, worker = make_worker()
    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    subject = np.zeros((16, 16), np.uint8)
    subject[4:12, 4:12] = 255
    image, mask = Pixels(rgb.tobytes(), 16, 16, 3), Pixels(subject.tobytes(), 16, 16, 1)
    cases = [
        ("bokeh", [image, mask], {"mask_only": True, "focus": focus})
        for focus in ("abc", "1e400,5", "nan,nan", "inf,1", "-5,-5", ",", "1,2,3", "50%,40%")
    ]
    cases += [
        ("matte", {"image": image, "mask": mask}, {"result": "composite", "background": background})
        for background in ("#zzzzzz", "", "300,0,0", "blur")
    ]
    cases += [
        ("matte", {"image": image, "mask": mask}, {"band": 64, "iterations": 500, "crop": 10.0}),
        ("upscale", [image], {"model": "rfdn-x4", "scale": 0.01}),
        ("upscale", [image], {"model": "rfdn-x4", "tile": 64}),
        ("remove", [image], {"model": "rfdn-x4"}),
        ("remove", [image], {"device": "gpu"}),
        ("remove", [image], {"device": "cuda:99"}),
        ("enhance", [image], {"strength": 2.0}),
    ]
    answers = []
    for op, inputs, options in cases:
        try:
            worker.run(op, inputs, options)
            answers.append(200)
        except WorkerError as exc:
            assert exc.status in (400, 422) and str(exc).endswith(".") and "\n" not in str(exc), (op, options, exc)
            answers.append(exc.status)
    print(
        f"worker odd option values: {answers.count(200)} answered 200, {answers.count(400)} answered 400, "
        f"{answers.count(422)} answered 422, no 500"
    )


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


# ---------------------------------------------------------------- roto never writes over its plate

ROTO_OVERWRITES = {  # {p}: the plate folder, {out}: a fresh folder
    "output-is-the-plate-pattern": {"output": "{p}/f.####.png"},
    "output-is-the-plate-folder": {"output": "{p}"},
    "rgba-is-the-plate-pattern": {"output": "{out}/m.####.png", "rgba": "{p}/f.####.png"},
    "fg-is-the-plate-folder": {"output": "{out}/m.####.png", "fg": "{p}"},
}


@pytest.mark.parametrize("case", list(ROTO_OVERWRITES), ids=list(ROTO_OVERWRITES))
def test_roto_through_the_worker_refuses_outputs_that_are_its_plate(make_worker, tmp_path, case):
    from mattekit.io import write_image

    plate = tmp_path / "shot" / "plate"
    plate.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for frame in (1, 2):
        write_image(plate / f"f.{frame:04d}.png", rng.random((12, 16, 3)).astype(np.float32))
    before = {p: p.read_bytes() for p in plate.iterdir()}
    srv, worker = make_worker(allow_dirs=[str(tmp_path / "shot")])
    names = {"p": plate, "out": tmp_path / "shot" / "out"}
    options = {"plate": str(plate / "f.####.png"), "model": "csnet-sod", "device": "cpu"}
    options |= {k: v.format(**names) for k, v in ROTO_OVERWRITES[case].items()}
    with pytest.raises(WorkerError) as err:  # synchronous: refused at the option check, before any model loads
        worker.run("roto", [], options)
    assert (err.value.status, err.value.code) == (400, "bad_option")
    message = str(err.value)
    assert "\n" not in message and "is the plate" in message and "choose another option '" in message, message
    with pytest.raises(WorkerError) as err:  # asynchronous: refused before a job is queued, with the same sentence
        worker.submit("roto", [], options)
    assert (err.value.status, err.value.code, str(err.value)) == (400, "bad_option", message)
    assert {p: p.read_bytes() for p in plate.iterdir()} == before  # not a byte written, no manifest
    assert not names["out"].exists()


def test_roto_through_the_worker_reuses_its_loaded_model(make_worker, mirror, monkeypatch, tmp_path):
    """The worker's roto jobs load their model into the worker's own cache: a model a remove call loaded
    is used as it is, and two roto jobs load nothing more (one Predictor made in all)."""
    from mattekit.io import write_image

    loads = count_loads(monkeypatch)
    plate = tmp_path / "shot" / "plate"
    plate.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for frame in (1, 2):
        write_image(plate / f"f.{frame:04d}.png", rng.random((24, 32, 3)).astype(np.float32))
    _, worker = make_worker(allow_dirs=[str(tmp_path / "shot")])
    img = Pixels(np.full((24, 24, 3), 128, np.uint8).tobytes(), 24, 24, 3, "u8")
    worker.run("remove", [img], {"model": "csnet-sod", "device": "cpu"})
    for run in ("a", "b"):
        worker.run(
            "roto",
            [],
            {
                "plate": str(plate / "f.####.png"),
                "model": "csnet-sod",
                "device": "cpu",
                "output": str(tmp_path / "shot" / run / "m.####.png"),
            },
        )
        assert sorted(p.name for p in (tmp_path / "shot" / run).glob("m.*.png")) == ["m.0001.png", "m.0002.png"]
    assert loads == ["csnet-sod"]
    assert next(m for m in worker.models() if m["name"] == "csnet-sod")["loaded"]


def test_refusals_speak_the_workers_words_not_the_clis_or_pythons(make_worker, tmp_path):
    """Refusals name the worker's options, not the CLI's flags (`use option 'device' cpu`, not `--device cpu`), and a
    path holding a null character is one sentence, not Python's "embedded null byte"."""
    srv, worker = make_worker(allow_dirs=[str(tmp_path)])
    img = Pixels(bytes(3 * 4 * 4), 4, 4, 3, "u8")
    with pytest.raises(WorkerError) as err:
        worker.run("mask-preview", [img], {"device": "mps"})
    assert (err.value.status, err.value.code) == (422, "task_failed")
    assert str(err.value).endswith("Apple MPS is not available here; use option 'device' cpu or auto."), str(err.value)
    status, answer, _ = raw(
        srv,
        "POST",
        "/v1/run/roto",
        b"",
        {
            protocol.META_HEADER: json.dumps(
                {"inputs": [], "options": {"plate": f"{tmp_path}/a\x00b.####.png", "output": f"{tmp_path}/m.####.png"}}
            )
        },
    )
    assert (status, answer["error"]["code"]) == (400, "bad_option")
    assert answer["error"]["message"] == "Option 'plate' holds a null character, which no file name or text may hold."


def test_the_pixel_budget_refuses_in_the_worker_what_it_refuses_in_the_cli(make_worker, tmp_path, monkeypatch, capsys):
    """Issue 81: with MATTEKIT_MAX_PIXELS=1000000 the CLI refuses a 2000 x 2000 photo; the worker refuses the same
    pixels with a 400 in the same words (the input named as the API names it), before any model runs."""
    from mattekit import cli

    monkeypatch.setenv("MATTEKIT_MAX_PIXELS", "1000000")
    photo = np.zeros((2000, 2000, 3), np.uint8)
    Image.fromarray(photo).save(tmp_path / "big.png")
    assert cli.main(["remove", str(tmp_path / "big.png"), "-o", str(tmp_path / "out.png")]) == 2
    said = capsys.readouterr().err.strip().splitlines()[-1].removeprefix("mattekit: error: ")
    _, worker = make_worker()
    with pytest.raises(WorkerError) as refused:
        worker.run("remove", [Pixels(photo.tobytes(), 2000, 2000, 3, "u8")], {"result": "alpha"})
    print(f"CLI: {said}\nworker: {refused.value}")
    assert (refused.value.status, refused.value.code) == (400, "too_many_pixels")
    assert str(refused.value) == said.replace(str(tmp_path / "big.png"), "input 'image'")
    assert not (tmp_path / "out.png").exists()
    small = np.ascontiguousarray(photo[:1000, :1000])  # within the budget: run (enhance, no model to fetch)
    assert worker.run("enhance", [Pixels(small.tobytes(), 1000, 1000, 3, "u8")], IDENTITY)[0].data == small.tobytes()


def test_a_roto_output_name_over_255_bytes_is_one_sentence_in_the_worker_and_the_cli(make_worker, tmp_path, capsys):
    """Issue 81: a roto output whose file name (or a folder's) is over the file system's 255 bytes was a 500
    internal error in the worker and "Internal error (OSError)" with exit 1 in the CLI; now a 400 naming the option
    and the limit, and the CLI's same sentence naming its flag, exit 2; nothing is written."""
    from mattekit import cli

    shots = tmp_path / "shots"
    (shots / "plate").mkdir(parents=True)
    for frame in (1, 2):
        Image.fromarray(np.full((16, 24, 3), 60 * frame, np.uint8)).save(shots / "plate" / f"f.{frame:04d}.png")
    plate = str(shots / "plate" / "f.####.png")
    srv, _ = make_worker(allow_dirs=[str(shots)])
    seen = []
    cases = {
        "output": str(shots / "mattes" / ("a" * 300 + ".####.png")),  # a frame's name
        "rgba": str(shots / ("d" * 300) / "rgba.####.png"),  # a folder's
        "fg": str(shots / "mattes" / ("b" * 236 + ".####.png")),
    }  # its frames fit, its temporaries do not
    for name, value in cases.items():
        options = {"plate": plate, "output": str(shots / "m" / "m.####.png")} | {name: value}
        status, answer, _ = raw(srv, "POST", "/v1/jobs/roto", b"", meta_header([], **options))
        assert (status, answer["error"]["code"]) == (400, "bad_option"), (name, answer)
        message = answer["error"]["message"]
        assert message.startswith("The output name ") and message.endswith(f"choose a shorter option '{name}'."), (
            message
        )
        argv = ["roto", plate, "-o", options["output"]] + ([f"--{name}", value] if name != "output" else [])
        assert cli.main(argv) == 2
        said = capsys.readouterr().err.strip().splitlines()[-1].removeprefix("mattekit: error: ")
        seen.append(f"worker: {message}\nCLI: {said}")
        assert said == message.replace(f"option '{name}'", "-o" if name == "output" else f"--{name}")
    print("\n".join(seen))
    assert sorted(p.name for p in shots.iterdir()) == ["plate"]  # no folder made, no file written


def test_a_roto_output_folder_swapped_for_a_link_after_the_202_receives_nothing(make_worker, mirror, tmp_path):
    """Issue 81: roto's paths were checked when the request arrived only: an output folder replaced by a link to
    a folder outside the allowed ones while the job waited in the queue received its mattes, manifest and journal.
    Now the folder is checked again where each file is written: the job fails in one sentence, nothing lands
    outside, and the worker goes on serving."""
    from mattekit.io import write_image

    shots, elsewhere = tmp_path / "shots", tmp_path / "elsewhere"
    (shots / "plate").mkdir(parents=True)
    (shots / "mattes").mkdir()
    elsewhere.mkdir()
    for frame in (1, 2):
        write_image(shots / "plate" / f"f.{frame:04d}.png", np.full((24, 32, 3), 0.2 * frame, np.float32))
    gate, log = threading.Event(), []
    table = operations.build(operations.PathPolicy([str(shots)])) | {"slow": _slow_operation(log, gate)}
    _, worker = make_worker(operations_table=table)
    img = Pixels(np.zeros((4, 4, 3), np.uint8).tobytes(), 4, 4, 3, "u8")
    ahead = worker.submit("slow", [img], {"steps": 4})  # holds the compute thread at its gate
    _until(lambda: 2 in log, "the job ahead's arrival at its gate")
    job = worker.submit(
        "roto",
        [],
        {
            "plate": str(shots / "plate" / "f.####.png"),
            "model": "csnet-sod",
            "device": "cpu",
            "output": str(shots / "mattes" / "m.####.png"),
        },
    )
    (shots / "mattes").rmdir()  # accepted and queued: now the folder becomes a link out of the allowed one
    (shots / "mattes").symlink_to(elsewhere, target_is_directory=True)
    gate.set()
    _until(lambda: worker.job(job)["state"] not in ("queued", "running"), "the roto job's end")
    assert worker.job(ahead)["state"] == "done"
    with pytest.raises(WorkerError) as failed:
        worker.result(job)
    print(f"worker: {failed.value}")
    assert str(failed.value) == (
        f"Cannot write in {shots / 'mattes'}: it now leads to {elsewhere.resolve()}, outside "
        f"the allowed folders {shots.resolve()} (it was moved or replaced by a link after the "
        f"job was accepted); nothing was written there."
    )
    assert list(elsewhere.iterdir()) == []
    assert worker.health()["ok"]
