"""Roto jobs: resume after kill -9, verification by content, chunks, manifest, outputs, progress."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from mattekit import roto
from mattekit.ops.resizing import resized_map
from mattekit.errors import InputError, MattekitError, OutputError
from mattekit.io import read_image

from plates import MODEL, make_plate, small_plate
from roto_runs import cli, files_of, kill_when_written, spec


@pytest.mark.slow
def test_kill_and_resume_gives_identical_files(shared, mirror, tmp_path):
    """kill -9 a roto subprocess mid-way, add a half-written file and a stale temporary, re-run:
    the result equals an uninterrupted run byte for byte and holds no partial file."""
    plate = make_plate(shared, tmp_path / "plate", 12)
    env = dict(os.environ)
    args = ["--model", MODEL, "--device", "cpu", "--threads", "1", "--radius", "1"]
    reference = cli(plate, "-o", tmp_path / "ref" / "m.####.png", *args, env=env)
    out, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err

    victim = cli(plate, "-o", tmp_path / "run" / "m.####.png", *args, env=env)
    written = kill_when_written(victim, tmp_path / "run", 3)
    assert 3 <= len(written) < 12, written
    # what a crash in the middle of writing could leave: a truncated frame and a temporary file
    last = int(written[-1].split(".")[1])
    ref_next = (tmp_path / "ref" / f"m.{last + 1}.png").read_bytes()
    (tmp_path / "run" / f"m.{last + 1}.png").write_bytes(ref_next[: len(ref_next) // 2])
    (tmp_path / "run" / f".m.{last + 2}.png.0badf00d.tmp").write_bytes(b"partial")

    resumed = cli(plate, "-o", tmp_path / "run" / "m.####.png", *args, env=env)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    # a frame counts as done once its journal record is written, just after its file: the kill can fall
    # between the two, and that one frame is then computed again
    computed, done = map(int, re.search(r"(\d+) computed, (\d+) already done", err).groups())
    assert computed + done == 12 and len(written) - 1 <= done <= len(written), (written, err)
    assert files_of(tmp_path / "run") == files_of(tmp_path / "ref")
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]
    assert (tmp_path / "run" / "m.mattekit.json").is_file()


@pytest.mark.slow
def test_resume_verifies_content(shared, mirror, tmp_path):
    plate = make_plate(shared, tmp_path / "plate", 5)
    job = roto.RotoJob(spec(plate, str(tmp_path / "out" / "m.####.png")))
    events = []
    first = job.run(progress=events.append)
    assert first.computed == [1001, 1002, 1003, 1004, 1005] and not first.skipped
    assert events[-1].done == 5 and events[-1].fps > 0 and events[-1].eta == 0
    assert [e.done for e in events] == [0, 1, 2, 3, 4, 5]
    before = files_of(tmp_path / "out")
    again = roto.RotoJob(spec(plate, str(tmp_path / "out" / "m.####.png"))).run()
    assert again.computed == [] and again.skipped == first.computed
    # a frame edited (or replaced) after the job is not trusted: it is recomputed, and only it
    (tmp_path / "out" / "m.1003.png").write_bytes(before["m.1003.png"][:-10] + b"0123456789")
    (tmp_path / "out" / "m.1004.png").unlink()
    third = roto.RotoJob(spec(plate, str(tmp_path / "out" / "m.####.png"))).run()
    assert third.computed == [1003, 1004]
    assert files_of(tmp_path / "out") == before
    # a re-delivered plate frame is redone
    os.utime(tmp_path / "plate" / "plate.1002.png", ns=(1, 1))
    assert roto.RotoJob(spec(plate, str(tmp_path / "out" / "m.####.png"))).run().computed == [1002]


@pytest.mark.slow
def test_chunks_equal_one_run(shared, mirror, tmp_path):
    """Temporal consistency depends on a bounded window: chunks run apart give the same bytes."""
    plate = make_plate(shared, tmp_path / "plate", 7)
    whole = roto.RotoJob(spec(plate, str(tmp_path / "whole" / "m.####.png"), radius=2))
    whole.run()
    parts = roto.RotoJob(spec(plate, str(tmp_path / "parts" / "m.####.png"), radius=2))
    assert parts.chunks(3) == [[1001, 1002, 1003], [1004, 1005, 1006], [1007]]
    for chunk in reversed(parts.chunks(3)):
        roto.RotoJob(spec(plate, str(tmp_path / "parts" / "m.####.png"), radius=2)).run(chunk)
    assert files_of(tmp_path / "parts") == files_of(tmp_path / "whole")
    assert len(list((tmp_path / "parts" / ".m.mattekit-journal").glob("*.jsonl"))) == 3
    # a --frames split (as a render farm passes) is the same too
    for frames in ("1001-1004", "1005-1007"):
        roto.RotoJob(spec(plate, str(tmp_path / "farm" / "m.####.png"), radius=2, frames=frames)).run()
    assert files_of(tmp_path / "farm") == files_of(tmp_path / "whole")


def test_temporal_switch_and_settings_guard(shared, mirror, tmp_path):
    plate = make_plate(shared, tmp_path / "plate", 4)
    out = str(tmp_path / "out" / "m.####.png")
    roto.RotoJob(spec(plate, out, temporal=False)).run()
    per_frame = files_of(tmp_path / "out")
    with pytest.raises(OutputError, match="other settings"):
        roto.RotoJob(spec(plate, out)).run()
    assert files_of(tmp_path / "out") == per_frame  # refused: nothing touched
    redone = roto.RotoJob(spec(plate, out, overwrite=True)).run()
    assert redone.computed == [1001, 1002, 1003, 1004]
    assert files_of(tmp_path / "out") != per_frame
    # the per-frame mattes are what the per-frame network gives
    from mattekit.subject import answer

    pixels = read_image(tmp_path / "plate" / "plate.1002.png").pixels
    from mattekit import runtime

    expected = answer.predict_mask(runtime.ModelCache().get(MODEL, "segment", "cpu"), pixels)
    np.testing.assert_allclose(_matte(per_frame["m.1002.png"], tmp_path), expected, atol=0.5 / 65535 + 1e-6)


def test_the_temporal_window_is_the_models_unless_given(shared, mirror, tmp_path):
    """The filter's radius is the catalog's for the model (u2netp: 2, which keeps its roto at rembg's frame rate;
    others: 4) unless the job names one; 0 turns the filter off. u2netp's window also carries its flow's 2 refinement
    iterations and its refinement's factor (3); the others keep the preset's and 1."""
    plate = make_plate(shared, tmp_path / "plate", 2)
    out = str(tmp_path / "out" / "m.####.png")
    radius, window = {}, {}
    for model, given in (("u2netp", None), ("u2netp", 4), (MODEL, None), ("u2netp", 0)):
        job = roto.RotoJob(roto.RotoSpec(plate=plate, output=out, model=model, device="cpu", threads=1, radius=given))
        radius[model, given] = job.temporal.radius if job.temporal else 0
        if job.temporal:
            window[model, given] = (job.temporal.flow_refinement, job.temporal.refine_above)
    assert radius == {("u2netp", None): 2, ("u2netp", 4): 4, (MODEL, None): 4, ("u2netp", 0): 0}
    assert window == {("u2netp", None): (2, 3), ("u2netp", 4): (2, 3), (MODEL, None): (None, 1.0)}


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_with_u2netps_window_a_frame_up_to_3x_its_input_is_rounded_not_refined(shared, mirror, tmp_path, monkeypatch):
    """u2netp's catalog window replaces the per-frame refinement on frames up to 3x its 320-px input (DAVIS's 480p):
    such a frame's matte is the rounded upsampling; a frame 6x the input is still refined; without the window (or
    with another model's) refinement runs as before. The job hands the window's setting to its matte source."""
    from mattekit.roto import source as sources
    from mattekit.finish import refine

    rng = np.random.default_rng(8)
    for height, width, refined in ((480, 854, False), (1080, 1920, True)):
        image = (rng.random((height, width, 3)) * 0.2).astype(np.float32)
        yy, xx = np.mgrid[:height, :width] / (height / 480)
        subject = (yy - 300) ** 2 / 120**2 + (xx - 420) ** 2 / 90**2 < 1
        image[subject] += 0.7
        low = cv2.resize(subject.astype(np.float32), (320, 180), interpolation=cv2.INTER_AREA)
        rounded = refine.round_sure(resized_map(low, height, width, "lanczos"))
        with_window = refine.refine_mask(image, low, upsampling="lanczos", refine_above=3)
        without = refine.refine_mask(image, low, upsampling="lanczos")
        assert np.array_equal(with_window, without) == refined and np.array_equal(with_window, rounded) != refined
        assert not np.array_equal(without, rounded)  # (the refinement does change these frames)
    given = []
    made = sources.MatteSource.__init__
    monkeypatch.setattr(
        sources.MatteSource, "__init__", lambda self, *a, **kw: given.append(kw["refine_above"]) or made(self, *a, **kw)
    )
    plate = make_plate(shared, tmp_path / "plate", 2)
    for model, temporal in (("u2netp", True), ("u2netp", False), (MODEL, True)):
        out = tmp_path / f"out-{model}-{temporal}"
        roto.RotoJob(
            roto.RotoSpec(
                plate=plate, output=str(out / "m.####.png"), model=model, device="cpu", threads=1, temporal=temporal
            )
        ).run()
    assert given == [3, 1.0, 1.0]


def test_an_8_bit_plate_feeds_the_network_its_8_bits_as_rembg_does(shared, mirror, tmp_path):
    """u2netp's input from 8-bit frames is made from their 8-bit values, as rembg makes it: the input roto's per-frame
    path makes of a plate frame is, bit for bit, the input made of ``read_image(integers=True)``'s pixels (PIL's 8-bit
    Lanczos) and rembg's own preprocessing to float32 rounding; the plain per-frame matte roto writes is the network's
    answer on it. Checked on the input, which no engine changes; the mattes, which an engine's thread count or batch
    may move by a level on a rare pixel after u2netp's 8-bit floor, within a mean of 1e-4 (a fortieth of a level)."""
    from PIL import Image

    from mattekit import runtime
    from mattekit.roto.source import MatteSource, _MatteRun
    from mattekit.finish import refine

    plate = make_plate(shared, tmp_path / "plate", 2, sequence="blackswan", size=(427, 240))
    out = tmp_path / "out"
    job = roto.RotoJob(
        roto.RotoSpec(
            plate=plate,
            output=str(out / "m.####.png"),
            model="u2netp",
            device="cpu",
            threads=1,
            refine=False,
            temporal=False,
        )
    )
    job.run()
    source = MatteSource(job.plate, job.entry, device="cpu", refine=False, threads=1)
    model = source.predictor
    runtime.set_threads(1)
    for frame in (1001, 1002):
        x, picture = _MatteRun(source, [frame], lambda *_: None, None, False).read(frame)
        x = np.asarray(x)
        stored = read_image(tmp_path / "plate" / f"plate.{frame}.png", integers=True).pixels
        assert stored.dtype == np.uint8 and np.array_equal(x, np.asarray(model.prepare(stored)))
        rembg = np.asarray(Image.fromarray(stored).resize((320, 320), Image.Resampling.LANCZOS), np.float64)
        rembg = (rembg / rembg.max() - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)
        np.testing.assert_allclose(x[0].transpose(1, 2, 0), rembg, rtol=0, atol=1e-5)
        want = refine.mask_from_prediction(
            picture.pixels, model(model.prepare(stored)), refine=False, upsampling="lanczos"
        )
        assert np.abs(_matte((out / f"m.{frame}.png").read_bytes(), tmp_path) - want).mean() <= 1e-4


