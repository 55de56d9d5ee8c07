"""Roto through the local worker: its paths confined to the allowed folders (checked again where each file is
written), outputs that are its plate refused, output names over 255 bytes one sentence, its loaded model reused."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from mattekit.wire.client import Pixels, WorkerError
from mattekit.worker import operations
from workers import _slow_operation, _until, count_loads, meta_header, raw


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
