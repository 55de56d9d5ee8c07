"""Roto hints on keyframes, carried through the shot in real jobs (mattekit.roto.chain.HintChain): a box follows one
subject, split runs equal one, a hint mask per object, one-sentence errors, kill and resume."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mattekit import roto
from mattekit.subject.keyframe_hints import parse_hint_masks
from mattekit.tasks import registry
from mattekit.errors import OutputError
from mattekit.io import read_image, write_image
from plates import MODEL, two_subject_plate
from roto_runs import files_of, kill_when_written, spec


@pytest.fixture
def mirror(shared, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    return shared / "weights"


def mattes(folder: Path) -> dict[int, np.ndarray]:
    return {int(p.name.split(".")[1]): read_image(p).pixels[..., 0] for p in sorted(folder.glob("m.*.png"))}


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
