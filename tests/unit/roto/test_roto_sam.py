"""Roto with SAM 2.1 (mattekit.roto.sam, mattekit.roto.objects): objects named on their hints, each tracked by
SAM 2.1's memory from its keyframes and written to a matte sequence of its own; resumed, chunked and split runs
give one run's bytes. Stand-in weights (the conformance manifest's) prove the plumbing, not the quality, and the
plumbing is the same at any input size: these tests run Hiera-T at 128 x 128 (``small_sam``: a catalog whose
sam2.1-hiera-tiny has ``image_size = 128``), 1/64 of the catalog's 1024 x 1024 pixels. At 1024 on a shared, loaded
two-core machine they took minutes each (the tracker's answers 416 s, chunks 795 s, two objects killed and resumed
553 s on a quiet machine with shared frame features, 2490 s loaded before); the model at 1024 is pinned by
test_conformance_sam2 and `remove --hint-model` by test_sam2_hints."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mattekit import roto
from mattekit.subject import prompting
from mattekit.roto import tracking
from mattekit.cli import main
from mattekit.errors import InputError
from mattekit.io import read_image, write_image
from mattekit.roto import objects, sam
from mattekit.subject.keyframe_hints import HintMask, parse_boxes
from mattekit.tasks import registry
from roto_runs import kill_when_written

MODEL = "sam2.1-hiera-tiny"
W, H = 96, 64
RECT, DISC = "5,10,25,30", "71,36,90,55"  # where the two shapes lie on frame 1001


def moving_shapes(folder: Path, count: int, first: int = 1001) -> str:
    """A yellow rectangle moving right and a blue disc moving left on a noisy grey ground, ``W`` x ``H``, as
    ``folder/plate.####.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:H, :W]
    for i in range(count):
        pixels = np.full((H, W, 3), 40, np.uint8)
        pixels[10:30, 5 + 2 * i : 25 + 2 * i] = (220, 180, 60)
        pixels[(xx - (80 - 2 * i)) ** 2 + (yy - 45) ** 2 < 81] = (60, 120, 230)
        pixels = np.clip(pixels + rng.integers(0, 12, pixels.shape), 0, 255).astype(np.uint8)
        write_image(folder / f"plate.{first + i:04d}.png", pixels, bit_depth=8)
    return str(folder / "plate.####.png")


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.endswith(".json")}


def spec(plate: str, output: str, weights, **kw) -> roto.RotoSpec:
    kw.setdefault("radius", 1)
    return roto.RotoSpec(plate=plate, output=output, model=MODEL, weights=str(weights), device="cpu", threads=2, **kw)


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")


# ----------------------------------------------------------------------------------- objects and runs


def test_hints_name_their_objects(tmp_path):
    plate = moving_shapes(tmp_path / "plate", 2)
    both = roto.RotoSpec(
        plate=plate,
        output=str(tmp_path / "m.####.png"),
        box=f"1001:{RECT}@rect;1001:{DISC}@disc",
        point="1001:80,45@disc;1002:10,20",
    )
    assert objects.names(both) == ["rect", "disc", "1"]  # a hint without a name is object 1
    declared = registry.sequences()["roto"].option_table()  # Option.text: the values as the options write them
    parts = {
        name: {o: declared[o].text(getattr(part, o)) for o in ("box", "point", "output")}
        for name, part in objects.split(both, read_plate(plate))
    }  # each object's hints without its name
    assert parts["rect"]["box"] == f"1001:{RECT}" and parts["rect"]["point"] is None
    assert parts["disc"]["box"] == f"1001:{DISC}" and parts["disc"]["point"] == "1001:80,45"
    assert parts["1"]["point"] == "1002:10,20" and parts["1"]["box"] is None
    assert parts["disc"]["output"] == str(tmp_path / "m_disc.####.png")
    one = roto.RotoSpec(plate=plate, output=str(tmp_path / "m.####.png"), box=f"1001:{RECT}@rect")
    assert objects.split(one, read_plate(plate)) is None  # one object: the pattern as given
    assert declared["box"].text(objects.strip(one).box) == f"1001:{RECT}"
    named = roto.RotoSpec(plate=plate, output=str(tmp_path / "{object}" / "m.####.png"), box=f"1001:{RECT}@rect")
    assert dict(objects.split(named, read_plate(plate)))["rect"].output == str(tmp_path / "rect" / "m.####.png")
    assert objects.object_pattern(str(tmp_path / "####.exr"), "dog", read_plate(plate), True) == str(
        tmp_path / "dog.####.exr"
    )
    # hint masks: one pattern per object, PATTERN@NAME joined by ';' (an '@' inside a pattern names nothing)
    masks = roto.RotoSpec(
        plate=plate,
        output=str(tmp_path / "m.####.png"),
        box=f"1001:{RECT}@rect",
        hint_mask="/h/disc.####.png@disc;/h/v@2.####.png",
    )
    assert objects.names(masks) == ["disc", "1", "rect"]
    parts = dict(objects.split(masks, read_plate(plate)))  # each object's masks without its name
    assert parts["disc"].hint_mask == (HintMask("/h/disc.####.png"),) and parts["1"].hint_mask == (
        HintMask("/h/v@2.####.png"),
    )
    assert parts["rect"].hint_mask is None and parts["disc"].box is None
    lone = roto.RotoSpec(plate=plate, output=str(tmp_path / "m.####.png"), hint_mask="/h/disc.####.png@disc")
    assert objects.split(lone, read_plate(plate)) is None
    assert objects.strip(lone).hint_mask == (HintMask("/h/disc.####.png"),)
    with pytest.raises(InputError, match="two patterns"):  # refused where the text is read
        roto.RotoSpec(plate=plate, output=str(tmp_path / "m.####.png"), hint_mask="/h/a.####.png@d;/h/b.####.png@d")


