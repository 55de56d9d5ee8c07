"""Roto hints on keyframes, carried through the shot (mattekit.roto.tracking, mattekit.roto.chain.HintChain)."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

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
from mattekit.errors import InputError, OutputError
from mattekit.io import read_image, write_image
from plates import MODEL, two_subject_plate
from roto_runs import files_of, kill_when_written, spec


@pytest.fixture
def mirror(shared, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    return shared / "weights"


def mattes(folder: Path) -> dict[int, np.ndarray]:
    return {int(p.name.split(".")[1]): read_image(p).pixels[..., 0] for p in sorted(folder.glob("m.*.png"))}


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


# ----------------------------------------------------------------------------------- jobs


@pytest.mark.slow
def test_box_on_one_subject_is_followed(shared, mirror, tmp_path):
    """Two subjects side by side; a box around the left one on frame 1003 (a middle keyframe): every
    frame's matte keeps the left subject and nothing of the right one, forward and backward."""
    plate = two_subject_plate(shared, tmp_path / "plate", 6)
    free = roto.RotoJob(spec(plate, str(tmp_path / "free" / "m.####.png")))
    free.run()
    hinted = roto.RotoJob(spec(plate, str(tmp_path / "hinted" / "m.####.png"), box="1003:0,0,214,120"))
    assert hinted.settings()["hints"]["boxes"] == {"1003": "0,0,214,120"} and "hints" not in free.settings()
    hinted.run()
    without, with_box = mattes(tmp_path / "free"), mattes(tmp_path / "hinted")
    assert sorted(with_box) == list(range(1001, 1007))
    assert np.mean([m[:, 214:].mean() for m in without.values()]) > 0.02  # unhinted: the right subject shows
    for frame, matte in with_box.items():
        assert matte[:, 220:].max() < 0.5, frame  # hinted: nothing of the right subject
        assert matte[:, :214].mean() > 0.5 * without[frame][:, :214].mean() > 0, frame


@pytest.mark.slow
def test_hinted_splits_equal_one_run(shared, mirror, tmp_path):
    """Chains run from their keyframes: chunks and --frames splits give the bytes of one run."""
    plate = two_subject_plate(shared, tmp_path / "plate", 7)
    hints = {"box": "1004:0,0,214,120", "point": "1004:100,70", "exclude": "1004:320,60"}
    roto.RotoJob(spec(plate, str(tmp_path / "whole" / "m.####.png"), **hints)).run()
    for chunk in ([1006, 1007], [1001, 1002], [1003, 1004, 1005]):
        roto.RotoJob(spec(plate, str(tmp_path / "parts" / "m.####.png"), **hints)).run(chunk)
    assert files_of(tmp_path / "parts") == files_of(tmp_path / "whole")
    for frames in ("1005-1007", "1001-1004"):
        roto.RotoJob(spec(plate, str(tmp_path / "farm" / "m.####.png"), frames=frames, **hints)).run()
    assert files_of(tmp_path / "farm") == files_of(tmp_path / "whole")
    # other hints are other settings: refused without --overwrite
    with pytest.raises(OutputError, match="other settings"):
        roto.RotoJob(spec(plate, str(tmp_path / "whole" / "m.####.png"), box="1004:0,0,100,120")).run()


