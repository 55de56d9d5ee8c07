"""Roto's outputs: never over a file no job of theirs wrote, never two outputs on one file, never two live runs on
the same frames."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys

import numpy as np
import pytest

from mattekit.cli import main
from mattekit.io import write_image
from plates import MODEL, one_error as _error, roto_args as _roto, small_plate


@pytest.fixture
def mirror(shared, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    return shared / "weights"


def test_a_file_no_roto_job_wrote_is_not_replaced_without_overwrite(tmp_path, monkeypatch, capsys, request):
    """Item 3: a photo at out/m.0001.png and no manifest yet: refused before the weights are looked for (offline,
    no mirror), the photo kept and nothing written; --overwrite replaces it; a re-run whose manifest names the
    output resumes, even when the journal lost the frame (a kill between the rename and the journal record)."""
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    monkeypatch.delenv("MATTEKIT_MIRROR", raising=False)
    plate, out = small_plate(tmp_path / "plate"), tmp_path / "out"
    out.mkdir()
    photo = out / "m.0001.png"
    write_image(photo, np.random.default_rng(5).random((30, 20, 3)).astype(np.float32))
    before = photo.read_bytes()
    assert main(_roto(plate, out)) == 2
    assert _error(capsys) == (
        f"{photo} already exists and no roto manifest or journal there records it; move it away, "
        f"choose another output, or use --overwrite to replace it."
    )
    assert photo.read_bytes() == before and sorted(p.name for p in out.iterdir()) == ["m.0001.png"]

    request.getfixturevalue("mirror")
    assert main(_roto(plate, out, "--overwrite")) == 0
    assert photo.read_bytes() != before
    for journal in (out / ".m.mattekit-journal").glob("*.jsonl"):
        journal.unlink()  # the manifest still names the output: its files are the job's
    capsys.readouterr()
    assert main(_roto(plate, out)) == 0
    capsys.readouterr()
    rgba = tmp_path / "rgba"
    rgba.mkdir()
    write_image(rgba / "c.0002.png", np.zeros((12, 16, 4), np.float32))  # an output added later meets a file
    assert main(_roto(plate, out, "--rgba", rgba / "c.####.png")) == 2
    assert _error(capsys).startswith(f"{rgba / 'c.0002.png'} already exists and no roto manifest or journal")


@pytest.mark.parametrize(
    "patterns",
    [
        ("--rgba", "x.####.png", "--fg", "x.####.png"),
        ("--rgba", "x.#.png", "--fg", "x.####.png"),  # frames 1000 and up meet
        ("--layers", "m.####.exr", "-o", "m.####.exr"),
        ("--fg", "m.%04d.png", "-o", "m.####.png"),
    ],
    ids=["rgba-fg", "rgba-fg-padding", "layers-matte", "fg-matte"],
)
def test_two_outputs_on_one_pattern_are_refused_before_anything_runs(tmp_path, monkeypatch, capsys, patterns):
    """Item 4: the matte, --rgba, --fg and --layers patterns differ pairwise: refused in one sentence before the
    weights are looked for (offline, no mirror), nothing written."""
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    monkeypatch.delenv("MATTEKIT_MIRROR", raising=False)
    plate, out = small_plate(tmp_path / "plate"), tmp_path / "out"
    first, a, second, b = patterns
    argv = _roto(plate, out, first, out / a) + ([second, str(out / b)] if second != "-o" else [])
    if second == "-o":
        argv[argv.index("-o") + 1] = str(out / b)
    assert main(argv) == 2
    flags = " and ".join(sorted({first, second}, key=["-o", "--rgba", "--fg", "--layers"].index))
    message = _error(capsys)
    assert message.startswith(f"{flags} both name the files {out}/") and message.endswith(
        "; give each output (the matte, --rgba, --fg, --layers) a pattern of its own."
    ), message
    assert not out.exists()


def test_two_outputs_differing_only_in_case_are_refused_on_every_system(tmp_path, monkeypatch, capsys):
    """Issue 70: -o m.####.png and --rgba M.####.png are two sequences here, one on macOS's and Windows' disks (and
    the shares they mount), where each frame's RGBA would replace its matte; refused on every system, in one
    sentence, before anything runs."""
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    monkeypatch.delenv("MATTEKIT_MIRROR", raising=False)
    plate, out = small_plate(tmp_path / "plate"), tmp_path / "out"
    assert main(_roto(plate, out, "--rgba", out / "M.####.PNG")) == 2
    assert _error(capsys) == (
        f"-o and --rgba name files that differ only in case ({out}/m.####.png and "
        f"{out}/M.####.PNG), one name on macOS and Windows disks; give each output a pattern "
        f"that differs in more than case."
    )
    assert not out.exists()


def test_a_second_run_on_the_same_frames_is_refused_while_the_first_is_alive(tmp_path, mirror, capsys):
    """Item 5: a live run holds the frames it writes; a second run on any of them is refused in one sentence (in
    one process, as the worker's jobs run, and from another process), a run on other frames goes on, and a lock
    whose process was killed (-9) blocks nothing."""
    from mattekit import roto

    plate, out = small_plate(tmp_path / "plate"), tmp_path / "out"
    job = roto.RotoJob(roto.RotoSpec(plate=str(plate / "f.####.png"), output=str(out / "m.####.png"), model=MODEL))
    with job.store.lock([1, 2]):  # a run in this process (a worker's job) writing frames 1-2
        assert main(_roto(plate, out)) == 2
        assert _error(capsys) == (
            f"Another mattekit run (process {os.getpid()} on {platform.node()}) is writing "
            f"frames 1-2 of {out}/m.####.png; wait for it to finish, or choose other frames or "
            f"another output."
        )
        assert not list(out.glob("m.*.png"))
        assert main(_roto(plate, out, "--frames", "3")) == 0  # other frames: no conflict
        assert sorted(p.name for p in out.glob("m.*.png")) == ["m.0003.png"]

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from mattekit.roto.lock import FrameLock; "
            "held = FrameLock(Path(sys.argv[1]), 'x').hold([2]); held.__enter__(); print('held', flush=True); "
            "sys.stdin.read()",
            str(out / ".m.mattekit-journal"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        capsys.readouterr()
        assert main(_roto(plate, out)) == 2
        assert f"(process {holder.pid} on " in _error(capsys)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    finally:
        holder.kill()
        holder.wait()
    assert main(_roto(plate, out)) == 0  # the killed run's lock is stale
    assert sorted(p.name for p in out.glob("m.*.png")) == ["m.0001.png", "m.0002.png", "m.0003.png"]
    assert not list((out / ".m.mattekit-journal").glob("*.lock"))  # released, and the stale one removed


def test_a_fifo_named_like_a_lock_is_refused_not_waited_on(tmp_path, mirror, capsys):
    """Issue 70: a FIFO named ``*.lock`` (or ``guard``) in the journal folder blocked the run that opened it, while it
    held the guard lock every later run waits on; now it is refused in one sentence, at once, nothing written. The
    run is in a thread so that a blocked open fails the test instead of hanging it."""
    import threading

    plate, out = small_plate(tmp_path / "plate"), tmp_path / "out"
    journal = out / ".m.mattekit-journal"
    for name in ("x.lock", "guard"):
        journal.mkdir(parents=True, exist_ok=True)
        (journal / name).unlink(missing_ok=True)  # the first run's guard, a plain file
        os.mkfifo(journal / name)
        codes: list[int] = []
        run = threading.Thread(target=lambda: codes.append(main(_roto(plate, out))), daemon=True)
        run.start()
        run.join(120)
        assert codes == [2], f"the run blocked on the FIFO {name}"
        assert _error(capsys) == (
            f"Cannot lock {out}/m.####.png: {journal / name} is a FIFO, not a regular file; "
            f"remove it (mattekit's lock files are plain files)."
        )
        assert not list(out.glob("m.*.png"))
        (journal / name).unlink()


def test_a_file_system_without_flock_is_said_as_such(tmp_path, mirror, capsys, monkeypatch):
    """Issue 70: flock's ENOLCK / EOPNOTSUPP (some NFS, SMB and FUSE mounts; none here, so flock is made to answer
    as theirs does) was refused as "no locks available." with no word of what or why."""
    import errno
    import fcntl
    import types

    from mattekit.roto import lock

    def no_flock(fd, how):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(
        lock, "fcntl", types.SimpleNamespace(flock=no_flock, LOCK_EX=fcntl.LOCK_EX, LOCK_NB=fcntl.LOCK_NB)
    )
    plate, out = small_plate(tmp_path / "plate"), tmp_path / "out"
    assert main(_roto(plate, out)) == 2
    assert _error(capsys) == (
        f"Cannot lock {out}/m.####.png: the file system of {out}/.m.mattekit-journal has no file "
        f"locks (flock: No locks available), which keep two runs from writing the same frames; "
        f"write the output to a local disk."
    )
    assert not list(out.glob("m.*.png"))
