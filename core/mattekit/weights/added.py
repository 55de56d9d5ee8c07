"""Files added by hand with ``mattekit models add``, and the file a catalog model runs with
(:func:`model_file`: the one added for it, else its catalog files fetched)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from mattekit.errors import InputError, WeightsCheckFailed, WeightsError
from mattekit.fsutil import atomic_write, file_digests
from mattekit.weights.cache import (
    WeightFile,
    cache_dir,
    cached_path,
    file_sha256,
    link_or_copy,
    read_record,
    record_sha256,
)
from mattekit.weights.download import fetch_first, look_alikes

ADDED = "added"  # cache sub-folder of files registered with `mattekit models add`


def _added_record() -> dict:
    """{model: {"file", "sha256", "derived", "source"}} of the files registered with ``models add``."""
    return read_record("added.json", "add the files again")


def added(model: str) -> dict | None:
    """{"file", "sha256", "derived", "source"} of the file registered for ``model``, or None."""
    return _added_record().get(model)


def matching(path: Path, files: Sequence[WeightFile]) -> tuple[str, list[WeightFile]]:
    """(the sha256 of the file at ``path``, those of ``files`` it is: its sha256 is their pinned sha256, or
    for a file pinned by rembg's md5 only, its md5 is that md5). One read. Raises OSError."""
    found = file_digests(path, "sha256", "md5")
    return found["sha256"], [
        wf
        for wf in files
        if (
            wf.sha256.lower() == found["sha256"] if wf.sha256 else wf.md5 is not None and wf.md5.lower() == found["md5"]
        )
    ]


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
            record[model] = {
                "file": f"{ADDED}/{target.name}",
                "sha256": digest,
                "derived": derived,
                "source": str(source.resolve()),
            }
        atomic_write(cache_dir() / "added.json", json.dumps(record, indent=1, sort_keys=True) + "\n")
        if wf and not wf.sha256:
            record_sha256(wf.name, digest)
    except OSError as e:
        raise WeightsError(f"Cannot copy {source} into the weights cache {cache_dir()}: {e.strerror or e}.") from None
    return target


def model_file(model: str, files: Sequence[WeightFile], *, progress: bool = True) -> Path:
    """The weights of catalog model ``model``: the file registered with ``models add`` (checked against the
    sha256 recorded then), else :func:`fetch_first` of its catalog ``files``."""
    entry = added(model)
    if entry is None:
        try:
            return fetch_first(files, progress=progress, model=model)
        except WeightsCheckFailed:
            raise
        except WeightsError as exc:
            alike = look_alikes(files)
            if not alike:
                raise
            fix = f"`mattekit models add {model} {alike[0]} --derived`"
            raise WeightsError(
                f"{str(exc).rstrip('.')}. The mirror holds {alike[0]}, named like it but not the "
                f"catalog's file: if it is a converted copy, register it with {fix}.",
                fix,
            ) from None
    path = cache_dir() / entry["file"]
    if not path.is_file() or file_sha256(path) != entry["sha256"]:
        raise WeightsCheckFailed(
            f"The weights file {path} added for {model} is missing or changed since it was added; "
            f"add it again with `mattekit models add {model} FILE`."
        )
    return path


def given_file(path: str | Path) -> Path:
    """The weights file a user named (``--weights``, ``models add``) as a Path, or an InputError sentence saying
    why it cannot be one: missing, a folder, not a regular file (a device, a pipe) or empty."""
    given = Path(path).expanduser()
    if given.is_dir():
        raise InputError(f"Weights file {path} is a folder; name the weights file inside it.")
    if not given.exists():
        raise InputError(f"Weights file {path} does not exist.")
    if not given.is_file():
        raise InputError(f"Weights file {path} is not a regular file (a device or a pipe); name a weights file.")
    if given.stat().st_size == 0:
        raise InputError(f"Weights file {path} is empty.")
    return given