def _matte(data: bytes, tmp_path: Path) -> np.ndarray:
    path = tmp_path / "probe.png"
    path.write_bytes(data)
    grey = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert grey.dtype == np.uint16 and grey.ndim == 2
    return grey.astype(np.float32) / 65535


def test_exr_plate_rgba_and_foreground(shared, mirror, tmp_path):
    """EXR in and out: the matte as a float EXR, the RGBA premultiplied and linear, the foreground plate."""
    import OpenEXR

    plate = make_plate(shared, tmp_path / "plate", 3, suffix=".exr")
    out = tmp_path / "out"
    job = roto.RotoJob(
        spec(
            plate,
            str(out / "matte.####.exr"),
            rgba=str(out / "rgba.####.exr"),
            fg=str(out / "fg.####.png"),
            bit_depth=32,
        )
    )
    assert job.run().computed == [1001, 1002, 1003]
    with OpenEXR.File(str(out / "matte.1002.exr"), separate_channels=True) as f:
        alpha = f.channels()["A"].pixels
        assert f.channels()["A"].type() == OpenEXR.FLOAT
    with OpenEXR.File(str(out / "rgba.1002.exr"), separate_channels=True) as f:
        channels = f.channels()
        red, a = channels["R"].pixels.astype(np.float32), channels["A"].pixels.astype(np.float32)
    with OpenEXR.File(str(tmp_path / "plate" / "plate.1002.exr"), separate_channels=True) as f:
        plate_red = f.channels()["R"].pixels
    np.testing.assert_allclose(a, alpha, atol=1e-3)  # half float
    np.testing.assert_allclose(red, np.clip(plate_red, 0, 1) * alpha, atol=2e-3)  # linear, premultiplied
    fg = read_image(out / "fg.1002.png")
    assert fg.has_alpha and fg.pixels.shape == (120, 214, 4)
    np.testing.assert_allclose(fg.pixels[..., 3], alpha, atol=1 / 255)
    # adding an output later recomputes to add it; the matte's bytes stay the same
    before = (out / "matte.1002.exr").read_bytes()
    job = roto.RotoJob(spec(plate, str(out / "matte.####.exr"), bit_depth=32))
    assert job.run().computed == []
    assert (out / "matte.1002.exr").read_bytes() == before


