"""Roto jobs: resume after kill -9, verification by content, chunks and --frames splits, cancel, CLI errors, the
same bytes with several inference workers or plate readers."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from mattekit import roto
from mattekit.errors import InputError, MattekitError

from plates import MODEL, make_plate
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


@pytest.mark.slow
def test_a_plate_of_files_read_by_several_readers_gives_one_readers_bytes(shared, mirror, tmp_path, monkeypatch):
    """With the model on CUDA a plate of files is read by several threads (a movie by one): frames read out of order
    still reach the filter and the files in order, the same bytes as one reader's run."""
    from mattekit.running import layout

    plate = make_plate(shared, tmp_path / "plate", 9)
    roto.RotoJob(spec(plate, str(tmp_path / "one" / "m.####.png"), radius=2)).run()
    planned, asked = layout.plan, []

    def three_readers(predictor, *args, readers=None, **kw):  # what the plan gives a model on CUDA
        asked.append(readers)
        return planned(predictor, *args, **kw) | {"readers": readers or 3}

    monkeypatch.setattr(layout, "plan", three_readers)
    roto.RotoJob(spec(plate, str(tmp_path / "three" / "m.####.png"), radius=2)).run()
    assert asked == [None] and files_of(tmp_path / "three") == files_of(tmp_path / "one")