def read_plate(plate: str):
    from mattekit.io.sequences import open_plate

    return open_plate(plate)


def test_sam_runs_start_at_keyframes():
    keys = tracking.Keyframes.of(parse_boxes("4:1,1,9,9;7:1,1,9,9"))
    have = list(range(1, 10))
    assert sam.runs(keys, have, have) == [[4, 3, 2, 1], [4, 5, 6], [7, 8, 9]]
    assert sam.runs(keys, have, [2]) == [[4, 3, 2]]
    assert sam.runs(keys, have, [5, 8]) == [[4, 5], [7, 8]]  # fed from the keyframe up to the last frame needed


@pytest.mark.parametrize(
    "args, words",
    [
        ([], "tracks an object you show it"),
        (["--box", f"1001:{RECT}@rect", "--box", f"1001:{DISC}@Rect"], "differ only in case"),
        (["--box", f"1001:{RECT}@my/dog"], "an object name is letters"),
        (["--box", f"1099:{RECT}"], "Keyframe 1099"),
        (["--exclude", "1001:10,10"], "has only exclude points"),
    ],
)
def test_bad_sam_roto_inputs_are_one_sentence(args, words, tmp_path, capsys):
    plate = moving_shapes(tmp_path / "plate", 2)
    code = main(["roto", plate, "-o", str(tmp_path / "out" / "m.####.png"), "--model", MODEL, *args])
    err = capsys.readouterr().err
    assert code == 2 and words in err and "Traceback" not in err, err
    assert err.strip().count("\n") == 0 and not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------- with stand-in weights


@pytest.mark.slow
def test_roto_answers_are_the_trackers(stand_in, small_sam, offline, tmp_path):
    """No filter, no matting band: each frame's matte is SAM2VideoTracker's probability driven directly, backward
    from the keyframe for the frames before it (fed in reverse), forward after it."""
    import torch

    from mattekit.nets.sam2.model import SAM2
    from mattekit.nets.sam2.predictor import SAM2VideoTracker

    plate = moving_shapes(tmp_path / "plate", 5)
    box = "9,10,31,30"  # the rectangle on frame 1003
    roto.RotoJob(
        spec(
            plate,
            str(tmp_path / "out" / "m.####.exr"),
            stand_in,
            box=f"1003:{box}",
            radius=0,
            refine=False,
            bit_depth=32,
        )
    ).run()
    net = SAM2("hiera_t", image_size=small_sam)
    net.load_state_dict(torch.load(stand_in)["model"])
    frames = {f: read_image(Path(plate.replace("####", str(f)))).pixels for f in range(1001, 1006)}
    hint = tracking.Keyframes.of(parse_boxes(f"1003:{box}")).hint(1003, H, W)
    expected = {}
    for order in ([1003, 1002, 1001], [1003, 1004, 1005]):
        tracker = SAM2VideoTracker(net, (H, W), num_frames=5)
        expected[order[0]] = prompting.keep_allowed(
            prompting.probability(tracker.prompt(prompting.rgb8(frames[order[0]]), box=[9, 10, 31, 30])), hint
        )
        for f in order[1:]:
            expected[f] = prompting.probability(tracker.track(prompting.rgb8(frames[f])))
    for f, want in expected.items():
        got = read_image(tmp_path / "out" / f"m.{f}.exr").pixels[..., 0]
        np.testing.assert_array_equal(got, want, err_msg=f"frame {f}")
    assert 0 < expected[1005].mean() < 1


