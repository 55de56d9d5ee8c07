"""Issue 81: special files in a shared shot folder (a FIFO, a device behind a link, an oversized file) where roto
keeps its manifest and journals hang or exhaust no run: one sentence and exit 2 in the CLI, a 400 or a failed job in
the real worker, which keeps serving. Each CLI run is in a thread so that a blocked read fails the test instead of
hanging it."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

import mattekit
from mattekit.cli import main
from mattekit.wire import client
from plates import MODEL, one_error as _error, roto_args as _roto, small_plate


@pytest.fixture
def mirror(shared, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")


def hostile(out: Path, kind: str) -> tuple[Path, str]:
    """Put a hostile file of ``kind`` where the roto run into ``out`` (pattern m.####.png) reads; (its path, what
    the sentence says of it)."""
    journal = out / ".m.mattekit-journal"
    if kind == "folder FIFO":  # the journal folder itself
        out.mkdir(parents=True, exist_ok=True)
        os.mkfifo(journal)
        return journal, "a FIFO, not a folder"
    journal.mkdir(parents=True, exist_ok=True)
    where = {
        "manifest FIFO": out / "m.mattekit.json",
        "manifest to /dev/zero": out / "m.mattekit.json",
        "journal FIFO": journal / "x.jsonl",
        "journal to /dev/zero": journal / "x.jsonl",
        "journal oversized": journal / "x.jsonl",
        "lock to /dev/zero": journal / "x.lock",
    }[kind]
    if kind.endswith("FIFO"):
        os.mkfifo(where)
        return where, "is a FIFO, not a regular file"
    if kind.endswith("/dev/zero"):
        where.symlink_to("/dev/zero")
        return where, "is a link, not a regular file"
    with open(where, "wb") as f:  # sparse: no disk used
        f.truncate(65 << 20)
    return where, "holds 65.0 MiB, more than the 64 MiB read"


SENTENCES = {
    "manifest": "Cannot read the roto manifest {path}: it {what}; move it away, or choose another output.",
    "journal": "Cannot read the roto journal {path}: it {what}; remove it (roto writes its journals itself, "
    "as plain files).",
    "lock": "Cannot lock {out}/m.####.png: {path} {what}; remove it (mattekit's lock files are plain files).",
    "folder": "Cannot write the roto journal in {path}: it is {what}; remove it (roto keeps its journal and locks in a "
    "folder of its own).",  # issue 91: "Cannot lock ... in ...: file exists."
}


@pytest.mark.parametrize(
    "kind",
    [
        "manifest FIFO",
        "manifest to /dev/zero",
        "journal FIFO",
        "journal to /dev/zero",
        "journal oversized",
        "lock to /dev/zero",
        "folder FIFO",
    ],
)
def test_a_special_file_in_the_shot_folder_is_one_sentence_in_the_cli(tmp_path, mirror, capsys, kind):
    plate, out = small_plate(tmp_path / "plate"), tmp_path / "out"
    if kind.startswith("journal"):  # a finished run first: its journals are read to tell which frames are done
        assert main(_roto(plate, out, "--frames", "1")) == 0
        capsys.readouterr()
    path, what = hostile(out, kind)
    codes: list[int] = []
    run = threading.Thread(target=lambda: codes.append(main(_roto(plate, out))), daemon=True)
    run.start()
    run.join(120)
    assert codes == [2], f"the run blocked or ran on: {kind}"
    assert _error(capsys) == SENTENCES[kind.split()[0]].format(path=path, what=what, out=out)
    assert not (out / "m.0002.png").exists()


def this_python(tmp_path: Path) -> str:
    """An interpreter that imports the mattekit under test (the client clears PYTHONPATH for the worker)."""
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={Path(mattekit.__file__).parents[1]} exec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def outcome(worker: client.WorkerClient, options: dict, within: float = 120) -> tuple[str, str]:
    """("refused" or the job's last state, the message) of a roto job submitted to ``worker``."""
    try:
        job = worker.submit("roto", [], options)
    except client.WorkerError as exc:
        return ("refused" if exc.status == 400 else f"HTTP {exc.status}"), str(exc)
    ends = time.monotonic() + within
    while time.monotonic() < ends:
        status = worker.job(job)
        if status["state"] in ("done", "failed", "cancelled"):
            return status["state"], str(status.get("error") or status.get("message"))
        time.sleep(0.2)
    return "still running", ""


def test_special_files_in_a_shot_folder_fail_the_workers_job_and_it_keeps_serving(tmp_path, mirror, monkeypatch):
    """A FIFO named as the manifest hung each request naming it; a FIFO journal blocked the compute thread for every
    later job. Now: a 400 or a failed job saying which file, then health and a real job still answer."""
    shot = tmp_path / "shot"
    plate = small_plate(shot / "plate")
    monkeypatch.setenv("MATTEKIT_ALLOW_DIRS", str(shot))
    state = tmp_path / "state" / "worker.json"
    started = client.start_worker(this_python(tmp_path), str(state), idle_timeout=300)
    worker = client.WorkerClient(started.url, started.token, timeout=30)  # a frozen worker fails the test, not CI
    common = {"plate": str(plate / "f.####.png"), "model": MODEL, "temporal": False}
    try:
        for kind in ("manifest FIFO", "journal FIFO", "journal to /dev/zero", "folder FIFO"):
            out = shot / kind.replace(" ", "-").replace("/", "")
            if kind.startswith("journal"):
                assert outcome(worker, dict(common, output=str(out / "m.####.png"), frames="1"))[0] == "done"
            path, what = hostile(out, kind)
            for _ in range(3):  # each request naming it, not only the first
                state_, message = outcome(worker, dict(common, output=str(out / "m.####.png")))
                assert state_ in ("refused", "failed"), (kind, state_, message)
                assert str(path) in message and what in message, (kind, message)
                assert worker.health(timeout=5)["ok"] is True
        assert outcome(worker, dict(common, output=str(shot / "fine" / "m.####.png")))[0] == "done"
        assert sorted(p.name for p in (shot / "fine").glob("m.*.png")) == ["m.0001.png", "m.0002.png", "m.0003.png"]
    finally:
        os.kill(json.loads(state.read_text())["pid"], signal.SIGKILL)
