"""People in roto: the catalog's aliases, recurrent models (RVM) carried across frames, warm-up of chunks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mattekit import catalog, roto, runtime
from mattekit.errors import MattekitError
from mattekit.io import read_image
from mattekit.roto import RotoSpec
from mattekit.matting import estimate_foreground
from mattekit.nets.rvm import RobustVideoMatting
from mattekit.options import model_choice, options_of

from plates import make_plate
from roto_runs import cli, files_of, kill_when_written


def test_aliases_resolve_to_models_of_the_accepted_tasks():
    cat = catalog.load()
    assert cat.get("people", roto.ROTO_MODEL_TASKS).name == "modnet-portrait"
    assert cat.get("people").licence == "Apache-2.0"
    assert cat.get("objects", roto.ROTO_MODEL_TASKS) is cat.default("segment")
    assert cat.get("rvm-people", roto.ROTO_MODEL_TASKS).recurrent
    with pytest.raises(MattekitError, match=r"Unknown model 'nobody'; choose one of: people, objects, "):
        cat.get("nobody", roto.ROTO_MODEL_TASKS)
    with pytest.raises(MattekitError, match="'people' is a matte model, not a segment model"):
        cat.get("people", "segment")
    assert set(cat.aliases_for("upscale")) == set()


def test_aliases_that_name_nothing_or_shadow_a_model_are_refused():
    table = (
        '[defaults]\nsegment = "a"\n[models.a]\ntask = "segment"\ndescription = ""\nnet = "u2net:U2NETP"\n'
        'kwargs = {}\nlicence = "MIT"\nfiles = []\n'
    )
    assert catalog.parse(table + '[aliases]\nobjects = "segment"\n').aliases == {"objects": "a"}
    for bad in ('[aliases]\npeople = "nobody"\n', '[aliases]\na = "a"\n'):
        with pytest.raises(ValueError, match="alias"):
            catalog.parse(table + bad)


def test_roto_schema_lists_the_aliases_with_their_licences():
    model = {o.name: o for o in options_of(RotoSpec)}["model"].describe()
    assert model["model"] == ["segment", "matte", "prompt"]  # prompt: SAM 2.1 tracks hinted objects
    assert {"name": "people", "model": "modnet-portrait", "licence": "Apache-2.0"} in model["model_aliases"]
    assert [a["name"] for a in model["model_aliases"]] == ["people", "objects"]


def test_recurrent_steps_warm_each_run_of_frames():
    have = list(range(1, 31))
    assert roto.recurrent_steps(have, [10, 11, 12], 3) == [7, 8, 9, 10, 11, 12]
    assert roto.recurrent_steps(have, [2, 3], 8) == [1, 2, 3]  # history stops at the plate's first frame
    assert roto.recurrent_steps(have, [10, 13], 3) == [7, 8, 9, 10, 11, 12, 13]  # gaps within warm-up are run
    assert roto.recurrent_steps(have, [10, 20], 2) == [8, 9, 10, 18, 19, 20]
    assert roto.recurrent_steps([1, 2, 5, 6], [6], 4) == [5, 6]  # not across a hole in the plate


def test_rvm_downsample_ratio_follows_the_authors_table():
    net = RobustVideoMatting()
    assert net.auto_downsample_ratio(480, 512) == 1.0
    assert net.auto_downsample_ratio(1080, 1920) == pytest.approx(512 / 1920)
    assert RobustVideoMatting(working_side=768).auto_downsample_ratio(1080, 1920) == pytest.approx(0.4)


@pytest.fixture
def offline_mirror(shared, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")


def _rvm_spec(plate: str, output: str, **kw) -> RotoSpec:
    kw.setdefault("temporal", False)
    return RotoSpec(plate=plate, output=output, model="rvm-people", device="cpu", threads=1, **kw)


@pytest.mark.needs_data
@pytest.mark.slow
def test_roto_carries_rvm_state_from_frame_to_frame(shared, offline_mirror, tmp_path):
    """roto's mattes equal the net run over the frames with its state carried, and differ from fresh states."""
    plate = make_plate(shared, tmp_path / "plate", 6, sequence="breakdance")
    job = roto.RotoJob(_rvm_spec(plate, str(tmp_path / "out" / "m.####.exr"), bit_depth=32))
    job.run()
    predictor = runtime.ModelCache().get(model_choice("rvm-people", "matte"), "cpu")
    state, carried, fresh = None, [], []
    for frame in job.frames:
        x = predictor.prepare(job.plate.read(frame).pixels)
        prediction, state = predictor.step(x, state)
        carried.append(prediction[0, 0].numpy())
        fresh.append(predictor.step(x, None)[0][0, 0].numpy())
    written = [np.atleast_3d(read_image(tmp_path / "out" / f"m.{f}.exr").pixels)[..., 0] for f in job.frames]
    assert max(np.abs(w - c).max() for w, c in zip(written, carried)) < 1e-4  # threads: 1 in roto, 2 here
    assert max(np.abs(w - f).max() for w, f in zip(written[1:], fresh[1:])) > 0.05
    assert 0.0 < np.mean([(w > 0.02) & (w < 0.98) for w in written]) < 0.5  # soft alpha, not a mask
    with pytest.raises(MattekitError, match="not a recurrent"):
        runtime.ModelCache().get(model_choice("csnet-sod", "segment"), "cpu").step(x, None)


