"""Model weights: a verified download cache, and safe loading of checkpoint containers.

Files live in ``cache_dir()`` under their own name. ``fetch`` looks there first, then in
``MATTEKIT_MIRROR`` (a local folder holding the files by name, or an http(s) base URL), then in
rembg's model folder (:func:`rembg_dir`; pinned files only, see :func:`pinned`), then at the official URL;
``MATTEKIT_OFFLINE=1`` allows only the cache and the local folders. A file from a local folder is
hard-linked into the cache (no second copy on disk) where the file system allows, else copied.
Every file is checked against its sha256 before it enters the cache, or, where the catalog knows only
rembg's md5 pin of it, against that md5. A file without a known sha256 has its sha256 recorded in
``hashes.json`` in the cache on first use (after its md5 matched, or trusted on first use where there
is no pin at all) and checked from then on.
"""
from __future__ import annotations

import http.client
import json
import os
import pickle
import shutil
import sys
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

import platformdirs
from tqdm import tqdm

from mattekit import __version__
from mattekit.errors import WeightsError
from mattekit.fsutil import atomic_write, exclusive_lock, file_digests, sha256_file

if TYPE_CHECKING:  # torch is imported where state dicts are loaded, so that the catalog starts without it
    import torch

TIMEOUT = 30  # seconds a connection may stay silent before a download is abandoned
UNKNOWN_SIZE_CAP = 2 << 30  # bytes a download of a file without a catalog size may reach (the largest listed is 176 MB)
_CHUNK = 1 << 20
_WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "net")


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


class _SourceFailed(Exception):
    """One source could not deliver the file; the message is a short reason."""


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


def _json_record(name: str, remedy: str) -> dict:
    """The JSON object in the cache file ``name`` ({} when absent); a WeightsError saying ``remedy`` if unreadable."""
    path = cache_dir() / name
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
        if not isinstance(data, dict):
            raise ValueError(path)
    except (OSError, ValueError):
        raise WeightsError(f"The record {path} is unreadable; delete it and {remedy}.") from None
    return data


def _recorded() -> dict[str, str]:
    """Hashes recorded on first download of files that had none (trust on first use)."""
    return _json_record("hashes.json", "hashes will be recorded again on the next download")


def _record(name: str, digest: str) -> None:
    with exclusive_lock(cache_dir() / "hashes.json.lock"):  # another process may record another file now
        data = {**_recorded(), name: digest}
        atomic_write(cache_dir() / "hashes.json", json.dumps(data, indent=1, sort_keys=True) + "\n")


def _expected(wf: WeightFile) -> str | None:
    digest = wf.sha256 or _recorded().get(wf.name)
    return digest.lower() if digest else None


def pinned_sha256s(files: Sequence[WeightFile]) -> set[str]:
    """The sha256s that name the pinned bytes of ``files``: the catalog's, and for a file pinned by rembg's md5
    the one recorded when a file with that md5 entered the cache (none for a file trusted on first use)."""
    recorded = _recorded() if any(wf.md5 and not wf.sha256 for wf in files) else {}
    return {d.lower() for d in (wf.sha256 or (wf.md5 and recorded.get(wf.name)) for wf in files) if d}


def _check(wf: WeightFile, path: Path, expected: str | None) -> tuple[str, tuple[str, str, str] | None]:
    """(the sha256 of the file at ``path``, None or the failed check as (hash kind, got, expected)): the sha256
    against ``expected`` when known; rembg's md5 pin when the catalog has it instead of a sha256. One read."""
    found = file_digests(path, "sha256", *["md5"] * bool(wf.md5 and not wf.sha256))
    got = found["sha256"]
    if expected and got != expected:
        return got, ("sha256", got, expected)
    if "md5" in found and found["md5"] != wf.md5.lower():
        return got, ("md5", found["md5"], wf.md5.lower())
    return got, None


def verify(wf: WeightFile) -> tuple[bool, str]:
    """Re-hash the cached file: ``(ok, one-line status)``. Changes nothing."""
    path = cached_path(wf)
    if not path.is_file():
        return False, f"{wf.name}: not downloaded"
    expected = _expected(wf)
    if expected is None and not wf.md5:
        return False, f"{wf.name}: no known sha256 to check against yet (fetching it records one)"
    got, failed = _check(wf, path, expected)
    if failed:
        kind, found, wanted = failed
        return False, f"{wf.name}: {kind} mismatch (expected {wanted}, got {found}); delete {path} and fetch it again"
    how = "" if wf.sha256 else ", md5 is rembg's pin" if wf.md5 else ", recorded on first download"
    return True, f"{wf.name}: ok (sha256 {got[:16]}…{how})"