@pytest.mark.slow
def test_objects_share_each_frames_features_and_keep_their_answers(stand_in, small_sam, offline, tmp_path, monkeypatch):
    """Two objects over the same frames: each frame is encoded once for both (the second object's frames come from
    the shared FrameFeatures), and each object's mattes are what an unshared SAM2VideoTracker gives, bit for bit."""
    import torch

    from mattekit.nets.sam2.model import SAM2
    from mattekit.nets.sam2.predictor import SAM2VideoTracker

    made = []
    monkeypatch.setattr(roto.job, "shared_features", lambda: made.append(sam.shared_features()) or made[-1])
    plate = moving_shapes(tmp_path / "plate", 2)
    boxes = {"rect": [5, 10, 25, 30], "disc": [71, 36, 90, 55]}
    hints = ";".join(f"1001:{','.join(map(str, b))}@{name}" for name, b in boxes.items())
    roto.RotoJob(
        spec(plate, str(tmp_path / "out" / "m.####.exr"), stand_in, box=hints, radius=0, refine=False, bit_depth=32)
    ).run()
    assert len(made) == 1 and (made[0].misses, made[0].hits) == (2, 2)
    net = SAM2("hiera_t", image_size=small_sam)
    net.load_state_dict(torch.load(stand_in)["model"])
    frames = [prompting.rgb8(read_image(Path(plate.replace("####", str(f)))).pixels) for f in (1001, 1002)]
    for name, box in boxes.items():
        tracker = SAM2VideoTracker(net, (H, W), num_frames=2)
        hint = tracking.Keyframes.of(parse_boxes(f"1001:{','.join(map(str, box))}")).hint(1001, H, W)
        expected = [
            prompting.keep_allowed(prompting.probability(tracker.prompt(frames[0], box=box)), hint),
            prompting.probability(tracker.track(frames[1])),
        ]
        for f, want in zip((1001, 1002), expected):
            got = read_image(tmp_path / "out" / f"m_{name}.{f}.exr").pixels[..., 0]
            np.testing.assert_array_equal(got, want, err_msg=f"{name} {f}")


@pytest.mark.slow
def test_chunks_and_splits_equal_one_run(stand_in, small_sam, offline, tmp_path):
    """Keyframes 1004 (backward and forward) and 1007 (re-prompted): every chunk of three frames, run on its own,
    writes one run's bytes (each re-plays its runs from their keyframes)."""
    plate = moving_shapes(tmp_path / "plate", 8)
    hints = {"box": "1004:11,10,31,30;1007:17,10,37,30"}
    roto.RotoJob(spec(plate, str(tmp_path / "one" / "m.####.png"), stand_in, **hints)).run()
    job = roto.RotoJob(spec(plate, str(tmp_path / "split" / "m.####.png"), stand_in, **hints))
    chunks = job.chunks(3)
    assert chunks == [[1001, 1002, 1003], [1004, 1005, 1006], [1007, 1008]]
    for frames in chunks[::-1]:  # last chunk first: nothing carries over between them
        roto.RotoJob(spec(plate, str(tmp_path / "split" / "m.####.png"), stand_in, **hints)).run(frames)
    assert files_of(tmp_path / "split") == files_of(tmp_path / "one") and len(files_of(tmp_path / "one")) == 8


@pytest.mark.slow
def test_two_objects_killed_and_resumed_give_one_runs_bytes(stand_in, small_sam, tmp_path):
    """Two objects over 8 frames (the rectangle re-prompted at 1005, the disc hinted at
    1003 and tracked backward too), kill -9 mid-way through the disc, resume: the files equal one uninterrupted
    run's."""
    count = 8
    plate = moving_shapes(tmp_path / "plate", count)
    args = [
        "--model",
        MODEL,
        "--weights",
        str(stand_in),
        "--device",
        "cpu",
        "--threads",
        "2",
        "--radius",
        "1",
        "--box",
        f"1001:{RECT}@rect",
        "--box",
        "1005:13,10,33,30@rect",
        "--box",
        "1003:67,36,86,55@disc",
    ]
    env = dict(os.environ, MATTEKIT_OFFLINE="1")  # with small_sam's MATTEKIT_CATALOG

    def cli(output):
        return subprocess.Popen(
            [sys.executable, "-m", "mattekit", "roto", plate, "-o", str(output), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    reference = cli(tmp_path / "ref" / "m.####.png")
    assert reference.wait(timeout=900) == 0, reference.communicate()[1]
    names = files_of(tmp_path / "ref")
    assert sorted(names) == sorted(f"m_{o}.{f}.png" for o in ("rect", "disc") for f in range(1001, 1001 + count))
    for name in ("rect", "disc"):
        manifest = json.loads((tmp_path / "ref" / f"m_{name}.mattekit.json").read_text())
        assert manifest["settings"]["model"]["kwargs"]["image_size"] == small_sam  # the small model ran
    written = kill_when_written(
        cli(tmp_path / "run" / "m.####.png"), tmp_path / "run", count + 2, timeout=900, names="m_*.png"
    )
    assert count + 2 <= len(written) < 2 * count, written  # the rectangle done, the disc begun
    resumed = cli(tmp_path / "run" / "m.####.png")
    _, err = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, err
    computed, done = map(int, re.search(r"(\d+) computed, (\d+) already done", err).groups())
    assert computed + done == count and done >= 1, err  # the rectangle was finished: only the disc is redone
    assert files_of(tmp_path / "run") == names
