"""Which frames of a roto output running processes are writing (:class:`FrameLock`): a run whose frames meet a
live run's is refused, so two runs never compute the same frames into one output.

Each run holds an exclusive ``flock`` on a file of its own (``*.lock``) in the job's journal folder, naming its
frames, for as long as it writes. The kernel drops the lock when the process ends, however it ends (``kill -9``
too), so a file whose lock can be taken is a dead run's and is removed. ``flock`` locks belong to an open file,
not a process: two jobs in one process (the worker's) exclude each other the same way. Chunks of one shot run
side by side (farm tasks, Ray workers) hold disjoint frames and never meet. Where ``fcntl`` is missing
(Windows), nothing is locked. Files are opened without waiting (``O_NONBLOCK``: a FIFO named ``*.lock`` would
block its opener) and any that is no regular file is refused; a file system without ``flock`` is said as such.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import stat
from pathlib import Path

from ..errors import OutputError
from ..fsutil import NO_FLOCK, Unreadable, open_regular
from ..io.frame_ranges import format_frames

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

GUARD = "guard"  # held while a run reads the others' files and adds its own
LOCK_BYTES = 16 << 20  # the most of another run's lock file read (its frames: 7 bytes each)
# flock's errors on a file system that has no such locks (some NFS, SMB and FUSE mounts)


class FrameLock:
    """The lock folder ``folder`` of the output ``what`` (named in messages); :meth:`hold` is a ``with`` block."""

    def __init__(self, folder: Path, what: str):
        self.folder, self.what = folder, what

    @contextlib.contextmanager
    def hold(self, frames: list[int]):
        """Hold ``frames`` for the block; OutputError (one sentence) when a live run holds any of them."""
        if fcntl is None or not frames:
            yield
            return
        mine = self._take(frames)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.unlink(mine[1])
            os.close(mine[0])

    def _take(self, frames: list[int]) -> tuple[int, Path]:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            guard = os.open(
                self.folder / GUARD, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0), 0o644
            )
        except OSError as exc:
            raise self._cannot(exc) from None
        try:
            self._regular(guard, self.folder / GUARD)
            fcntl.flock(guard, fcntl.LOCK_EX)  # a moment: other runs only read and add files under it
            wanted = set(frames)
            for other in sorted(self.folder.glob("*.lock")):
                held = self._live(other)
                both = wanted & _frames_of(held)
                if both:
                    raise OutputError(
                        f"Another mattekit run (process {held.get('pid')} on {held.get('host')}) is "
                        f"writing frames {format_frames(both)} of {self.what}; wait for it to finish, or "
                        f"choose other frames or another output."
                    )
            path = self.folder / f"{platform.node() or 'host'}-{os.getpid()}-{secrets.token_hex(4)}.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, json.dumps({"pid": os.getpid(), "host": platform.node(), "frames": sorted(wanted)}).encode())
            return fd, path
        except OSError as exc:
            raise self._cannot(exc) from None
        finally:
            os.close(guard)  # closing drops the guard's lock

    def _cannot(self, exc: OSError) -> OutputError:
        """The sentence for a lock folder or file that cannot be made, or a file system without ``flock``."""
        if exc.errno in NO_FLOCK:
            return OutputError(
                f"Cannot lock {self.what}: the file system of {self.folder} has no file locks (flock: "
                f"{exc.strerror or exc}), which keep two runs from writing the same frames; write the "
                f"output to a local disk."
            )
        return OutputError(
            f"Cannot lock {self.what} in {self.folder}: {exc.strerror.lower() if exc.strerror else exc}."
        )

    def _regular(self, fd: int, path: Path) -> None:
        """OutputError (one sentence) unless the open file ``fd`` at ``path`` is a regular file."""
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "FIFO" if stat.S_ISFIFO(mode) else "folder" if stat.S_ISDIR(mode) else "device or socket"
            raise OutputError(
                f"Cannot lock {self.what}: {path} is a {kind}, not a regular file; remove it (mattekit's "
                f"lock files are plain files)."
            )

    def _live(self, path: Path) -> dict | None:
        """What a live run's lock file says, or None (the file of a run that ended is removed). Opened by
        :func:`mattekit.fsutil.open_regular`: a FIFO, a device, a link or a file over :data:`LOCK_BYTES` there is
        refused in one sentence, never waited on or read."""
        try:
            fd = open_regular(path, LOCK_BYTES, links=False)
        except Unreadable as exc:
            if not os.path.lexists(path):  # a run that ended removed it meanwhile
                return None
            raise OutputError(
                f"Cannot lock {self.what}: {path} {exc}; remove it (mattekit's lock files are plain files)."
            ) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # held: its run is alive
                try:
                    said = json.loads(os.read(fd, LOCK_BYTES) or b"{}")
                except ValueError:
                    said = {}
                return said if isinstance(said, dict) else {}
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        finally:
            os.close(fd)


def _frames_of(held: dict | None) -> set[int]:
    """The frames a lock file says its run holds (none for a file that says nothing readable)."""
    frames = (held or {}).get("frames")
    return {f for f in frames if isinstance(f, int)} if isinstance(frames, list) else set()
