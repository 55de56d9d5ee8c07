"""Atomic writes and file hashes."""
from __future__ import annotations

import os

from mattekit import fsutil


def test_atomic_write_leaves_no_temporary(tmp_path):
    target = tmp_path / "state.json"
    fsutil.atomic_write(target, "{}", mode=0o600)
    assert target.read_text() == "{}" and (target.stat().st_mode & 0o777) == 0o600
    assert fsutil.stale_temporaries(target) == []


def test_a_file_system_without_file_locks_is_one_sentence_not_an_endless_wait(tmp_path, monkeypatch):
    """Issue 70: flock's ENOLCK / EOPNOTSUPP (some NFS, SMB and FUSE mounts; none here, so flock answers as theirs
    does) made :func:`fsutil.exclusive_lock` (the weights cache's lock) poll for ever; it is one sentence now, and a lock
    another process holds (EWOULDBLOCK) is still waited for."""
    import errno
    import fcntl
    import sys
    import types

    import pytest

    from mattekit.errors import MattekitError

    if sys.platform == "win32":
        pytest.skip("flock is POSIX")
    answers = {"errno": errno.ENOLCK}

    def flock(fd, how):
        raise OSError(answers["errno"], os.strerror(answers["errno"]))

    monkeypatch.setitem(sys.modules, "fcntl", types.SimpleNamespace(flock=flock, LOCK_EX=fcntl.LOCK_EX, LOCK_NB=fcntl.LOCK_NB))
    lock = tmp_path / "hashes.json.lock"
    with pytest.raises(MattekitError, match=r"^Cannot lock .*hashes.json.lock: its file system has no file locks "
                                            r"\(flock: No locks available\).*local disk"):
        with fsutil.exclusive_lock(lock):
            pass
    answers["errno"] = errno.EWOULDBLOCK  # held elsewhere: not yet, no error
    with open(lock, "a+") as handle:
        assert fsutil.try_lock(handle) is False


def test_a_confined_write_whose_folder_becomes_a_link_while_it_writes_is_not_renamed_into_place(tmp_path):
    """Issue 81: the folder is checked where the file is written, before its temporary is made and again before
    the rename: a folder swapped for a link out of the allowed ones while the file was being encoded gets nothing
    (OutputError in one sentence), and the file never appears at its name."""
    import pytest

    from mattekit.errors import OutputError
    from mattekit.worker.operations import PathPolicy

    allowed, outside = tmp_path / "shots", tmp_path / "elsewhere"
    (allowed / "mattes").mkdir(parents=True)
    outside.mkdir()
    policy = PathPolicy([str(allowed)])

    def encode_then_swap(tmp):
        tmp.write_bytes(b"matte")
        (allowed / "mattes").rename(allowed / "moved")  # meanwhile, the folder becomes a link out
        (allowed / "mattes").symlink_to(outside, target_is_directory=True)

    with pytest.raises(OutputError) as refused:
        fsutil.atomic_write(allowed / "mattes" / "m.0001.png", encode_then_swap, confine=policy)
    assert str(refused.value).startswith(f"Cannot write in {allowed / 'mattes'}: it now leads to {outside}, outside "
                                         f"the allowed folders {allowed}")
    assert list(outside.iterdir()) == [] and not (allowed / "moved" / "m.0001.png").exists()
    with pytest.raises(OutputError):  # and a write that starts there now is refused before its temporary is made
        fsutil.atomic_write(allowed / "mattes" / "m.0002.png", b"matte", confine=policy)
    assert list(outside.iterdir()) == []
    fsutil.atomic_write(allowed / "moved" / "m.0003.png", b"matte", confine=policy)  # inside: written
    assert (allowed / "moved" / "m.0003.png").read_bytes() == b"matte"
