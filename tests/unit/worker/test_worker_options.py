"""Options through the local worker: every bad value of every operation's options is a 400, odd but well-typed
values never a 500, the schema names a text option's words, and refusals speak the worker's words (its option
names, the CLI's pixel budget)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mattekit.wire.client import Pixels, WorkerError
from mattekit.wire import protocol
from workers import IDENTITY, raw


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
