"""A roto job's record on disk (:class:`Store`): the manifest beside the mattes, and the journals that
say which frames are finished.

The manifest (``<output name>.mattekit.json``) records the plate, the settings, the model and the
provenance; a re-run with other settings into the same output is refused unless ``overwrite``.
Each process appends one JSON line per finished frame to a journal of its own (:class:`Journal`), so
chunks run side by side never write the same file; a frame counts as finished only when a record
with the job's fingerprint matches the bytes on disk and the plate file it was made from. A run locks the
frames it writes (:mod:`.lock`), and replaces no file at an output name that no manifest or journal records.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import time
from pathlib import Path
from typing import Callable

from .. import __version__
from ..errors import OutputError
from ..fsutil import (
    Confinement,
    Unreadable,
    atomic_write,
    check_folder,
    ensure_folder,
    file_digests,
    file_kind,
    read_regular,
    stale_temporaries,
)
from ..io.frame_patterns import FramePattern
from ..io.naming import check_name_length
from .lock import FrameLock

MANIFEST_SUFFIX = ".mattekit.json"
JOURNAL_SUFFIX = ".mattekit-journal"
MANIFEST_BYTES = 16 << 20  # the most of a manifest read (one is a few KB)
JOURNAL_BYTES = 64 << 20  # the most of one journal read (about 150 000 frames' records)


class Store:
    """The manifest and journals of a job writing ``patterns`` ({output name: pattern}, "alpha" first)
    from the frames of ``plate``; ``confine``: the folders every file and folder it writes must lie in when it
    is written (:func:`mattekit.fsutil.check_folder`; None: anywhere)."""

    def __init__(self, plate, patterns: dict[str, FramePattern], confine: Confinement | None = None):
        self.plate = plate
        self.patterns = patterns
        self.confine = confine
        alpha = patterns["alpha"]
        stem = alpha.prefix.rstrip("._-") or "matte"
        self.manifest_path = alpha.folder / (stem + MANIFEST_SUFFIX)
        self.journal_dir = alpha.folder / ("." + stem + JOURNAL_SUFFIX)

    def outputs(self) -> dict[str, str]:
        return {name: str(pattern) for name, pattern in self.patterns.items()}

    def check(self, frames: list[int], overwrite: bool) -> None:
        """Refuse, in one sentence, a job that cannot write ``frames`` here, before any model loads: a name longer
        than the file system takes (:meth:`_check_names`), a file at the manifest's name that is no roto manifest
        (:meth:`_check_manifest`) and, unless ``overwrite``, a file at an output's name that this job did not write
        (:meth:`_refuse_foreign`)."""
        self._check_names(frames)
        self._check_manifest()
        if not overwrite:
            self._refuse_foreign(frames)

    def _check_names(self, frames: list[int]) -> None:
        """OutputError (one sentence naming the option's flag) when a name the job would write is longer than
        the file system takes: the longest of ``frames``' files of each output, or the manifest's (its journal
        folder's name is shorter)."""
        for name, pattern in self.patterns.items():
            paths = [pattern.path(frame) for frame in frames] or [pattern.path(0)]
            longest = max(paths, key=lambda path: len(os.fsencode(path.name)))
            check_name_length(longest, flag="-o" if name == "alpha" else f"--{name}")
        check_name_length(self.manifest_path, flag="-o")

    # -- the manifest
    def make_folders(self) -> None:
        """Create the folders of every output (:func:`mattekit.fsutil.ensure_folder`), each confined first."""
        for pattern in self.patterns.values():
            check_folder(pattern.folder, self.confine)
            ensure_folder(pattern.folder)

    def _check_manifest(self) -> None:
        """Refuse, in one sentence, a file at the manifest's name that is not a roto manifest: a check that needs
        no model, so a job makes it before its weights are fetched."""
        if os.path.lexists(self.manifest_path):
            self._read_manifest()

    def _refuse_foreign(self, frames: list[int]) -> None:
        """Refuse, in one sentence, a file at one of the job's output names for ``frames`` that no manifest or
        journal of this job records: it may be the user's, and a run replaces no file it did not write unless
        told to (``--overwrite``). Like :meth:`_check_manifest`, it needs no model.

        Recorded means: the manifest names this output (same option, same file naming), or a journal names the
        file for this output and frame; by file name, since a run may spell its folders relative to another
        working directory (the manifest and journals sit in the matte's folder, which ties them to this job)."""
        manifest = self._read_manifest() if os.path.lexists(self.manifest_path) else {"outputs": {}}
        records: dict[int, dict[str, list]] | None = None
        for name, pattern in self.patterns.items():
            if Path(str(manifest["outputs"].get(name, ""))).name == Path(str(pattern)).name:
                continue  # this job's output: a frame written but not yet journalled when a run was killed is its own
            for frame in frames:
                path = pattern.path(frame)
                if not os.path.lexists(path):
                    continue
                records = self._records(None) if records is None else records
                entry = records.get(frame, {}).get(name)
                if not (
                    isinstance(entry, list) and entry and isinstance(entry[0], str) and Path(entry[0]).name == path.name
                ):
                    raise OutputError(
                        f"{path} already exists and no roto manifest or journal there records it; move it "
                        f"away, choose another output, or use --overwrite to replace it."
                    )

    def open(self, settings: dict, fingerprint: str, provenance: Callable[[], dict], overwrite: bool) -> None:
        """Write the manifest, or check it against these settings (``provenance()`` is asked only when
        the manifest is written). A file there that is not a manifest is refused even with ``overwrite``."""
        old = self._read_manifest() if os.path.lexists(self.manifest_path) else None
        if old is not None and not overwrite:
            if old["fingerprint"] == fingerprint and all(old["outputs"].get(k) == v for k, v in self.outputs().items()):
                return
            if old["fingerprint"] == fingerprint:
                self._write_manifest(settings, fingerprint, old["outputs"] | self.outputs(), provenance())
                return
            what = _difference(old["settings"], settings)
            raise OutputError(
                f"{self.patterns['alpha']} already holds mattes made with other settings ({what}); "
                f"use --overwrite to redo them, or choose another output."
            )
        self._write_manifest(settings, fingerprint, self.outputs(), provenance())

    def _read_manifest(self) -> dict:
        """The manifest on disk, refused in one sentence when it is not one mattekit wrote (it is never
        replaced unasked: the file may be the user's)."""
        path = self.manifest_path
        try:
            old = json.loads(read_regular(path, MANIFEST_BYTES, links=False))
        except Unreadable as exc:
            raise OutputError(
                f"Cannot read the roto manifest {path}: it {exc}; move it away, or choose another output."
            ) from None
        except ValueError:
            old = None
        if not (
            isinstance(old, dict)
            and isinstance(old.get("fingerprint"), str)
            and isinstance(old.get("settings"), dict)
            and isinstance(old.get("outputs"), dict)
        ):
            raise OutputError(
                f"{path} is not a mattekit roto manifest (the file roto keeps beside its mattes); "
                f"move or delete it, or choose another output."
            )
        return old

    def _write_manifest(self, settings: dict, fingerprint: str, outputs: dict, provenance: dict) -> None:
        record = {
            "mattekit": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "fingerprint": fingerprint,
            "settings": settings,
            "outputs": outputs,
            "journal": self.journal_dir.name,
            "provenance": provenance,
        }
        try:
            atomic_write(self.manifest_path, json.dumps(record, indent=1, sort_keys=True) + "\n", confine=self.confine)
        except OSError as exc:
            raise OutputError(
                f"Cannot write {self.manifest_path}: {exc.strerror.lower() if exc.strerror else exc}."
            ) from None

    def lock(self, frames: list[int]):
        """A ``with`` block holding ``frames`` of this output against other live runs (:class:`.lock.FrameLock`)."""
        self._check_journal_folder()
        return FrameLock(self.journal_dir, str(self.patterns["alpha"])).hold(frames)

    def _check_journal_folder(self) -> None:
        """:func:`check_folder` of the matte's folder, and its hidden journal folder (locks too) no link out of it
        and, where something is there, a folder."""
        check_folder(self.journal_dir.parent, self.confine)
        if self.confine is not None and os.path.islink(self.journal_dir):
            raise OutputError(
                f"Cannot write in {self.journal_dir}: it is a link, and roto keeps its journal in a folder "
                f"of its own; remove the link."
            )
        kind = file_kind(self.journal_dir)
        if kind not in ("a folder", "nothing"):
            raise OutputError(
                f"Cannot write the roto journal in {self.journal_dir}: it is {kind}, not a folder; remove it (roto "
                f"keeps its journal and locks in a folder of its own)."
            )

    # -- which frames are finished
    def journal(self) -> "Journal":
        self._check_journal_folder()
        return Journal(self.journal_dir)

    def _records(self, fingerprint: str | None) -> dict[int, dict[str, list]]:
        """{frame: {output name: [file path, sha256, plate stamp]}} from journal records with
        ``fingerprint`` (None: any), the latest record of each file winning."""
        found: dict[int, dict[str, list]] = {}
        if not self.journal_dir.is_dir():
            return found
        for journal in sorted(self.journal_dir.glob("*.jsonl"), key=_modified):
            try:
                lines = read_regular(journal, JOURNAL_BYTES, links=False).decode("utf-8", "replace").splitlines()
            except Unreadable as exc:
                if not os.path.lexists(journal):  # a run's journal removed meanwhile
                    continue
                raise OutputError(
                    f"Cannot read the roto journal {journal}: it {exc}; remove it (roto writes its "
                    f"journals itself, as plain files)."
                ) from None
            for line in lines:
                try:
                    record = json.loads(line)
                    if fingerprint is None or record.get("fingerprint") == fingerprint:
                        found.setdefault(int(record["frame"]), {}).update(record["files"])
                except (ValueError, TypeError, KeyError, AttributeError):  # a line cut short by a kill
                    continue
        return found

    def finished(self, frames: list[int], fingerprint: str) -> set[int]:
        """Frames whose every output is on disk with exactly the bytes a journal recorded (for the same
        plate file as now)."""
        records = self._records(fingerprint)
        done = set()
        for frame in frames:
            files = records.get(frame, {})
            if all(
                self._verify(files.get(name), pattern.path(frame), frame) for name, pattern in self.patterns.items()
            ):
                done.add(frame)
        return done

    def plate_stamp(self, frame: int) -> list[int]:
        """Size and modification time of the plate file holding ``frame`` (a re-delivered plate is redone)."""
        path = self.plate.files[frame] if hasattr(self.plate, "files") else self.plate.path
        stat = path.stat()
        return [stat.st_size, stat.st_mtime_ns]

    def _verify(self, entry, path: Path, frame: int) -> bool:
        if not entry or len(entry) != 3 or entry[0] != str(path):
            return False
        try:
            return (
                entry[2] == self.plate_stamp(frame) and file_digests(path, "sha256", regular=True)["sha256"] == entry[1]
            )
        except (OSError, Unreadable):  # missing, or no regular file of the run's own: redone
            return False

    def clean_temporaries(self, frames: list[int]) -> None:
        """Remove temporary files a killed run left for these frames."""
        for pattern in self.patterns.values():
            check_folder(pattern.folder, self.confine)
            for frame in frames:
                for tmp in stale_temporaries(pattern.path(frame)):
                    with contextlib.suppress(OSError):
                        tmp.unlink()


def _modified(path: Path) -> int:
    """When the file at ``path`` (not a link's target) was last modified, in ns; 0 when it is gone."""
    try:
        return os.lstat(path).st_mtime_ns
    except OSError:
        return 0


def _difference(old: dict, new: dict) -> str:
    changed = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    model = old.get("model")
    name = model.get("name") if isinstance(model, dict) else model
    if "model" in changed and name != new["model"]["name"]:
        return f"model {name} instead of {new['model']['name']}"
    return "different " + (", ".join(changed) or "fingerprint")


class Journal:
    """This process's append-only journal: one JSON line per finished frame."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.fd: int | None = None

    def __enter__(self) -> "Journal":
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"{platform.node() or 'host'}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
            self.fd = os.open(
                self.folder / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0), 0o644
            )
        except OSError as exc:
            raise OutputError(
                f"Cannot write the job journal in {self.folder}: {exc.strerror.lower() if exc.strerror else exc}."
            ) from None
        return self

    def append(self, record: dict) -> None:
        os.write(self.fd, (json.dumps(record, sort_keys=True) + "\n").encode())

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)
