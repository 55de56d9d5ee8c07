"""The weights cache: where each file lives, the sha256s known or recorded for its files, and checking
a cached file against them (:func:`verify`)."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import platformdirs

from mattekit.errors import WeightsError
from mattekit.fsutil import atomic_write, exclusive_lock, file_digests


@dataclass(frozen=True)
class WeightFile:
    """One checkpoint: its file name (same on a mirror and in the cache) and where to get it."""

    name: str
    url: str
    sha256: str | None = None  # None (left out of the catalog): md5's pin, else trust on first use (hashes.json)
    size: int | None = None
    md5: str | None = None  # rembg's own pin (pooch "md5:..."), checked where no sha256 is known


def pinned(wf: WeightFile) -> bool:
    """Whether the catalog knows ``wf``'s bytes before any download: by sha256, or by rembg's md5."""
    return bool(wf.sha256 or wf.md5)


def cache_dir() -> Path:
    """``$MATTEKIT_HOME/weights``, else the user cache folder's ``mattekit/weights``."""
    home = os.environ.get("MATTEKIT_HOME")
    root = Path(home).expanduser() if home else Path(platformdirs.user_cache_dir("mattekit"))
    return root / "weights"


def cached_path(wf: WeightFile) -> Path:
    """Where ``wf`` lives (or would live) in the cache."""
    if wf.name in ("", ".", "..") or Path(wf.name).name != wf.name:
        raise ValueError(f"weight file name must be a plain file name, got {wf.name!r}")
    return cache_dir() / wf.name


def is_cached(wf: WeightFile) -> bool:
    return cached_path(wf).is_file()


def read_record(name: str, remedy: str) -> dict:
    """The JSON object in the cache file ``name`` ({} when absent); a WeightsError saying ``remedy`` if unreadable."""
    path = cache_dir() / name
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
        if not isinstance(data, dict):
            raise ValueError(path)
    except (OSError, ValueError):
        raise WeightsError(f"The record {path} is unreadable; delete it and {remedy}.") from None
    return data


def recorded_sha256s() -> dict[str, str]:
    """Hashes recorded on first download of files that had none (trust on first use)."""
    return read_record("hashes.json", "hashes will be recorded again on the next download")


def record_sha256(name: str, digest: str) -> None:
    with exclusive_lock(cache_dir() / "hashes.json.lock"):  # another process may record another file now
        data = {**recorded_sha256s(), name: digest}
        atomic_write(cache_dir() / "hashes.json", json.dumps(data, indent=1, sort_keys=True) + "\n")


SETTLED_NS = 2_000_000_000  # a file last changed this long ago (ns): a rewrite from now on gives it new times


def file_sha256(path: str | Path) -> str:
    """The sha256 of the file at ``path``: read once per version of the file and remembered across processes in the
    cache's ``digests.json`` by its resolved path, size, modification and change times and inode (any rewrite of a
    file changes its times), to name it (the weights a run used, in provenance, manifests and export caches) and to
    check a cached file at each use (:func:`settled_check`). Only a file whose content and metadata last changed at
    least :data:`SETTLED_NS` ago is remembered: file times move in coarse ticks (4 ms here), so a rewrite in the tick
    of the hashed version could keep its times. BiRefNet's 885 MB took 0.8 s to hash at each run here, IS-Net's 176 MB 0.13 s (with the CPU's SHA
    instructions; about 0.45 s without them)."""
    path = Path(path).resolve()
    st = path.stat()
    identity = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < SETTLED_NS:
        return file_digests(path, "sha256")["sha256"]
    if (got := _DIGESTS.get((str(path), *identity))) is not None:
        return got
    _DIGESTS[(str(path), *identity)] = digest = _remembered_sha256(path, identity)
    return digest


_DIGESTS: dict[tuple, str] = {}  # this process's: (resolved path, *identity) -> sha256


