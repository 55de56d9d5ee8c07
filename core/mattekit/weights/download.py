"""Bringing weight files into the cache (:func:`fetch`, :func:`fetch_first`): from the cache itself,
``MATTEKIT_MIRROR`` (a local folder holding the files by name, or an http(s) base URL), rembg's model
folder (pinned files only), then the official URL; ``MATTEKIT_OFFLINE=1`` allows only the cache and
the local folders. Downloads resume a ``.part`` file; every file is checked against its pin before it
enters the cache (:mod:`mattekit.weights.cache`)."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

from mattekit import __version__
from mattekit.errors import WeightsCheckFailed, WeightsError
from mattekit.fsutil import exclusive_lock
from mattekit.weights.cache import (
    WeightFile,
    cached_path,
    check,
    expected_sha256,
    is_cached,
    link_or_copy,
    pinned,
    record_sha256,
    settled_check,
)

TIMEOUT = 30  # seconds a connection may stay silent before a download is abandoned
UNKNOWN_SIZE_CAP = 2 << 30  # bytes a download of a file without a catalog size may reach (the largest listed is 176 MB)
_CHUNK = 1 << 20


class _SourceFailed(Exception):
    """One source could not deliver the file; the message is a short reason."""


def offline() -> bool:
    """Whether MATTEKIT_OFFLINE forbids the network."""
    return os.environ.get("MATTEKIT_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _sources(wf: WeightFile) -> list[tuple[str, str | Path]]:
    """(label, location) pairs in the order to try them; a location is a Path or a URL."""
    sources: list[tuple[str, str | Path]] = []
    mirror = os.environ.get("MATTEKIT_MIRROR", "").strip()
    if mirror.startswith(("http://", "https://")):
        url = mirror.rstrip("/") + "/" + wf.name
        sources.append((f"mirror {url}", url))
    elif mirror:
        folder = Path(mirror.removeprefix("file://")).expanduser()
        sources.append((f"mirror folder {folder}", folder / wf.name))
    if pinned(wf):  # a file a user's rembg left is used only when its bytes are the pinned ones
        sources.append((f"rembg folder {rembg_dir()}", rembg_dir() / wf.name))
    sources.append((f"official URL {wf.url}", wf.url))
    return sources


def rembg_dir() -> Path:
    """rembg's model folder, where its users already have ONNX files: ``$U2NET_HOME``, else
    ``$XDG_DATA_HOME/.u2net``, else ``~/.u2net`` (rembg's own rule)."""
    home = os.environ.get("U2NET_HOME", "").strip()
    if home:
        return Path(home).expanduser()
    return Path(os.environ.get("XDG_DATA_HOME", "").strip() or "~").expanduser() / ".u2net"


DOWNLOAD_LOCK = ".downloads.lock"  # the one lock file a cache folder holds, whatever was fetched into it


def fetch(wf: WeightFile, *, progress: bool = True, network: bool = True, model: str | None = None) -> Path:
    """Return the verified local path of ``wf``, downloading it into the cache if needed.

    A cached file that no longer matches its hash is never used nor replaced silently: fetch raises
    WeightsCheckFailed naming it and asking the user to delete it (and how to fetch it again: ``mattekit models
    pull`` ``model``, the catalog model it is for, where known), so corruption or tampering gets noticed.
    ``network=False`` tries only the cache and a local-folder mirror. Processes sharing the cache
    (Ray workers, two CLI runs) take turns through one lock file per cache folder (``DOWNLOAD_LOCK``,
    not one per model): one brings a file in, the others then find it cached.
    """
    path = cached_path(wf)
    if path.is_file():
        return _fetch(wf, path, progress, network, model)
    lock = path.parent / DOWNLOAD_LOCK
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.touch()
    except OSError as e:
        raise WeightsError(
            f"Cannot write in the weights cache {path.parent} ({e.strerror or e}); "
            "set MATTEKIT_HOME to a writable folder."
        ) from None
    with exclusive_lock(lock):
        return _fetch(wf, path, progress, network, model)


def _fetch(wf: WeightFile, path: Path, progress: bool, network: bool, model: str | None) -> Path:
    """:func:`fetch` once any other process fetching ``wf`` is done: verify the cached file, else bring it in."""
    expected = expected_sha256(wf)
    if path.is_file():
        got, failed = settled_check(wf, path, expected)
        if failed:
            kind, found, wanted = failed
            again = f"then `mattekit models pull {model}` fetches it again" if model else "then run again to fetch it"
            raise WeightsCheckFailed(
                f"The weights file {path} on disk failed its {kind} check (damaged or changed: expected {wanted}, "
                f"got {found}), so it was not used; delete it, {again}."
            )
        if expected is None:  # placed by hand: its md5 matched rembg's pin, or trust on first use
            record_sha256(wf.name, got)
        return path
    part = path.with_name(path.name + ".part")
    tried = []
    for label, source in _sources(wf):
        if (offline() or not network) and isinstance(source, str):
            tried.append(f"{label} (skipped: {'MATTEKIT_OFFLINE=1' if offline() else 'local sources first'})")
            continue
        try:
            _get(source, part, wf, progress)
        except _SourceFailed as e:
            tried.append(f"{label} ({e})")
            continue
        (got, failed), size = check(wf, part, expected), part.stat().st_size
        if failed or wf.size not in (None, size):
            part.unlink()
            why = f"{failed[0]} {failed[1]}, expected {failed[2]}" if failed else f"{size} bytes, expected {wf.size}"
            if isinstance(source, Path):
                warnings.warn(f"{source} is not the catalog's {wf.name} ({why}); it was not used.")
            dropped = "not used" if isinstance(source, Path) else "the download was deleted, not cached"
            tried.append(f"{label} (failed verification: {why}; {dropped})")
            continue
        os.replace(part, path)
        if expected is None:
            record_sha256(wf.name, got)
        return path
    if offline():
        raise WeightsError(
            f"The weights file {wf.name} is not in the cache and MATTEKIT_OFFLINE=1 forbids downloading it "
            f"(tried: {'; '.join(tried)}); unset MATTEKIT_OFFLINE, set MATTEKIT_MIRROR to a folder holding the file, "
            "or import a copy you have with `mattekit models import FILE`."
        )
    raise WeightsError(
        f"Could not get the weights file {wf.name} (tried: {'; '.join(tried)}); "
        f"check your network connection and MATTEKIT_MIRROR, or put the file at {path} yourself."
    )


def _get(source: str | Path, part: Path, wf: WeightFile, progress: bool) -> None:
    """Bring ``source`` into ``part``, or raise _SourceFailed with a short reason."""
    import http.client  # (here: every command imports this module, few download)
    from urllib.error import HTTPError, URLError

    if isinstance(source, Path):
        if not source.is_file():
            raise _SourceFailed("no such file")
        if source.stat().st_size > _size_limit(wf):
            raise _SourceFailed(f"{source.stat().st_size} bytes, more than the {_size_limit(wf)} expected")
        try:
            part.unlink(missing_ok=True)
            link_or_copy(source, part)
        except OSError as e:
            raise _SourceFailed(e.strerror or str(e)) from None
        return
    for attempt in range(2):
        try:
            return _download(source, part, wf, progress)
        except HTTPError as e:
            if e.code == 416 and attempt == 0 and part.exists():  # stale .part: start over
                part.unlink()
                continue
            raise _SourceFailed(f"HTTP {e.code} {e.reason}") from None
        except URLError as e:
            raise _SourceFailed(f"unreachable: {getattr(e.reason, 'strerror', None) or e.reason}") from None
        except (OSError, ValueError, http.client.HTTPException) as e:  # timeouts, resets, bad URLs
            raise _SourceFailed(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__) from None


def _download(url: str, part: Path, wf: WeightFile, progress: bool) -> None:
    """HTTP GET into ``part``, resuming an existing ``part`` with a Range request."""
    from urllib.request import Request, urlopen

    from tqdm import tqdm

    start = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": f"mattekit/{__version__}"}
    if start:
        headers["Range"] = f"bytes={start}-"
    with urlopen(Request(url, headers=headers), timeout=TIMEOUT) as resp:
        if start and (resp.status != 206 or not resp.headers.get("Content-Range", "").startswith(f"bytes {start}-")):
            start = 0  # the server ignored the Range request and sends the whole file
        length = resp.headers.get("Content-Length", "")
        total = start + int(length) if length.isdigit() else wf.size
        limit = _size_limit(wf)
        if total is not None and total > limit:
            raise _SourceFailed(f"it announced {total} bytes, more than the {limit} expected")
        bar = tqdm(
            total=total,
            initial=start,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=wf.name,
            file=sys.stderr,
            disable=None if progress else True,
            leave=False,
        )
        with open(part, "ab" if start else "wb") as f, bar:
            while chunk := resp.read(min(_CHUNK, limit + 1 - f.tell())):
                f.write(chunk)
                bar.update(len(chunk))
                if f.tell() > limit:
                    break
            received = f.tell()
    if received > limit:  # a mirror streaming without end must not fill the disk
        part.unlink()
        raise _SourceFailed(f"it sent more than the {limit} bytes expected; the download was stopped and deleted")
    if total is not None and received < total:  # keep the .part so the next run resumes
        raise _SourceFailed(f"connection closed after {received} of {total} bytes; run again to resume")


def _size_limit(wf: WeightFile) -> int:
    """The most bytes a download of ``wf`` may bring: its catalog size, else :data:`UNKNOWN_SIZE_CAP`."""
    return wf.size or UNKNOWN_SIZE_CAP


def mirror_folder() -> Path | None:
    """The local-folder mirror (MATTEKIT_MIRROR naming a folder), if any."""
    mirror = os.environ.get("MATTEKIT_MIRROR", "").strip()
    if not mirror or mirror.startswith(("http://", "https://")):
        return None
    return Path(mirror.removeprefix("file://")).expanduser()


def local_folder(wf: WeightFile, verified: bool = True) -> str | None:
    """ "mirror" or "rembg folder": the first local folder :func:`fetch` would take ``wf`` from (holding it under
    its name, with the catalog's size when known and, with ``verified``, its pinned hash when one is known),
    else None. ``verified=False`` also names a folder whose file has the name and size but other bytes."""
    folders = [("mirror", mirror_folder())] + [("rembg folder", rembg_dir())] * pinned(wf)
    for label, folder in folders:
        path = folder / wf.name if folder else None
        if path and path.is_file() and wf.size in (None, path.stat().st_size):
            if not verified or check(wf, path, expected_sha256(wf))[1] is None:
                return label
    return None


def look_alikes(files: Sequence[WeightFile]) -> list[Path]:
    """Files in the local-folder mirror named like one of ``files`` but not the same (converted copies)."""
    folder = mirror_folder()
    if folder is None or not folder.is_dir():
        return []
    stems = {wf.name.split(".")[0].lower() for wf in files}
    names = {wf.name for wf in files}
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.name not in names and p.name.split(".")[0].lower() in stems
    )