def test_hint_mask_pattern_keyframes(shared, mirror, tmp_path):
    plate = two_subject_plate(shared, tmp_path / "plate", 4)
    selection = np.zeros((120, 428), np.float32)
    selection[10:110, 240:410] = 1.0  # around the right subject this time
    (tmp_path / "masks").mkdir()
    write_image(tmp_path / "masks" / "sel.1001.png", selection, bit_depth=8)
    job = roto.RotoJob(
        spec(plate, str(tmp_path / "out" / "m.####.png"), hint_mask=str(tmp_path / "masks" / "sel.####.png"))
    )
    assert job.keyframes.frames == [1001]
    job.run()
    for frame, matte in mattes(tmp_path / "out").items():
        assert matte[:, :200].max() < 0.5 and matte[:, 214:].mean() > 0.02, frame


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_a_hint_mask_per_object_writes_a_matte_per_object(shared, mirror, tmp_path):
    """Two objects named on their hint mask patterns (as the Blender add-on sends a Mask's layers): each object's
    matte keeps its own subject; a worker refuses such a value when any of its patterns lies outside its folders."""
    plate = two_subject_plate(shared, tmp_path / "plate", 3)
    (tmp_path / "masks").mkdir()
    for name, columns in (("dog", slice(0, 200)), ("swan", slice(240, 410))):
        selection = np.zeros((120, 428), np.float32)
        selection[10:110, columns] = 1.0
        write_image(tmp_path / "masks" / f"{name}.1001.png", selection, bit_depth=8)
    hint = ";".join(f"{tmp_path / 'masks' / name}.####.png@{name}" for name in ("dog", "swan"))
    job = roto.RotoJob(
        roto.RotoSpec(
            plate=plate,
            output=str(tmp_path / "out" / "m.####.png"),
            model="u2netp",
            device="cpu",
            threads=1,
            radius=1,
            hint_mask=hint,
        )
    )  # (csnet-sod barely sees the dog)
    assert job.objects == ["dog", "swan"]
    job.run()
    for name, keeps, leaves in (("dog", slice(0, 200), slice(214, None)), ("swan", slice(214, None), slice(0, 200))):
        found = {
            int(p.name.split(".")[1]): read_image(p).pixels[..., 0] for p in (tmp_path / "out").glob(f"m_{name}.*.png")
        }
        assert sorted(found) == [1001, 1002, 1003], name
        for frame, matte in found.items():
            assert matte[:, leaves].max() < 0.5 and matte[:, keeps].mean() > 0.02, (name, frame)
    from mattekit.worker.operations import PathPolicy, sequence_operation

    operation = sequence_operation(registry.sequences()["roto"], PathPolicy([str(tmp_path)]))
    request = {"plate": plate, "output": str(tmp_path / "again" / "m.####.png"), "model": "u2netp", "hint_mask": hint}
    assert operation.make_options(request).hint_mask == parse_hint_masks(hint)
    with pytest.raises(ValueError, match=r"^Option 'hint_mask' names '/etc/x.####.png', outside the allowed folders"):
        operation.make_options(request | {"hint_mask": hint + ";/etc/x.####.png@etc"})


@pytest.mark.slow
def test_hint_errors_are_one_sentence(shared, mirror, tmp_path):
    plate = two_subject_plate(shared, tmp_path / "plate", 2)
    env = dict(os.environ)
    for args, words in [
        (["--box", "1009:0,0,10,10"], "Keyframe 1009 of the hints is not a frame of the plate"),
        (["--box", "1001:500,0,600,10"], "Keyframe 1001: The box '500,0,600,10' lies outside the 428x120 image."),
        (["--point", "1001,5,5"], "is not FRAME:x,y"),
        (["--box", "1001:0,0,10,10", "--model", "rvm-people"], "takes no hints"),
    ]:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "mattekit",
                "roto",
                plate,
                "-o",
                str(tmp_path / "o" / "m.####.png"),
                "--model",
                MODEL,
                "--device",
                "cpu",
                *args,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode != 0 and words in run.stderr and "Traceback" not in run.stderr, run.stderr
        assert not list((tmp_path / "o").glob("m.*.png"))


