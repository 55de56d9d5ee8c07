"""The weights cache: where each file lives, the sha256s known or recorded for its files, the sha256 each file was
last read whole with (:func:`file_sha256`, remembered in ``digests.json`` signed with the cache's own key), and
checking a cached file against them (:func:`settled_check` at each use, :func:`verify` reading it whole)."""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import platformdirs

from mattekit.errors import WeightsError
from mattekit.fsutil import atomic_write, exclusive_lock, file_digests, temporary_name


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
RECHECK_NS = 7 * 86_400 * 10**9  # a remembered digest is trusted this long (ns), then the file is read whole again


def file_sha256(path: str | Path) -> str:
    """The sha256 of the file at ``path``: read once per version of the file and remembered across processes in the
    cache's ``digests.json`` (:func:`remember`), to name it (the weights a run used, in provenance, manifests and
    export caches) and to check a cached file at each use (:func:`settled_check`). A remembered digest is used only
    where its record is sound: signed with the cache's own key (``digests.key``, so an edit of digests.json alone
    gives a miss), made for this file's resolved path, size, modification and change times, inode and device (any
    write changes the change time, which no user can set back) and at most :data:`RECHECK_NS` old (bit rot that
    leaves the metadata alone is caught at the next whole read, or at once by ``mattekit models verify``); anything
    else is a miss and the file is read whole again. BiRefNet's 885 MB took 0.8 s to hash at each run here, IS-Net's
    176 MB 0.13 s (with the CPU's SHA instructions; about 0.45 s without them)."""
    path = Path(path).resolve()
    identity = _identity(path)
    if (got := _DIGESTS.get((str(path), *identity))) is not None:
        return got
    known = _remembered(path, identity)
    if known is not None:
        _DIGESTS[(str(path), *identity)] = known
        return known
    digest = file_digests(path, "sha256")["sha256"]
    if remember(path, identity, digest):
        _DIGESTS[(str(path), *identity)] = digest
    return digest


_DIGESTS: dict[tuple, str] = {}  # this process's: (resolved path, *identity) -> sha256 remembered on disk


def read_sha256(path: str | Path) -> tuple[str, list[int]]:
    """(the sha256 of the file at ``path`` read whole now, whatever is remembered, and then remembered; the file's
    identity before the read, for :func:`unchanged`)."""
    path = Path(path).resolve()
    identity = _identity(path)
    digest = file_digests(path, "sha256")["sha256"]
    remember(path, identity, digest)
    return digest, identity


def unchanged(path: str | Path, identity: list[int]) -> bool:
    """Whether the file at ``path`` still has ``identity`` (:func:`read_sha256`) but for its change time: nothing
    wrote to it since (a hard link made to it elsewhere, as another cache linking the same mirror file does, changes
    its change time alone)."""
    now = _identity(Path(path).resolve())
    return now[:2] + now[3:] == identity[:2] + identity[3:]


def _identity(path: Path) -> list[int]:
    """What any write to the file at ``path`` changes: [size, mtime, ctime, inode, device] (ns for the times)."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _key(make: bool) -> bytes | None:
    """The cache's secret for signing digests.json (32 random bytes in ``digests.key``, readable by its owner
    only), made when missing with ``make``; None where there is none or it cannot be read or made."""
    path = cache_dir() / "digests.key"
    try:
        return bytes.fromhex(path.read_text())
    except FileNotFoundError:
        if not make:
            return None
    except ValueError:  # damaged: a new key (the records signed with the old one are misses, read again)
        if not make:
            return None
        with contextlib.suppress(OSError):
            path.unlink()
    except OSError:
        return None
    tmp = temporary_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        with contextlib.suppress(FileExistsError):  # another process made one first: theirs is the key
            os.link(tmp, path)
    except OSError:
        return None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return _key(False)


def _signature(key: bytes, path: Path, identity: list, digest: str, checked: int) -> str:
    return hmac.new(key, json.dumps([str(path), identity, digest, checked]).encode(), "sha256").hexdigest()


def _remembered(path: Path, identity: list) -> str | None:
    """The sha256 digests.json remembers for this version of the file at ``path``, or None: no sound record."""
    try:
        known = read_record("digests.json", "digests will be read again").get(str(path))
    except WeightsError:
        return None  # an unreadable record is only a cache: rewritten at the next whole read
    key = _key(False)
    if not (key and isinstance(known, dict) and known.get("identity") == identity):
        return None
    digest, checked = known.get("sha256"), known.get("checked")
    if not (isinstance(digest, str) and isinstance(checked, int) and 0 <= time.time_ns() - checked < RECHECK_NS):
        return None
    if not hmac.compare_digest(str(known.get("mac")), _signature(key, path, identity, digest, checked)):
        return None
    return digest


def remember(path: Path, identity: list, digest: str) -> bool:
    """Record in digests.json that the file at the resolved ``path``, of ``identity`` (taken before a whole read by
    mattekit), has the sha256 ``digest`` (what that read found), signed; forget any earlier record of it where the
    file changed within :data:`SETTLED_NS` (file times move in coarse ticks, 4 ms here: a rewrite in the tick of
    this version could keep them). Whether it was recorded; a cache folder that cannot be written records nothing
    (the file is then read whole at each use)."""
    settled = time.time_ns() - max(identity[1], identity[2]) >= SETTLED_NS
    record = cache_dir() / "digests.json"
    for cached in [k for k in _DIGESTS if k[0] == str(path)]:
        del _DIGESTS[cached]
    with contextlib.suppress(WeightsError):
        if not settled and str(path) not in read_record(record.name, ""):
            return False  # nothing to forget
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        key = _key(True)
        with exclusive_lock(record.with_name(record.name + ".lock")):
            try:
                data = read_record(record.name, "")
            except WeightsError:
                data = {}
            data = {k: v for k, v in data.items() if Path(k).is_file() and k != str(path)}  # removed files forgotten
            if settled and key:
                checked = time.time_ns()
                mac = _signature(key, path, identity, digest, checked)
                data[str(path)] = {"identity": identity, "sha256": digest, "checked": checked, "mac": mac}
            atomic_write(record, json.dumps(data, indent=1, sort_keys=True) + "\n")
    except OSError:
        return False
    return settled and key is not None


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
    """Re-hash the cached file: ``(ok, one-line status)``. Changes nothing but the digest remembered for it
    (:func:`remember`): a file that fails here is refused by later runs too."""
    path = cached_path(wf)
    if not path.is_file():
        return False, f"{wf.name}: not downloaded"
    expected = expected_sha256(wf)
    if expected is None and not wf.md5:
        return False, f"{wf.name}: no known sha256 to check against yet (fetching it records one)"
    identity = _identity(path.resolve())
    got, failed = check(wf, path, expected)
    remember(path.resolve(), identity, got)  # what this whole read found is what later runs check against
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