@pytest.mark.slow
@pytest.mark.needs_data
def test_rvm_chunks_warm_up_and_resume_exactly(shared, offline_mirror, tmp_path):
    """Chunks (and a resumed run) first run the warm-up frames before them: where the warm-up reaches back to
    the plate's first frame the bytes equal one run's; farther on, the difference stays small."""
    warmup = catalog.load().get("rvm-people").warmup
    plate = make_plate(shared, tmp_path / "plate", warmup + 6, sequence="breakdance")
    whole = roto.RotoJob(_rvm_spec(plate, str(tmp_path / "whole" / "m.####.png")))
    whole.run()
    reference = files_of(tmp_path / "whole")
    assert whole.settings()["warmup"] == warmup
    for chunk in reversed(whole.chunks(4)):
        roto.RotoJob(_rvm_spec(plate, str(tmp_path / "parts" / "m.####.png"))).run(chunk)
    parts = files_of(tmp_path / "parts")
    exact = [f"m.{f}.png" for f in whole.frames if f - warmup <= whole.frames[0]]
    assert {k: parts[k] for k in exact} == {k: reference[k] for k in exact}
    later = [k for k in reference if k not in exact]
    assert later and any(parts[k] != reference[k] for k in later)  # the state really starts afresh there

    # cancelled after 3 frames, resumed: the frames written stay, the rest are recomputed with warm-up
    out = str(tmp_path / "resumed" / "m.####.png")
    seen = []
    with pytest.raises(roto.Cancelled):
        roto.RotoJob(_rvm_spec(plate, out)).run(cancel=lambda: len(seen) >= 3, progress=lambda p: seen.append(p.frame))
    kept = files_of(tmp_path / "resumed")
    summary = roto.RotoJob(_rvm_spec(plate, out)).run()
    assert summary.skipped == whole.frames[: len(kept)] and len(kept) >= 2
    assert files_of(tmp_path / "resumed") == reference


@pytest.mark.needs_data
@pytest.mark.slow
def test_rvm_resume_after_kill_is_exact(shared, tmp_path):
    """kill -9 a recurrent roto mid-way and run it again: the frames left are recomputed after their warm-up,
    which on a plate no longer than the warm-up reaches the first frame, so the files equal one run's."""
    warmup = catalog.load().get("rvm-people").warmup
    plate = make_plate(shared, tmp_path / "plate", warmup + 1, sequence="breakdance", size=(427, 240))
    env = dict(os.environ, MATTEKIT_MIRROR=str(shared / "weights"), MATTEKIT_OFFLINE="1")
    args = ["--model", "rvm-people", "--device", "cpu", "--threads", "1", "--no-temporal"]
    reference = cli(plate, "-o", tmp_path / "ref" / "m.####.png", *args, env=env)
    assert reference.wait(timeout=600) == 0, reference.communicate()[1]

    written = len(
        kill_when_written(cli(plate, "-o", tmp_path / "run" / "m.####.png", *args, env=env), tmp_path / "run", 3)
    )
    assert 3 <= written <= warmup, written
    resumed = cli(plate, "-o", tmp_path / "run" / "m.####.png", *args, env=env)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    done = int(re.search(r"(\d+) already done", err).group(1))  # the last file may have lost its journal record
    assert written - 1 <= done <= written and f"{warmup + 1 - done} computed" in err
    assert files_of(tmp_path / "run") == files_of(tmp_path / "ref")