def test_cancel_then_resume(shared, mirror, tmp_path):
    plate = make_plate(shared, tmp_path / "plate", 4)
    out = str(tmp_path / "out" / "m.####.png")
    seen = []
    with pytest.raises(roto.Cancelled):
        roto.RotoJob(spec(plate, out, temporal=False)).run(progress=seen.append, cancel=lambda: len(seen) >= 3)
    assert len(list((tmp_path / "out").glob("m.*.png"))) == 2
    assert roto.RotoJob(spec(plate, out, temporal=False)).run().computed == [1003, 1004]


def test_a_cancel_ends_the_cli_with_130_and_a_worker_job_as_cancelled(monkeypatch, capsys):
    """One Cancelled (mattekit.errors) for roto, the worker and the CLI: the CLI prints its sentence and exits 130,
    the worker's job table ends a job that raises it as "cancelled" with no error, not as failed."""
    from mattekit import cli
    from mattekit.commands import roto as roto_command
    from mattekit.worker import jobs

    sentence = "The roto job was cancelled; run it again to resume."

    def cancelled(*args):
        raise roto.Cancelled(sentence)

    monkeypatch.setattr(roto_command, "run", cancelled)
    assert cli.main(["roto", "p.####.png", "-o", "out"]) == 130
    assert capsys.readouterr().err.strip() == f"mattekit: error: {sentence}"
    table = jobs.JobTable(1 << 20, log=print)
    table.start()
    try:
        job = table.submit("roto", cancelled, table.reserve(0), keep=True)
        assert job.done_event.wait(30)
        assert (job.state, job.error) == ("cancelled", None)
    finally:
        table.stop()


