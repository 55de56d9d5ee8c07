"""Roto hints on keyframes as values: parsed, printed as text that reads back and read once where the option is
checked (mattekit.subject.keyframe_hints), and the chains that carry them through the shot (mattekit.roto.tracking:
the schedule, the carry along the motion)."""

from __future__ import annotations

import pickle
import re

import cv2
import numpy as np
import pytest

from mattekit import roto
from mattekit.roto import tracking
from mattekit.subject.hints import Box, Point
from mattekit.subject.keyframe_hints import (
    HintMask,
    KeyframeHint,
    parse_boxes,
    parse_excludes,
    parse_hint_masks,
    parse_points,
)
from mattekit.tasks import registry
from mattekit.errors import InputError
from mattekit.io import write_image


# ----------------------------------------------------------------------------------- keyframes, schedule, carry


def test_keyframes_parse_and_errors(tmp_path):
    keys = tracking.Keyframes.of(
        parse_boxes("10:1,2,30,40;20:5,5,50,50"), parse_points("10:3,4;10:6,7"), parse_excludes("20:9,9")
    )
    assert keys.frames == [10, 20] and keys.boxes == {10: (1, 2, 30, 40), 20: (5, 5, 50, 50)}
    assert keys.include == {10: ((3, 4), (6, 7))} and keys.exclude == {20: ((9, 9),)}
    assert keys.describe()["boxes"] == {"10": "1,2,30,40", "20": "5,5,50,50"} and keys.describe()["include"] == {
        "10": "3,4;6,7"
    }
    assert tracking.Keyframes.of() is None and parse_boxes("") is None and parse_points(" ; ") is None
    for parse, given, words in [
        (parse_boxes, "1,2,30,40", "FRAME:x0,y0,x1,y1"),
        (parse_boxes, "x:1,2,3,4", "FRAME:x0,y0,x1,y1"),
        (parse_boxes, "1:1,2,3", "x0,y0,x1,y1"),
        (parse_points, "4:1", "x,y"),
        (parse_excludes, "4:1,2@my dog", "an object name is letters"),
        (parse_boxes, 1001, "FRAME:x0,y0,x1,y1"),
    ]:
        with pytest.raises(InputError, match=words) as caught:
            parse(given)
        assert "\n" not in str(caught.value) and str(caught.value).endswith(".")
    for kw, words in [
        ({"box": parse_boxes("1:1,2,3,4;1:5,6,7,8")}, "more than one box"),
        ({"hint_mask": parse_hint_masks(str(tmp_path / "none.####.png"))}, "no existing file"),
    ]:
        with pytest.raises(InputError, match=words) as caught:
            tracking.Keyframes.of(**kw)
        assert "\n" not in str(caught.value) and str(caught.value).endswith(".")
    write_image(tmp_path / "k.0007.png", np.ones((4, 6), np.float32), bit_depth=8)
    keys = tracking.Keyframes.of(hint_mask=parse_hint_masks(str(tmp_path / "k.####.png")))
    assert keys.frames == [7] and keys.hint(7, 4, 6).mask.shape == (4, 6)
    with pytest.raises(InputError, match="Keyframe 7: The hint mask is 6x4 but the image is 8x8"):
        keys.hint(7, 8, 8)


def test_keyframe_hints_print_as_text_that_reads_back():
    """A keyframe hint's text (what provenance, the CLI and the worker's JSON carry) reads back as the same value;
    a hint of object 1 prints without its name; values given as they are (the Python API) are kept, not parsed."""
    given = "1001:10,10,80,90@dog; 1003 : 1,2,3,4 ;1003:5,5,9,9@1;1040:30,12,95,90@swan-2"
    boxes = parse_boxes(given)
    assert boxes == (
        KeyframeHint(1001, Box(10, 10, 80, 90), "dog"),
        KeyframeHint(1003, Box(1, 2, 3, 4)),
        KeyframeHint(1003, Box(5, 5, 9, 9)),
        KeyframeHint(1040, Box(30, 12, 95, 90), "swan-2"),
    )
    assert [str(b) for b in boxes] == [
        "1001:10,10,80,90@dog",
        "1003:1,2,3,4",
        "1003:5,5,9,9",
        "1040:30,12,95,90@swan-2",
    ]
    declared = registry.sequences()["roto"].option_table()
    for name, parse, text in [
        ("box", parse_boxes, given),
        ("point", parse_points, "7:1,2@a;7:3,4"),
        ("exclude", parse_excludes, "-2:0,0"),
    ]:
        values = parse(text)
        written = declared[name].text(values)
        assert parse(written) == values and declared[name].text(parse(written)) == written, name
        assert parse(values) == values and all(a is b for a, b in zip(parse(values), values)), name
        assert parse([str(v) for v in values]) == values, name  # a list of texts, as the API takes it
    assert parse_points([KeyframeHint(3, (4, 5), "x")]) == (KeyframeHint(3, Point(4, 5), "x"),)
    spec = roto.RotoSpec(plate="p.####.png", output="m.####.png", box="5:1,2,3,4@a", point="5:2,2")
    assert spec.box == parse_boxes("5:1,2,3,4@a") and spec.point == (KeyframeHint(5, Point(2, 2)),)
    assert (
        roto.RotoSpec.from_dict(pickle.loads(pickle.dumps(spec.to_dict()))) == spec
    )  # as the worker and Ray hand it on