def fetch_first(files: Sequence[WeightFile], *, progress: bool = True, model: str | None = None) -> Path:
    """The verified local path of the first of ``files`` (alternative sources of one model's weights, those of the
    catalog model ``model`` where known).

    A file already in the cache wins, then one in a local-folder mirror; otherwise each is
    downloaded in catalog order until one arrives.
    """
    for wf in files:
        if is_cached(wf):
            return fetch(wf, progress=progress, model=model)
    for wf in files:
        try:
            return fetch(wf, progress=progress, network=False)
        except WeightsError:
            pass
    failures = []
    for wf in files:
        try:
            return fetch(wf, progress=progress)
        except WeightsError as exc:
            failures.append(str(exc).rstrip("."))
    if len(failures) == 1:
        raise WeightsError(failures[0] + ".")
    found = [source for wf in files for _, source in _sources(wf) if isinstance(source, Path) and source.exists()]
    if offline() and not found:  # each file's sentence says "not there": say it once, naming them all
        places = [label for label, source in _sources(files[0]) if isinstance(source, Path)]
        raise WeightsError(
            f"None of {', '.join(wf.name for wf in files)} is in the cache{''.join(f', the {p}' for p in places)}, and "
            "MATTEKIT_OFFLINE=1 forbids downloading them; unset MATTEKIT_OFFLINE, set MATTEKIT_MIRROR to a folder "
            "holding one of them, or import a copy you have with `mattekit models import FILE`."
        )
    raise WeightsError(f"None of the {len(files)} weight files could be had: " + " / ".join(failures) + ".")
