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

    monkeypatch.setitem(
        sys.modules, "fcntl", types.SimpleNamespace(flock=flock, LOCK_EX=fcntl.LOCK_EX, LOCK_NB=fcntl.LOCK_NB)
    )
    lock = tmp_path / "hashes.json.lock"
    with pytest.raises(
        MattekitError,
        match=r"^Cannot lock .*hashes.json.lock: its file system has no file locks "
        r"\(flock: No locks available\).*local disk",
    ):
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
    assert str(refused.value).startswith(
        f"Cannot write in {allowed / 'mattes'}: it now leads to {outside}, outside the allowed folders {allowed}"
    )
    assert list(outside.iterdir()) == [] and not (allowed / "moved" / "m.0001.png").exists()
    with pytest.raises(OutputError):  # and a write that starts there now is refused before its temporary is made
        fsutil.atomic_write(allowed / "mattes" / "m.0002.png", b"matte", confine=policy)
    assert list(outside.iterdir()) == []
    fsutil.atomic_write(allowed / "moved" / "m.0003.png", b"matte", confine=policy)  # inside: written
    assert (allowed / "moved" / "m.0003.png").read_bytes() == b"matte"


def _copies_of_the_folder_sentence() -> list[str]:
    """The modules of the package whose f-strings say "Cannot create the output folder {folder}: {the OS's reason}"
    (the sentence reads ``exc.strerror``); the planning's check for a file in the way says another thing."""
    import ast
    from pathlib import Path

    import mattekit

    root = Path(mattekit.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.JoinedStr):
                continue
            texts = [part.value for part in node.values if isinstance(part, ast.Constant)]
            if (
                texts
                and str(texts[0]).startswith("Cannot create the output folder")
                and any(isinstance(inner, ast.Attribute) and inner.attr == "strerror" for inner in ast.walk(node))
            ):
                found.append(path.relative_to(root).as_posix())
    return found


def test_the_output_folder_sentence_is_written_once_and_roto_says_it(tmp_path):
    """Issue 82: the runner (``ensure_parent``) and roto's ``Store.make_folders`` each wrote out the sentence for an
    output folder that cannot be made; both call :func:`fsutil.ensure_folder` now, the one copy of it. A folder
    blocked by a file is refused in that sentence by roto's store."""
    import pytest

    from mattekit.errors import OutputError
    from mattekit.io.frame_patterns import FramePattern
    from mattekit.roto.store import Store

    assert _copies_of_the_folder_sentence() == ["fsutil.py"]
    (tmp_path / "shots").write_text("a file where the folder goes")
    folder = tmp_path / "shots" / "mattes"
    store = Store(None, {"alpha": FramePattern.parse(str(folder / "matte.####.png"))})
    with pytest.raises(OutputError, match=rf"^Cannot create the output folder {folder}: not a directory\.$"):
        store.make_folders()
    with pytest.raises(OutputError, match=rf"^Cannot create the output folder {folder}: not a directory\.$"):
        fsutil.ensure_folder(folder)
