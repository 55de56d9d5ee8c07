"""No writing process outlives its run (mattekit.running.processes): a real `remove` of a folder on u2netp in its own
process group, its main process killed with its writers at work (SIGTERM, SIGKILL, the out-of-memory killer of a
memory limit) leaves no process of the group 10 s later; a writer killed mid-run is reaped at once while the run goes
on, and its photo is written all the same, with the bytes of a run in one process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mattekit.cli import main
from mattekit.running import layout

pytestmark = [
    pytest.mark.slow,  # a model's load and a folder's run in a subprocess: 9-45 s on 2 busy cores
    pytest.mark.skipif(not layout.processes_for({}, 2)[0], reason="this system has no writing processes"),
]

PHOTOS = 8


def _group(leader: int) -> list[int]:
    """The processes of the process group ``leader``, but zombies (which hold no memory; the reaper is who
    adopted them)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text() if entry.isdigit() else ""
        except OSError:  # it ended meanwhile
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields and fields[0] != "Z" and int(fields[2]) == leader:
            found.append(int(entry))
    return found


def _cutouts(out: Path) -> int:
    """How many cut-outs ``out`` holds (not counting a write's hidden temporary)."""
    return sum(p.suffix == ".png" and not p.name.startswith(".") for p in out.iterdir()) if out.is_dir() else 0


def _until(condition, seconds: float) -> float | None:
    """Poll ``condition()`` every 20 ms: the seconds it took to hold, or None where it still did not after
    ``seconds``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > seconds:
            return None
        time.sleep(0.02)
    return time.monotonic() - start


def _started(shared: Path, tmp_path: Path) -> tuple[subprocess.Popen, Path, list[int]]:
    """`mattekit remove` of a folder of :data:`PHOTOS` photos as its own process group, once its writing processes
    are at work (the first cut-out written): (the process, the output folder, its writing processes' pids)."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for photo in sorted((shared / "data" / "grabcut50" / "im").iterdir())[:PHOTOS]:
        (folder / photo.name).symlink_to(photo)
    env = {**os.environ, "MATTEKIT_MIRROR": str(shared / "weights"), "MATTEKIT_OFFLINE": "1"}
    argv = [sys.executable, "-m", "mattekit", "remove", str(folder), "--model", "u2netp", "-q", "-o", str(out)]
    with open(tmp_path / "stderr", "wb") as err:
        run = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    count = layout.processes_for({}, PHOTOS)[0]
    at_work = _until(lambda: run.poll() is not None or (len(_group(run.pid)) > count and _cutouts(out)), 180)
    assert at_work is not None and run.poll() is None, (tmp_path / "stderr").read_text()
    return run, out, [pid for pid in _group(run.pid) if pid != run.pid]


def _memory_cgroup() -> Path | None:
    """This process's folder of the cgroup v1 memory controller where it may make a group in it (root), else None."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            folder = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            return folder if (folder / "memory.limit_in_bytes").is_file() and os.access(folder, os.W_OK) else None
    return None


@pytest.mark.parametrize("kill", ["SIGTERM", "SIGKILL", "a memory limit"])
def test_no_process_of_a_run_is_left_once_its_main_process_is_killed(shared, tmp_path, kill):
    """ "a memory limit": the main process alone moved into a memory group of its own, limited to 16 MB more than
    it holds, where the kernel's out-of-memory killer kills it (SIGKILL) as it goes on."""
    cgroup = _memory_cgroup() if kill == "a memory limit" else None
    if kill == "a memory limit" and cgroup is None:
        pytest.skip("no cgroup v1 memory controller that this process may make a group in (root)")
    run, _, writers = _started(shared, tmp_path)
    limited = None
    try:
        if cgroup is None:
            os.kill(run.pid, getattr(signal, kill))
        else:
            limited = cgroup / f"mattekit-test-{run.pid}"
            limited.mkdir()
            (limited / "memory.limit_in_bytes").write_text(str(16 << 20))
            (limited / "cgroup.procs").write_text(str(run.pid))  # (its charges so far stay where they were)
        assert run.wait(120) == -(signal.SIGKILL if cgroup else getattr(signal, kill)), (
            tmp_path / "stderr"
        ).read_text()
        left = _until(lambda: not _group(run.pid), 10)
        assert left is not None, f"left after 10 s: {_group(run.pid)} of the writers {writers}"
    finally:
        for pid in _group(run.pid):
            os.kill(pid, signal.SIGKILL)
        if limited is not None:
            run.kill()
            run.wait()
            limited.rmdir()


def test_a_writer_killed_mid_run_is_reaped_at_once_and_its_photo_written_with_the_same_bytes(
    shared, tmp_path, monkeypatch
):
    run, out, writers = _started(shared, tmp_path)
    try:
        os.kill(writers[0], signal.SIGKILL)
        reaped = _until(lambda: not Path(f"/proc/{writers[0]}").exists(), 30)  # (a zombie keeps its entry)
        going_on, written = run.poll() is None, _cutouts(out)
        assert run.wait(180) == 0, (tmp_path / "stderr").read_text()
    finally:
        if run.poll() is None:
            run.kill()
    assert reaped is not None and going_on and written < PHOTOS, (reaped, going_on, written)
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setattr(
        layout, "processes_for", lambda stages, items: (0, "none: the test's")
    )  # every photo in this one process
    assert main(["remove", str(tmp_path / "in"), "--model", "u2netp", "-q", "-o", str(tmp_path / "alone")]) == 0
    names = sorted(p.name for p in (tmp_path / "alone").iterdir())
    assert sorted(p.name for p in out.iterdir()) == names and len(names) == PHOTOS
    assert all((out / name).read_bytes() == (tmp_path / "alone" / name).read_bytes() for name in names)