def test_hint_masks_are_read_once_into_values_that_every_reader_takes(tmp_path, monkeypatch, capsys):
    """Issue 82: --hint-mask's text (PATTERN@NAME;...) was split again by each reader (roto's objects three times,
    the worker's folders, the keyframes). It is read once, where the option is checked, into HintMask values
    (pattern, object); it prints back as the text given (what the CLI, the worker and the Blender add-on send), a
    bad value is one sentence (CLI exit 2, the worker's OptionError: a 400), and the worker confines each pattern."""
    from mattekit.cli import main
    from mattekit.options import OptionError
    from mattekit.subject import keyframe_hints
    from mattekit.worker.operations import PathPolicy, sequence_operation

    declared = registry.sequences()["roto"].option_table()["hint_mask"]
    masks = declared.check("/h/dog.####.png@dog; /h/v@2.####.png ;/h/sel.@.png@swan-2")
    assert masks == (
        HintMask("/h/dog.####.png", "dog"),
        HintMask("/h/v@2.####.png"),
        HintMask("/h/sel.@.png", "swan-2"),
    )
    assert declared.text(masks) == "/h/dog.####.png@dog;/h/v@2.####.png;/h/sel.@.png@swan-2"
    assert declared.check(declared.text(masks)) == masks and declared.check(masks, values=True) == masks
    assert declared.paths(masks) == ["/h/dog.####.png", "/h/v@2.####.png", "/h/sel.@.png"]
    for given, words in [
        ("/h/a.####.png@d;/h/b.####.png@d", "The hint mask gives object 'd' two patterns"),
        ((HintMask("", "d"),), "is not (PATTERN, NAME)"),
        (5, "is not PATTERN or PATTERN@NAME"),
        ((HintMask("/h/a.####.png", "my dog"),), "a name of letters, digits"),
    ]:
        with pytest.raises(OptionError, match=re.escape(words)) as caught:
            declared.check(given, values=True)
        assert "\n" not in str(caught.value) and str(caught.value).endswith("."), given

    plate = tmp_path / "plate"
    plate.mkdir()
    (tmp_path / "masks").mkdir()
    for frame in (1001, 1002):
        write_image(plate / f"p.{frame}.png", np.random.default_rng(frame).random((16, 24, 3), np.float32), bit_depth=8)
    for name, columns in (("dog", slice(0, 10)), ("swan", slice(14, 24))):
        selection = np.zeros((16, 24), np.float32)
        selection[2:14, columns] = 1.0
        write_image(tmp_path / "masks" / f"{name}.1002.png", selection, bit_depth=8)
    text = f"{tmp_path}/masks/dog.####.png@dog;{tmp_path}/masks/swan.####.png@swan"
    request = {
        "plate": str(plate / "p.####.png"),
        "output": str(tmp_path / "out" / "m.####.png"),
        "model": "u2netp",
        "hint_mask": text,
    }
    read = []
    monkeypatch.setattr(
        keyframe_hints, "_masks_of", lambda given, real=keyframe_hints._masks_of: read.append(given) or real(given)
    )
    job = roto.RotoJob(registry.sequences()["roto"].make_options(request, host="cli"))
    assert read == [text] and job.objects == ["dog", "swan"]  # the text read once, where the option is checked
    assert [part.keyframes.masks for part in job.parts] == [
        {1002: tmp_path / "masks" / f"{name}.1002.png"} for name in ("dog", "swan")
    ]
    operation = sequence_operation(registry.sequences()["roto"], PathPolicy([str(tmp_path)]))
    assert operation.make_options(request).hint_mask == job.spec.hint_mask
    with pytest.raises(OptionError, match=r"^Option 'hint_mask' names '/etc/x.####.png', outside the allowed"):
        operation.make_options(request | {"hint_mask": text + ";/etc/x.####.png@etc"})
    code = main(["roto", request["plate"], "-o", request["output"], "--hint-mask", text + ";/h/b.####.png@dog"])
    err = capsys.readouterr().err
    assert code == 2 and "gives object 'dog' two patterns" in err and err.strip().count("\n") == 0, err
    assert not (tmp_path / "out").exists()


def test_schedule_runs_chains_from_their_keyframes():
    keys = tracking.Keyframes(boxes={5: Box(0, 0, 4, 4), 9: Box(0, 0, 4, 4)})
    have = list(range(1, 13))
    assert keys.chain(3, have) == [5, 4, 3] and keys.chain(7, have) == [5, 6, 7] and keys.chain(11, have) == [9, 10, 11]
    order, parent = tracking.schedule(keys, have, [2, 7, 10])
    assert order == [5, 4, 3, 2, 6, 7, 9, 10]  # backward from the first keyframe, then forward; each once
    assert parent == {5: None, 4: 5, 3: 4, 2: 3, 6: 5, 7: 6, 9: None, 10: 9}
    order, parent = tracking.schedule(keys, [1, 2, 4, 5, 6], [1, 6])  # a plate gap: carried across it
    assert order == [5, 4, 2, 1, 6] and parent[2] == 4


def test_carry_follows_the_motion():
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.random((120, 160)).astype(np.float32), (0, 0), 2.0)
    frame_a = np.repeat(texture[..., None], 3, axis=2)
    frame_b = np.roll(frame_a, (6, 10), axis=(0, 1))  # the content moves 10 px right, 6 px down
    mask = np.zeros((120, 160), np.float32)
    mask[40:80, 50:100] = 1.0
    moved = tracking.carry(mask, tracking.grey(frame_a), tracking.grey(frame_b))
    expected = np.roll(mask, (6, 10), axis=(0, 1))
    inner = expected > 0.5
    assert (moved[inner] > 0.5).mean() > 0.95 and (moved[~inner] > 0.5).mean() < 0.01
    assert tracking.box_of(expected) == Box(60, 46, 110, 86)