def _offline() -> bool:
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


def link_or_copy(source: Path, target: Path) -> None:
    """Put the bytes of ``source`` at the new path ``target``: a hard link where the file system allows
    (same device, permitted), else a copy. Raises OSError."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def fetch(wf: WeightFile, *, progress: bool = True, network: bool = True) -> Path:
    """Return the verified local path of ``wf``, downloading it into the cache if needed.

    A cached file that no longer matches its hash is never replaced silently: fetch raises
    a WeightsError asking the user to delete it, so corruption or tampering gets noticed.
    ``network=False`` tries only the cache and a local-folder mirror. Processes sharing the cache
    (Ray workers, two CLI runs) take turns on each file through ``<name>.lock``: one brings it in,
    the others then find it cached.
    """
    path = cached_path(wf)
    if path.is_file():
        return _fetch(wf, path, progress, network)
    lock = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.touch()
    except OSError as e:
        raise WeightsError(f"Cannot write in the weights cache {path.parent} ({e.strerror or e}); "
                           "set MATTEKIT_HOME to a writable folder.") from None
    with exclusive_lock(lock):
        return _fetch(wf, path, progress, network)


def _fetch(wf: WeightFile, path: Path, progress: bool, network: bool) -> Path:
    """:func:`fetch` once any other process fetching ``wf`` is done: verify the cached file, else bring it in."""
    expected = _expected(wf)
    if path.is_file():
        got, failed = _check(wf, path, expected)
        if failed:
            kind, found, wanted = failed
            raise WeightsError(
                f"The cached weights file {path} does not match its {kind} (expected {wanted}, got {found}); "
                "delete it and run again to download a fresh copy."
            )
        if expected is None:  # placed by hand: its md5 matched rembg's pin, or trust on first use
            _record(wf.name, got)
        return path
    part = path.with_name(path.name + ".part")
    tried = []
    for label, source in _sources(wf):
        if (_offline() or not network) and isinstance(source, str):
            tried.append(f"{label} (skipped: {'MATTEKIT_OFFLINE=1' if _offline() else 'local sources first'})")
            continue
        try:
            _get(source, part, wf, progress)
        except _SourceFailed as e:
            tried.append(f"{label} ({e})")
            continue
        (got, failed), size = _check(wf, part, expected), part.stat().st_size
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
            _record(wf.name, got)
        return path
    if _offline():
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
        bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, desc=wf.name,
                   file=sys.stderr, disable=None if progress else True, leave=False)
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


def unwrap_state_dict(obj) -> dict[str, torch.Tensor]:
    """Return the plain tensor dict inside a checkpoint.

    Handles ``{'params_ema'|'params'|'state_dict'|...: sd}`` containers (``params_ema``
    preferred) and strips a DataParallel ``module.`` prefix.
    """
    import torch

    while isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
        else:
            raise ValueError("checkpoint holds no tensors under a known key")
    metadata = getattr(obj, "_metadata", None)
    prefix = "module." if obj and all(k.startswith("module.") for k in obj) else ""
    sd = OrderedDict((k[len(prefix):], v) for k, v in obj.items() if isinstance(v, torch.Tensor))
    if metadata is not None:
        # Module versions let BatchNorm fill in num_batches_tracked missing from old checkpoints.
        sd._metadata = OrderedDict((k[len(prefix):] if k.startswith(prefix) else k, v) for k, v in metadata.items())
    return sd


def _mirror_folder() -> Path | None:
    """The local-folder mirror (MATTEKIT_MIRROR naming a folder), if any."""
    mirror = os.environ.get("MATTEKIT_MIRROR", "").strip()
    if not mirror or mirror.startswith(("http://", "https://")):
        return None
    return Path(mirror.removeprefix("file://")).expanduser()


def local_folder(wf: WeightFile) -> str | None:
    """"mirror" or "rembg folder": the first local folder :func:`fetch` would take ``wf`` from (holding it under
    its name, with the catalog's size when known), else None; its hash is checked when the file is fetched."""
    folders = [("mirror", _mirror_folder())] + [("rembg folder", rembg_dir())] * pinned(wf)
    for label, folder in folders:
        path = folder / wf.name if folder else None
        if path and path.is_file() and wf.size in (None, path.stat().st_size):
            return label
    return None


def _look_alikes(files: Sequence[WeightFile]) -> list[Path]:
    """Files in the local-folder mirror named like one of ``files`` but not the same (converted copies)."""
    folder = _mirror_folder()
    if folder is None or not folder.is_dir():
        return []
    stems = {wf.name.split(".")[0].lower() for wf in files}
    names = {wf.name for wf in files}
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.name not in names and p.name.split(".")[0].lower() in stems)


