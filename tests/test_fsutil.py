"""Atomic writes and file hashes."""
from __future__ import annotations

import hashlib
import os

from mattekit import fsutil


def test_known_sha256_reads_a_file_again_only_when_it_changed(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"first")
    assert fsutil.known_sha256(path) == hashlib.sha256(b"first").hexdigest()
    path.write_bytes(b"second, longer")  # another size: read again
    assert fsutil.known_sha256(path) == hashlib.sha256(b"second, longer").hexdigest()
    stat = path.stat()
    path.write_bytes(b"third, longer!")  # same size: the new mtime says it changed
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert fsutil.known_sha256(path) == hashlib.sha256(b"third, longer!").hexdigest()


def test_atomic_write_leaves_no_temporary(tmp_path):
    target = tmp_path / "state.json"
    fsutil.atomic_write(target, "{}", mode=0o600)
    assert target.read_text() == "{}" and (target.stat().st_mode & 0o777) == 0o600
    assert fsutil.stale_temporaries(target) == []