@pytest.mark.slow
def test_cli_errors_are_one_sentence(shared, mirror, tmp_path):
    plate = make_plate(shared, tmp_path / "plate", 3)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mattekit",
            "roto",
            plate,
            "-o",
            str(tmp_path / "o" / "m.####.png"),
            "--frames",
            "1001-1005",
            "--model",
            MODEL,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("mattekit: error: 2 frame(s) of")
    assert "1004-1005" in result.stderr and "Traceback" not in result.stderr
    listing = subprocess.run(
        [
            sys.executable,
            "-m",
            "mattekit",
            "roto",
            plate,
            "-o",
            str(tmp_path / "o"),
            "--chunk",
            "2",
            "--print-chunks",
            "--model",
            MODEL,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listing.stdout.split() == ["1001-1002", "1003"]
    with pytest.raises(InputError):
        roto.RotoJob(spec(str(tmp_path / "nothing.####.png"), str(tmp_path / "o")))
    with pytest.raises(MattekitError):
        roto.RotoJob(spec(plate, str(tmp_path / "o" / "m.####.jpg")))


@pytest.mark.slow
def test_same_bytes_with_one_or_two_inference_workers(shared, mirror, tmp_path):
    """The pipeline may finish frames out of order with several workers: the files do not change."""
    plate = make_plate(shared, tmp_path / "plate", 9)
    outputs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        job = roto.RotoJob(
            spec(plate, str(out / "m.####.png"), radius=2, workers=workers, rgba=str(out / "rgba.####.png"))
        )
        assert job.run().computed == list(range(1001, 1010))
        outputs[workers] = files_of(out)
    assert len(outputs[1]) == 18 and outputs[1] == outputs[2]


def test_foreground_plate_matches_matte_colours(shared, mirror, tmp_path):
    """roto --fg decontaminates as `mattekit matte` does (mattekit.finish.cutout.subject_colours): same colours for the same alpha."""
    from mattekit.matting import estimate_foreground

    plate = make_plate(shared, tmp_path / "plate", 2, sequence="blackswan")
    out = tmp_path / "out"
    roto.RotoJob(spec(plate, str(out / "m.####.png"), fg=str(out / "fg.####.png"), temporal=False)).run()
    alpha = _matte((out / "m.1002.png").read_bytes(), tmp_path)
    image = read_image(tmp_path / "plate" / "plate.1002.png").pixels
    fg = read_image(out / "fg.1002.png").pixels
    expected = estimate_foreground(image[..., :3], alpha)
    soft = (alpha > 0.05) & (alpha < 0.95)
    assert soft.sum() > 50
    assert np.abs(fg[..., :3] - expected)[soft].max() <= 2 / 255
    assert np.abs(fg[..., :3] - image[..., :3])[soft].max() > 4 / 255  # colours really changed


# ------------------------------------------------- a roto job never writes over the files it reads

# (plate as given, options) per way of naming the plate's own files as an output; {p}: the plate folder
OVERWRITES = {
    "output-is-the-plate-pattern": ("{p}/f.####.png", ["-o", "{p}/f.####.png"]),
    "output-printf-pattern": ("{p}/f.####.png", ["-o", "{p}/f.%04d.png"]),
    "output-unpadded-pattern": ("{p}/f.0001.png", ["-o", "{p}/f.#.png"]),
    "output-is-the-plate-folder": ("{p}/f.####.png", ["-o", "{p}"]),
    "plate-folder-and-output-folder": ("{p}", ["-o", "{p}"]),
    "output-through-a-linked-folder": ("{p}/f.####.png", ["-o", "{link}/f.####.png"]),
    "rgba-is-the-plate-pattern": ("{p}/f.####.png", ["-o", "{out}/m.####.png", "--rgba", "{p}/f.####.png"]),
    "fg-is-the-plate-folder": ("{p}/f.####.png", ["-o", "{out}/m.####.png", "--fg", "{p}"]),
    "rgba-is-the-hint-mask-pattern": (
        "{p}/f.####.png",
        ["-o", "{out}/m.####.png", "--rgba", "{masks}/####.png", "--hint-mask", "{masks}/####.png"],
    ),
    "output-frame-is-the-weights-file": ("{p}/f.####.png", ["-o", "{w}/w.####.png", "--weights", "{w}/w.0002.png"]),
}


@pytest.mark.parametrize("case", list(OVERWRITES), ids=list(OVERWRITES))
def test_roto_refuses_outputs_that_would_replace_its_inputs(tmp_path, capsys, case):
    from mattekit.cli import main

    plate = small_plate(tmp_path / "plate")
    (tmp_path / "link").symlink_to(plate)
    masks = small_plate(tmp_path / "masks", frames=(2,))
    (masks / "f.0002.png").rename(masks / "0002.png")
    weights = small_plate(tmp_path / "weights", frames=(1,))
    (weights / "f.0001.png").rename(weights / "w.0002.png")  # an odd weights file name: an image with a number
    given, options = OVERWRITES[case]
    names = {"p": plate, "out": tmp_path / "out", "masks": masks, "link": tmp_path / "link", "w": weights}
    before = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}
    start = time.perf_counter()
    code = main(["roto", given.format(**names), *[o.format(**names) for o in options], "--model", MODEL])
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert re.fullmatch(
        r"mattekit: error: The output .* (is the|is a file of the|is a frame of the) .*: writing it "
        r"would replace .*; choose another (-o \(output pattern or folder\)|--rgba pattern|--fg pattern)\.",
        err[0],
    ), err[0]
    assert {p: p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()} == before  # nothing written
    assert not (tmp_path / "out").exists()
    assert seconds < 5, "refused before any model loads"


def test_roto_job_refuses_before_writing_and_a_distinct_output_still_runs_the_checks(tmp_path):
    plate = small_plate(tmp_path / "plate")
    with pytest.raises(OutputError, match=r"is the plate .*choose another -o"):
        roto.RotoJob(spec(str(plate / "f.####.png"), str(plate)))
    with pytest.raises(OutputError, match=r"is the --weights file"):
        roto.RotoJob(
            spec(
                str(plate / "f.####.png"),
                str(tmp_path / "o" / "m.####.png"),
                weights=str(tmp_path / "o" / "m.0003.png"),
            )
        )
    job = roto.RotoJob(spec(str(plate / "f.####.png"), str(plate / "matte.####.png")))  # beside the plate: fine
    assert job.frames == [1, 2, 3] and sorted(p.name for p in plate.iterdir()) == [
        "f.0001.png",
        "f.0002.png",
        "f.0003.png",
    ]


@pytest.mark.parametrize(
    "address, words",
    [("256.1.1.1:1", "(no such host)."), ("127.0.0.1:1", "(connection refused)."), ("10.0.0.5", "is not HOST:PORT")],
)
def test_a_ray_address_that_cannot_answer_is_one_sentence_at_once(address, words, shared, mirror, tmp_path, capsys):
    """`roto --ray ADDRESS`: an address that cannot be a cluster is refused before Ray waits on it (it hung)."""
    pytest.importorskip("ray")
    from mattekit import cli

    plate = make_plate(shared, tmp_path / "plate", 2)
    assert (
        cli.main(["roto", plate, "-o", str(tmp_path / "out" / "m.####.png"), "--model", MODEL, "--ray", address]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("mattekit: error: ") and words in err, err


# ------------------------------------------------- a manifest that roto did not write is refused, never replaced

BAD_MANIFESTS = {
    "a-list": "[1, 2]\n",
    "settings-a-number": '{"settings": 5}\n',
    "not-json": "my notes, not JSON\n",
    "model-a-text": '{"fingerprint": "x", "settings": {"model": "u2net"}, "outputs": {}}\n',
}


@pytest.mark.parametrize("case", list(BAD_MANIFESTS), ids=list(BAD_MANIFESTS))
def test_a_malformed_manifest_is_one_sentence_and_left_alone(tmp_path, capsys, case, request, monkeypatch):
    """A file at the manifest's name that is not a manifest is refused before the model's weights are looked for
    (no mirror, offline); one of roto's shape with other settings is compared with this run's, whose fingerprint
    holds the weights' sha256 (the shared mirror)."""
    from mattekit.cli import main

    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    if case == "model-a-text":
        request.getfixturevalue("mirror")
    else:
        monkeypatch.delenv("MATTEKIT_MIRROR", raising=False)

    plate = small_plate(tmp_path / "plate")
    out = tmp_path / "out"
    out.mkdir()
    manifest = out / "m.mattekit.json"
    manifest.write_text(BAD_MANIFESTS[case])
    code = main(["roto", str(plate / "f.####.png"), "-o", str(out / "m.####.png"), "--model", MODEL])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    if case == "model-a-text":  # a manifest of roto's shape, with other settings: the usual refusal
        assert "already holds mattes made with other settings (model u2net instead of csnet-sod)" in err[0], err[0]
    else:
        assert err[0] == (
            f"mattekit: error: {manifest} is not a mattekit roto manifest (the file roto keeps beside its "
            f"mattes); move or delete it, or choose another output."
        ), err[0]
    assert manifest.read_text() == BAD_MANIFESTS[case]  # left as it was
    assert sorted(p.name for p in out.iterdir()) == ["m.mattekit.json"]
    if case != "model-a-text":  # --overwrite redoes mattes; it does not replace a file roto did not write
        assert (
            main(["roto", str(plate / "f.####.png"), "-o", str(out / "m.####.png"), "--model", MODEL, "--overwrite"])
            == 2
        )
        assert "is not a mattekit roto manifest" in capsys.readouterr().err
        assert manifest.read_text() == BAD_MANIFESTS[case]


def test_a_malformed_manifest_is_refused_by_the_api_and_the_worker(tmp_path, monkeypatch):
    import mattekit

    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")  # refused before any weights are looked for
    monkeypatch.delenv("MATTEKIT_MIRROR", raising=False)
    from workers import meta_header, raw
    from mattekit.worker import service

    plate = small_plate(tmp_path / "plate")
    out = tmp_path / "out"
    out.mkdir()
    manifest = out / "m.mattekit.json"
    manifest.write_text('{"settings": 5}')
    options = {"model": MODEL, "device": "cpu", "threads": 1}
    with pytest.raises(OutputError, match=r"is not a mattekit roto manifest .*; move or delete it, or choose another"):
        mattekit.rotoscope(str(plate / "f.####.png"), str(out / "m.####.png"), **options)
    srv = service.WorkerServer(
        state_file=str(tmp_path / "state" / "worker.json"),
        idle_timeout=None,
        log=lambda text: None,
        threads=1,
        allow_dirs=[str(tmp_path)],
    ).start_background()
    try:
        status, answer, _ = raw(
            srv,
            "POST",
            "/v1/run/roto",
            b"",
            meta_header([], plate=str(plate / "f.####.png"), output=str(out / "m.####.png"), **options),
        )
    finally:
        srv.stop(wait=True)
    assert (status, answer["error"]["code"]) == (400, "bad_option"), answer  # refused before the job is queued
    assert "is not a mattekit roto manifest" in answer["error"]["message"], answer
    assert manifest.read_text() == '{"settings": 5}'
    assert sorted(p.name for p in out.iterdir()) == ["m.mattekit.json"]


def test_a_requests_ocio_config_is_confined_and_a_fifo_never_blocks_the_worker(tmp_path, monkeypatch):
    """A roto request's ``colorspace`` NAME@CONFIG names a file: outside the allowed folders only an OCIO config file
    is read (Blender sends its own so), anything else is refused with the same sentence whether it exists (a FIFO)
    or not; a FIFO inside them is refused as no regular file. A real worker process: reading a FIFO would block it
    whole (OpenColorIO holds the GIL), so the requests have a deadline and the worker is killed after."""
    import http.client
    import json as json_module

    from mattekit.wire import client
    from mattekit.wire import protocol
    from checkout import this_python

    monkeypatch.delenv("OCIO", raising=False)
    shot, elsewhere = tmp_path / "shot", tmp_path / "elsewhere"
    plate = small_plate(shot / "plate")
    elsewhere.mkdir()
    os.mkfifo(elsewhere / "fifo.ocio")
    os.mkfifo(shot / "fifo.ocio")
    monkeypatch.setenv("MATTEKIT_ALLOW_DIRS", str(shot))
    state = tmp_path / "state" / "worker.json"
    worker = client.start_worker(this_python(tmp_path), str(state), idle_timeout=120)  # this checkout's worker
    host, port = worker.url.removeprefix("http://").split(":")

    def request(method, path, options=None):
        conn = http.client.HTTPConnection(host, int(port), timeout=30)  # a frozen worker fails the test, not CI
        meta = {protocol.META_HEADER: json_module.dumps({"inputs": [], "options": options or {}})}
        conn.request(method, path, body=b"", headers={"Authorization": f"Bearer {worker.token}", **meta})
        answer = conn.getresponse()
        status, body = answer.status, json_module.loads(answer.read())
        conn.close()
        return status, body

    def roto(colorspace):
        return request(
            "POST",
            "/v1/run/roto",
            dict(
                plate=str(plate / "f.####.png"),
                model=MODEL,
                output=str(shot / "out" / "m.####.png"),
                colorspace=colorspace,
            ),
        )

    try:
        for name in ("fifo.ocio", "absent.ocio"):
            status, answer = roto(f"ACEScg@{elsewhere / name}")
            assert (status, answer["error"]["code"]) == (400, "bad_option"), answer
            assert answer["error"]["message"] == (
                f"Option 'colorspace' names {str(elsewhere / name)!r}, outside the allowed folders {shot}; start the "
                f"worker with 'mattekit serve --allow-dir FOLDER' to allow another folder."
            ), answer
        status, answer = roto(f"ACEScg@{shot / 'fifo.ocio'}")
        assert (status, answer["error"]["code"]) == (400, "bad_option"), answer
        message = answer["error"]["message"]
        assert message == f"Cannot load the OCIO config {shot / 'fifo.ocio'}: it is a FIFO, not a regular file.", (
            message
        )
        assert request("GET", "/v1/health")[0] == 200
    finally:
        pid = json_module.loads(state.read_text())["pid"]
        os.kill(pid, signal.SIGKILL)
    assert not (shot / "out").exists()


def test_a_config_named_with_the_colour_space_is_not_called_ocios(tmp_path, monkeypatch, capsys):
    """ "(from $OCIO)" is said only of the config $OCIO names, not of one a NAME@CONFIG names."""
    from mattekit.cli import main

    monkeypatch.delenv("OCIO", raising=False)
    plate = small_plate(tmp_path / "plate")
    missing = tmp_path / "missing.ocio"
    code = main(
        [
            "roto",
            str(plate / "f.####.png"),
            "-o",
            str(tmp_path / "out" / "m.####.png"),
            "--model",
            MODEL,
            "--colorspace",
            f"ACEScg@{missing}",
        ]
    )
    line = capsys.readouterr().err.strip()
    assert code == 2 and line.startswith(f"mattekit: error: Cannot load the OCIO config {missing}: "), line
    assert "$OCIO" not in line
    monkeypatch.setenv("OCIO", str(missing))
    code = main(
        [
            "roto",
            str(plate / "f.####.png"),
            "-o",
            str(tmp_path / "out" / "m.####.png"),
            "--model",
            MODEL,
            "--colorspace",
            "ACEScg",
        ]
    )
    line = capsys.readouterr().err.strip()
    assert code == 2 and line.startswith(f"mattekit: error: Cannot load the OCIO config {missing} (from $OCIO): "), line


def test_roto_refinement_works_in_small_tiles_around_the_edge(monkeypatch):
    """A 480p frame from a 320-px prediction (factor 2.7, the filter unsubsampled) is refined in ``REFINE_TILE``
    tiles: the mask equals the 512-px tiles' within 1e-6 (box sums' rounding; the same bytes on DAVIS blackswan),
    and the tiles hold under half the pixels the 512-px ones do."""
    from mattekit.ops.regions import tiles_holding
    from mattekit.finish import refine

    rng = np.random.default_rng(8)
    image = (rng.random((480, 854, 3)) * 0.2).astype(np.float32)
    yy, xx = np.mgrid[:480, :854]
    subject = (yy - 300) ** 2 / 120**2 + (xx - 420) ** 2 / 90**2 < 1
    image[subject] += 0.7
    low = cv2.resize(subject.astype(np.float32), (320, 180), interpolation=cv2.INTER_AREA)
    tiles = []
    holding = tiles_holding
    monkeypatch.setattr(refine, "tiles_holding", lambda *a: tiles.append(a[2]) or holding(*a))
    small, tile = refine.refine_mask(image, low), refine.REFINE_TILE
    monkeypatch.setattr(refine, "REFINE_TILE", refine.TILE)
    large = refine.refine_mask(image, low)
    assert tiles == [tile, refine.TILE] and tile < refine.TILE
    assert np.abs(small - large).max() <= 1e-6 and not np.array_equal(
        small, refine.round_sure(resized_map(low, 480, 854))
    )
    doubt = refine.unsure(resized_map(low, 480, 854))
    area = [
        sum((b[0].stop - b[0].start) * (b[1].stop - b[1].start) for b in holding(doubt, 1, size))
        for size in (tile, refine.TILE)
    ]
    assert area[0] < 0.5 * area[1], area


@pytest.mark.slow
def test_a_plate_of_files_read_by_several_readers_gives_one_readers_bytes(shared, mirror, tmp_path, monkeypatch):
    """With the model on CUDA a plate of files is read by several threads (a movie by one): frames read out of order
    still reach the filter and the files in order, the same bytes as one reader's run."""
    from mattekit.running import pipeline

    plate = make_plate(shared, tmp_path / "plate", 9)
    roto.RotoJob(spec(plate, str(tmp_path / "one" / "m.####.png"), radius=2)).run()
    planned, asked = pipeline.plan, []

    def three_readers(predictor, *args, readers=None, **kw):  # what the plan gives a model on CUDA
        asked.append(readers)
        return planned(predictor, *args, **kw) | {"readers": readers or 3}

    monkeypatch.setattr(pipeline, "plan", three_readers)
    roto.RotoJob(spec(plate, str(tmp_path / "three" / "m.####.png"), radius=2)).run()
    assert asked == [None] and files_of(tmp_path / "three") == files_of(tmp_path / "one")