# ------------------------------------------------------------------ files added by hand (models add)

ADDED = "added"  # cache sub-folder of files registered with `mattekit models add`


def _added_record() -> dict:
    """{model: {"file", "sha256", "derived", "source"}} of the files registered with ``models add``."""
    return _json_record("added.json", "add the files again")


def added(model: str) -> dict | None:
    """{"file", "sha256", "derived", "source"} of the file registered for ``model``, or None."""
    return _added_record().get(model)


def matching(path: Path, files: Sequence[WeightFile]) -> tuple[str, list[WeightFile]]:
    """(the sha256 of the file at ``path``, those of ``files`` it is: its sha256 is their pinned sha256, or
    for a file pinned by rembg's md5 only, its md5 is that md5). One read. Raises OSError."""
    found = file_digests(path, "sha256", "md5")
    return found["sha256"], [wf for wf in files if (wf.sha256.lower() == found["sha256"] if wf.sha256
                                                    else bool(wf.md5) and wf.md5.lower() == found["md5"])]


def add(model: str, source: Path, digest: str, wf: WeightFile | None, derived: bool) -> Path:
    """Copy ``source`` (sha256 ``digest``) into the cache for ``model``: under its catalog name when it is the
    catalog file ``wf`` (see :func:`matching`; one pinned by md5 gets ``digest`` recorded in hashes.json), else
    (``wf`` None: a converted copy, ``derived``) into ``added/`` and recorded in added.json."""
    target = cached_path(wf) if wf else cache_dir() / ADDED / f"{model}{''.join(source.suffixes[-2:]) or '.pth'}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, lambda tmp: link_or_copy(source, tmp))
        record = {k: v for k, v in _added_record().items() if k != model}
        if not wf:
            record[model] = {"file": f"{ADDED}/{target.name}", "sha256": digest, "derived": derived,
                             "source": str(source.resolve())}
        atomic_write(cache_dir() / "added.json", json.dumps(record, indent=1, sort_keys=True) + "\n")
        if wf and not wf.sha256:
            _record(wf.name, digest)
    except OSError as e:
        raise WeightsError(f"Cannot copy {source} into the weights cache {cache_dir()}: {e.strerror or e}.") from None
    return target


def model_file(model: str, files: Sequence[WeightFile], *, progress: bool = True) -> Path:
    """The weights of catalog model ``model``: the file registered with ``models add`` (checked against the
    sha256 recorded then), else :func:`fetch_first` of its catalog ``files``."""
    entry = added(model)
    if entry is None:
        try:
            return fetch_first(files, progress=progress)
        except WeightsError as exc:
            alike = _look_alikes(files)
            if not alike:
                raise
            raise WeightsError(f"{str(exc).rstrip('.')}. The mirror holds {alike[0]}, named like it but not the "
                               f"catalog's file: if it is a converted copy, register it with "
                               f"`mattekit models add {model} {alike[0]} --derived`.") from None
    path = cache_dir() / entry["file"]
    if not path.is_file() or sha256_file(path) != entry["sha256"]:
        raise WeightsError(f"The weights file {path} added for {model} is missing or changed since it was added; "
                           f"add it again with `mattekit models add {model} FILE`.")
    return path


def fetch_first(files: Sequence[WeightFile], *, progress: bool = True) -> Path:
    """The verified local path of the first of ``files`` (alternative sources of one model's weights).

    A file already in the cache wins, then one in a local-folder mirror; otherwise each is
    downloaded in catalog order until one arrives.
    """
    for wf in files:
        if is_cached(wf):
            return fetch(wf, progress=progress)
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
    raise WeightsError(f"None of the {len(files)} weight files could be had: " + " / ".join(failures) + ".")


def load_state_dict_file(path: str | Path, net: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Load a .pth/.pt/.tar checkpoint safely (``weights_only=True``), a .safetensors file, or an .onnx
    release (its parameters mapped onto ``net`` by :mod:`mattekit.onnx_import`; float32, keys of ``net``)."""
    import torch

    path = Path(path)
    if path.suffix == ".onnx":
        if net is None:
            raise ValueError("an .onnx weights file needs the module to map its parameters onto")
        from .onnx_import import import_state_dict

        return import_state_dict(path, net)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError):  # its message suggests weights_only=False: never pass that on
        raise WeightsError(f"The weights file {path} cannot be loaded safely: it is not a plain checkpoint of tensors "
                           "(it holds other Python objects, or is damaged or in another format); mattekit loads "
                           "state dicts (.pth), .safetensors and .onnx files only.") from None
    return unwrap_state_dict(obj)