@pytest.mark.slow
def test_kill_and_resume_with_hints_gives_identical_files(shared, mirror, tmp_path):
    """kill -9 a hinted roto mid-way and re-run: the resumed run re-runs the chain from the keyframe
    and its files equal an uninterrupted run's byte for byte."""
    plate = two_subject_plate(shared, tmp_path / "plate", 10)
    args = ["--model", MODEL, "--device", "cpu", "--threads", "1", "--radius", "1", "--box", "1001:0,0,214,120"]

    def cli(output):
        return subprocess.Popen(
            [sys.executable, "-m", "mattekit", "roto", plate, "-o", str(output), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    reference = cli(tmp_path / "ref" / "m.####.png")
    assert reference.wait(timeout=300) == 0, reference.communicate()[1]
    written = kill_when_written(cli(tmp_path / "run" / "m.####.png"), tmp_path / "run", 3)
    assert 3 <= len(written) < 10, written
    resumed = cli(tmp_path / "run" / "m.####.png")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    # the kill can fall between a frame's file and its journal record: that frame is computed again
    computed, done = map(int, re.search(r"(\d+) computed, (\d+) already done", err).groups())
    assert computed + done == 10 and len(written) - 1 <= done <= len(written), (written, err)
    assert files_of(tmp_path / "run") == files_of(tmp_path / "ref")


# ----------------------------------------------------------------------------------- Blender


def blender_hint_run(
    version: str,
    shared: Path,
    tmp_path: Path,
    monkeypatch,
    frames: int,
    model: str | None = None,
    weights: Path | None = None,
    both: bool = False,
) -> tuple[dict, Path]:
    """In real bpy (``version``): the add-on's operator on a two-subject plate of ``frames`` frames, a Mask datablock
    drawn around the left subject on frame 1 as the hint (``both``: a second layer around the right one), ``model``
    (u2netp by default; ``weights``: a file added to the worker as that model's derived copy). (The script's RESULT
    record, the mattes folder.)"""
    from blender_runs import bpy_python, shutdown_worker
    from checkout import install_module

    python = bpy_python(version)
    plate = two_subject_plate(shared, tmp_path / "plate", frames, first=1)
    env = {k: v for k, v in os.environ.items() if k not in ("MATTEKIT_WORKER_STATE", "MATTEKIT_CATALOG")}
    env.update(
        HOME=str(tmp_path / "home"),
        MATTEKIT_HOME=str(tmp_path / "mattekit-home"),
        OMP_NUM_THREADS="1",
        MATTEKIT_MIRROR=str(shared / "weights"),
        MATTEKIT_ALLOW_DIRS=str(tmp_path),
    )
    for name in ("HOME", "MATTEKIT_HOME"):
        monkeypatch.setenv(name, env[name])  # this process finds the worker the add-on starts
    (tmp_path / "home").mkdir()
    if weights is not None:
        from blender_runs import add_derived

        add_derived(env, model, weights)
    module = install_module("install_blender")
    settings = module.worker_record.worker_settings(env)
    info = module.worker_record.query_worker(sys.executable, settings, "test")
    for name, data in module.addon_files(
        module.worker_record.build_record(sys.executable, info, 60.0, settings)
    ).items():
        (tmp_path / "mattekit_ai_matte" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "mattekit_ai_matte" / name).write_bytes(data)
    output = tmp_path / "mattes"
    script = Path(__file__).resolve().parents[2] / "hosts" / "blender" / "hint_mask.py"
    try:  # the mask's space: x 0..1 across the width, y centred: 0.3..0.7 covers the 120 rows of the 428-wide plate
        run = subprocess.run(
            [
                str(python),
                str(script),
                str(tmp_path),
                plate.replace("####", "0001"),
                str(output),
                "0.01",
                "0.3",
                "0.48",
                "0.7",
                *([model or "u2netp"] if model or both else []),
                *(["0.52", "0.3", "0.99", "0.7"] if both else []),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        shutdown_worker()
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, (run.stdout + run.stderr)[-4000:]
    import json

    result = json.loads(lines[-1][len("RESULT ") :])
    assert result["operator"] == ["FINISHED"], run.stdout[-3000:]
    if both:
        return result, output
    assert result["hints"] == ["plate_hint.0001.png"]
    hint = read_image(output / "hints" / "plate_hint.0001.png").pixels[..., 0]
    assert hint[:, 20:190].min() > 0.5 and hint[:, 214:].max() < 0.5  # the mask as drawn, on the plate's pixels
    found = sorted(output.glob("plate_matte.*.png"))
    assert [p.name for p in found] == [f"plate_matte.{n:04d}.png" for n in range(1, frames + 1)]
    return result, output


@pytest.mark.blender
@pytest.mark.slow
@pytest.mark.parametrize("version", ["4.5.15", "5.0.1"])
def test_blender_mask_datablock_picks_the_subject(version, shared, tmp_path, monkeypatch):
    """In real bpy: a Mask datablock drawn around the left subject on frame 1 becomes the roto job's
    hint (rendered to a keyframe hint file) and every matte keeps that subject only: a subject the model's unhinted
    answer leaves out (on this small plate u2netp finds nothing unhinted)."""
    import mattekit

    _, output = blender_hint_run(version, shared, tmp_path, monkeypatch, 4)
    plate = read_image(tmp_path / "plate" / "plate.0001.png").pixels
    unhinted = mattekit.remove_background(plate, model="u2netp", result="alpha") / 255.0
    assert unhinted[:, :214].mean() < 0.01, (
        "unhinted, the model must leave the left subject out (else this tests nothing)"
    )
    for path in sorted(output.glob("plate_matte.*.png")):
        matte = read_image(path).pixels[..., 0]
        assert matte[:, 220:].max() < 0.5 and matte[:, :214].mean() > 0.05, path.name


@pytest.mark.blender
@pytest.mark.slow
@pytest.mark.parametrize("version", ["4.5.15", "5.0.1"])
def test_blender_mask_layers_are_objects_with_a_matte_each(version, shared, tmp_path, monkeypatch):
    """In real bpy: a Mask with two layers (around the left subject, "Dog", and the right one,
    "Black swan") is two objects: each layer rendered alone as its keyframe hint, one matte sequence per object
    keeping its subject only, and the AI Matte group outputs their union (Image, Matte) and each object's matte;
    the layers' render visibility is as the artist left it."""
    result, output = blender_hint_run(version, shared, tmp_path, monkeypatch, 2, both=True)
    assert result["hints"] == ["plate_hint_Black_swan.0001.png", "plate_hint_Dog.0001.png"], result
    assert result["outputs"] == ["Image", "Matte", "Matte Dog", "Matte Black_swan"], result
    assert result["hide_render"] == [False, False]
    dog, swan = (
        read_image(output / "hints" / f"plate_hint_{n}.0001.png").pixels[..., 0] for n in ("Dog", "Black_swan")
    )
    assert dog[:, 20:190].min() > 0.5 and dog[:, 214:].max() < 0.5, "the Dog layer alone"
    assert swan[:, 240:410].min() > 0.5 and swan[:, :200].max() < 0.5, "the Black swan layer alone"
    for name, keeps, leaves in (
        ("Dog", slice(0, 200), slice(220, None)),
        ("Black_swan", slice(228, None), slice(0, 208)),
    ):
        found = sorted(output.glob(f"plate_matte_{name}.*.png"))
        assert [p.name for p in found] == [f"plate_matte_{name}.{n:04d}.png" for n in (1, 2)], name
        for path in found:
            matte = read_image(path).pixels[..., 0]
            assert matte[:, leaves].max() < 0.5 and matte[:, keeps].mean() > 0.02, path.name


@pytest.mark.blender
@pytest.mark.slow
def test_blender_mask_datablock_starts_a_sam_track(shared, tmp_path, monkeypatch, stand_in):
    """In the host: with a SAM 2.1 model picked in the add-on (stand-in weights added to the worker as a
    derived copy: the path, not quality), the Mask datablock is the keyframe prompt and SAM's memory carries it
    through the shot; the job's manifest names the tracker."""
    _, output = blender_hint_run("4.5.15", shared, tmp_path, monkeypatch, 2, "sam2.1-hiera-tiny", stand_in)
    manifest = next(output.glob("*.mattekit.json")).read_text()
    assert '"sam2.1-hiera-tiny"' in manifest, manifest[:2000]