def _remembered_sha256(path: Path, identity: list) -> str:
    """:func:`file_sha256` from the cache's record when its ``identity`` matches, else read and recorded."""
    record = cache_dir() / "digests.json"
    try:
        known = read_record(record.name, "digests will be read again").get(str(path))
    except WeightsError:
        known = None  # an unreadable record is only a cache: rewritten below
    if isinstance(known, dict) and known.get("identity") == identity and isinstance(known.get("sha256"), str):
        return known["sha256"]
    digest = file_digests(path, "sha256")["sha256"]
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(record.with_name(record.name + ".lock")):
            try:
                data = read_record(record.name, "")
            except WeightsError:
                data = {}
            data = {k: v for k, v in data.items() if Path(k).is_file()}  # files since removed are forgotten
            data[str(path)] = {"identity": identity, "sha256": digest}
            atomic_write(record, json.dumps(data, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass  # a cache folder that cannot be written: the digest is right, only read again next time
    return digest


def expected_sha256(wf: WeightFile) -> str | None:
    digest = wf.sha256 or recorded_sha256s().get(wf.name)
    return digest.lower() if digest else None


def pinned_sha256s(files: Sequence[WeightFile]) -> set[str]:
    """The sha256s that name the pinned bytes of ``files``: the catalog's, and for a file pinned by rembg's md5
    the one recorded when a file with that md5 entered the cache (none for a file trusted on first use)."""
    recorded = recorded_sha256s() if any(wf.md5 and not wf.sha256 for wf in files) else {}
    return {d.lower() for d in (wf.sha256 or (wf.md5 and recorded.get(wf.name)) for wf in files) if d}


def check(wf: WeightFile, path: Path, expected: str | None) -> tuple[str, tuple[str, str, str] | None]:
    """(the sha256 of the file at ``path``, None or the failed check as (hash kind, got, expected)): the sha256
    against ``expected`` when known; rembg's md5 pin when the catalog has it instead of a sha256. One read."""
    found = file_digests(path, "sha256", *["md5"] * bool(wf.md5 and not wf.sha256))
    got = found["sha256"]
    if expected and got != expected:
        return got, ("sha256", got, expected)
    if "md5" in found and wf.md5 and found["md5"] != wf.md5.lower():
        return got, ("md5", found["md5"], wf.md5.lower())
    return got, None


def settled_check(wf: WeightFile, path: Path, expected: str | None) -> tuple[str, tuple[str, str, str] | None]:
    """:func:`check` of a cached file at its use: where its sha256 is known, the one :func:`file_sha256` remembers for
    this version of the file (read again only after a change), else :func:`check` (rembg's md5 pin, or a file whose
    sha256 is recorded at this first use). :func:`verify` reads the file again whatever is remembered."""
    if not expected:
        return check(wf, path, expected)
    got = file_sha256(path)
    return got, None if got == expected else ("sha256", got, expected)


def verify(wf: WeightFile) -> tuple[bool, str]:
    """Re-hash the cached file: ``(ok, one-line status)``. Changes nothing."""
    path = cached_path(wf)
    if not path.is_file():
        return False, f"{wf.name}: not downloaded"
    expected = expected_sha256(wf)
    if expected is None and not wf.md5:
        return False, f"{wf.name}: no known sha256 to check against yet (fetching it records one)"
    got, failed = check(wf, path, expected)
    if failed:
        kind, found, wanted = failed
        return False, f"{wf.name}: {kind} mismatch (expected {wanted}, got {found}); delete {path} and fetch it again"
    how = "" if wf.sha256 else ", md5 is rembg's pin" if wf.md5 else ", recorded on first download"
    return True, f"{wf.name}: ok (sha256 {got[:16]}…{how})"


def link_or_copy(source: Path, target: Path) -> None:
    """Put the bytes of ``source`` at the new path ``target``: a hard link where the file system allows
    (same device, permitted), else a copy. Raises OSError."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