@pytest.mark.needs_data
@pytest.mark.slow
def test_bench_roto_chunks_of_a_recurrent_model_within_the_warm_up_equal_one_run(shared, offline_mirror, tmp_path):
    """`bench roto --chunk` on a shot no longer than the warm-up: every chunk reaches back to the first frame,
    so each frame (and each chunk start it lists) differs from one run's by exactly 0."""
    from mattekit import cli as mattekit_cli

    data = tmp_path / "davis"
    for kind in ("im", "gt"):
        for path in sorted((shared / "data" / "davis" / kind / "breakdance").iterdir())[:5]:
            (data / kind / "breakdance").mkdir(parents=True, exist_ok=True)
            small = cv2.resize(cv2.imread(str(path)), (214, 120), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(data / kind / "breakdance" / path.name), small)
    assert (
        mattekit_cli.main(
            [
                "bench",
                "roto",
                "--data",
                str(data),
                "--model",
                "rvm-people",
                "--device",
                "cpu",
                "--threads",
                "1",
                "--chunk",
                "2",
                "--json",
                str(tmp_path / "out.json"),
            ]
        )
        == 0
    )
    chunked = json.loads((tmp_path / "out.json").read_text())["sequences"][0]["chunked"]
    for kind in ("frame", "temporal"):
        assert chunked[kind]["per_frame"] == [0.0] * 5 and chunked[kind]["mean_abs_per_frame"] == [0.0] * 5
        assert chunked[kind]["chunk_starts"] == {"2": [0.0, 0.0], "4": [0.0, 0.0]}


@pytest.mark.needs_data
@pytest.mark.slow
def test_roto_people_writes_soft_alpha_and_foreground_and_names_the_licence(shared, offline_mirror, tmp_path):
    plate = make_plate(shared, tmp_path / "plate", 3, sequence="breakdance")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mattekit",
            "roto",
            plate,
            "-o",
            str(tmp_path / "out" / "m.####.png"),
            "--fg",
            str(tmp_path / "fg" / "fg.####.png"),
            "--model",
            "people",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--radius",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert "--model people is modnet-portrait (Apache-2.0)" in run.stderr
    alpha = read_image(tmp_path / "out" / "m.1002.png").pixels
    soft = np.mean((alpha > 0.02) & (alpha < 0.98))
    assert 0.002 < soft < 0.5 and alpha.max() > 0.9  # a matte with soft edges, not a thresholded mask
    fg = read_image(tmp_path / "fg" / "fg.1002.png")
    assert fg.pixels.shape[2] == 4 and np.abs(fg.pixels[..., 3] - np.atleast_3d(alpha)[..., 0]).max() < 1 / 255 + 1e-6
    # the foreground colours are the matting module's estimate under that alpha, not the plate's colours
    rgb, coverage = read_image(plate.replace("####", "1002")).pixels[..., :3], np.atleast_3d(alpha)[..., 0]
    band = (coverage > 0.05) & (coverage < 0.95)
    assert np.abs(fg.pixels[..., :3] - estimate_foreground(rgb, coverage))[band].mean() < 0.01
    assert np.abs(fg.pixels[..., :3] - rgb)[band].mean() > 0.02


@pytest.mark.needs_data
@pytest.mark.slow
def test_a_hint_keeps_a_matting_models_soft_alpha(shared, offline_mirror, tmp_path):
    """With a hint the people model's alpha is pasted back as it is: its near-0 and near-1 values (hair,
    motion blur) are not rounded like a segmentation model's doubt (per frame, no temporal filter)."""
    plate = make_plate(shared, tmp_path / "plate", 2, sequence="breakdance")

    def matte(name: str, **hint) -> np.ndarray:
        out = tmp_path / name / "m.####.png"
        roto.RotoJob(
            roto.RotoSpec(
                plate=plate, output=str(out), model="people", device="cpu", threads=1, radius=0, bit_depth=16, **hint
            )
        ).run()
        return read_image(str(out).replace("####", "1001")).pixels[..., 0]

    def rounded_away(alpha):  # how many pixels hold values the rounding of sure regions would have removed
        return int(np.count_nonzero(((alpha > 0.002) & (alpha <= 0.1)) | ((alpha >= 0.9) & (alpha < 0.998))))

    free = matte("free")
    boxed = matte("boxed", box="1001:0,0,214,120")  # the whole frame: the same alpha expected
    assert rounded_away(free) > 20
    assert rounded_away(boxed) > 0.5 * rounded_away(free)
    assert np.abs(boxed - free).mean() < 0.02
