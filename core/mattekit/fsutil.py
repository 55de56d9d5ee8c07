"""Files written whole or not at all, and their hashes. Standard library only.

- :func:`atomic_write` - write through a hidden temporary name in the target's folder, then rename;
- :func:`stale_temporaries` - the temporaries a killed process left behind for a target;
- :func:`sha256_file` - hex sha256 of a file, read in 1 MiB blocks (:func:`file_digests`: several hashes, one read);
- :func:`try_lock` / :func:`exclusive_lock` - an exclusive lock on an open file, between processes;
- :class:`FilesRead` - the files a run reads, to refuse an output that would land on one of them;
- :func:`file_kind` - what is at a path, in words ("a FIFO", "a device", "a link loop");
- :func:`open_regular` / :func:`read_regular` - a regular file's descriptor or bytes, never blocking on a FIFO or a
  device, never following a final link unless asked, size-capped: how mattekit reads what others can write;
- :func:`check_folder` - a folder about to be written in, checked (links resolved now) against the allowed ones.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import stat
import sys
import time
from pathlib import Path
from typing import Callable, Protocol, Union

from .wire.locks import lock

TEMP_SUFFIX = ".tmp"
TEMP_EXTRA = len(".." + "0" * 8 + TEMP_SUFFIX)  # bytes :func:`temporary_name` adds to a name
NAME_MAX = 255  # bytes in one file name: the limit of ext4, APFS, NTFS and most other file systems
Content = Union[bytes, str, Callable[[Path], None]]


def temporary_name(path: Path) -> Path:
    """A fresh hidden temporary beside ``path``: ``.NAME.<8 hex>.tmp``."""
    return path.parent / f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


def stale_temporaries(path: str | Path) -> list[Path]:
    """Temporaries of ``path`` left by an earlier, killed write (same naming as :func:`temporary_name`)."""
    path = Path(path)
    prefix = f".{path.name}."
    try:
        return [
            p
            for p in path.parent.iterdir()
            if p.name.startswith(prefix)
            and p.name.endswith(TEMP_SUFFIX)
            and len(p.name) == len(prefix) + 8 + len(TEMP_SUFFIX)
        ]
    except OSError:
        return []


class Confinement(Protocol):
    """The folders a run may write in (the worker's :class:`mattekit.worker.operations.PathPolicy` is one)."""

    where: str  # how a sentence names them: "the allowed folders /a, /b"

    def holds(self, real: str) -> bool:
        """Whether the real path ``real`` (links resolved) lies in them."""


def check_folder(folder: str | Path, confine: Confinement | None) -> None:
    """OutputError (one sentence) unless ``folder``, its links resolved now, lies where ``confine`` allows (None:
    anywhere): asked where files are opened for writing, so that a folder moved or replaced by a link after its
    path was checked receives nothing."""
    if confine is None:
        return
    real = os.path.realpath(os.path.abspath(folder))
    if not confine.holds(real):
        from .errors import OutputError

        raise OutputError(
            f"Cannot write in {folder}: it now leads to {real}, outside {confine.where} (it was moved or "
            f"replaced by a link after the job was accepted); nothing was written there."
        )


def ensure_folder(folder: str | Path) -> None:
    """Create ``folder`` and the folders above it (kept when they exist); an OutputError sentence when that is
    impossible or the folder is not writable. The one place that says so (the CLI's outputs, roto's folders)."""
    from .errors import OutputError

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"Cannot create the output folder {folder}: {exc.strerror.lower() if exc.strerror else exc}."
        ) from None
    if not os.access(folder, os.W_OK):
        raise OutputError(f"The output folder {folder} is not writable.")


def atomic_write(
    path: str | Path, content: Content, *, mode: int | None = None, confine: Confinement | None = None
) -> Path:
    """Write ``content`` to ``path`` so that readers see the old file or the whole new one, never a part.

    content: bytes, text (UTF-8), or a function ``write(temporary_path)`` that creates the file.
    mode: permission bits for the new file (e.g. 0o600), set before any byte is written.
    confine: the folders the file may land in, asked of its folder before the temporary is made and again
    before the rename (:func:`check_folder`, OutputError).
    Raises OSError (the temporary is removed); callers turn it into their one-sentence error.
    """
    path = Path(path)
    check_folder(path.parent, confine)
    tmp = temporary_name(path)
    try:
        if callable(content):
            content(tmp)
            if mode is not None:
                os.chmod(tmp, mode)
        else:
            data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
            try:
                if mode is not None and hasattr(os, "fchmod"):
                    os.fchmod(fd, mode)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        check_folder(path.parent, confine)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return path


def file_digests(path: str | Path, *names: str, regular: bool = False) -> dict[str, str]:
    """{name: hex digest} of the file at ``path`` for each hashlib algorithm named ("sha256", "md5"), all from
    one read now. ``regular``: read only a regular file, not through a final link (:func:`open_regular`;
    Unreadable otherwise), for a file in a folder others may write in."""
    hashes = {name: hashlib.new(name) for name in names}
    with os.fdopen(open_regular(path, 1 << 50, links=False), "rb") if regular else open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            for digest in hashes.values():
                digest.update(block)
    return {name: digest.hexdigest() for name, digest in hashes.items()}


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of the file at ``path``, read now."""
    return file_digests(path, "sha256")["sha256"]


NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}  # a file system without file locks


def try_lock(handle) -> bool:
    """Take an exclusive lock on the open file ``handle`` without waiting; False while another process holds
    it. Closing the handle (or the process ending) releases it. A file system without file locks (``flock``:
    :data:`NO_FLOCK`) is a MattekitError saying so, never a wait that cannot end."""
    try:
        lock(handle, wait=False)
    except OSError as exc:
        if exc.errno in NO_FLOCK:
            from .errors import MattekitError

            raise MattekitError(
                f"Cannot lock {handle.name}: its file system has no file locks (flock: "
                f"{exc.strerror or exc}), which keep two processes from writing the same file; "
                f"put it on a local disk (MATTEKIT_HOME for mattekit's own files)."
            ) from None
        return False
    return True


@contextlib.contextmanager
def exclusive_lock(path: str | Path, poll: float = 0.1):
    """Hold an exclusive lock on the file ``path`` (created if missing, left in place) for the ``with``
    body, waiting as long as another process holds it, polling every ``poll`` seconds. Raises OSError
    when the file cannot be opened."""
    handle = open(path, "a+")
    try:
        while not try_lock(handle):
            time.sleep(poll)
        yield
    finally:
        handle.close()


class FilesRead:
    """The files a run reads, each with a few words saying what it is, so that an output about to be
    written can be recognised as one of them (:meth:`which`) and refused before anything is written.

    An output matches an input when its folder (symbolic links resolved) and name are the input's, or the
    resolved path of an input that is a symbolic link; an output name that exists matches too when it
    resolves to an input (it is a symbolic link to one) or is the same file on disk as an input while
    having no other name (device and inode: a case-insensitive disk spells one name in several ways;
    a hard link is a second name, which the rename of an output (:func:`atomic_write`) leaves alone).
    Each folder is resolved once (long sequences).
    """

    def __init__(self) -> None:
        self._folders: dict[Path, Path] = {}
        self._paths: dict[Path, str] = {}
        self._inodes: dict[tuple[int, int], str] = {}

    def _place(self, path: Path) -> Path:
        """``path`` with its folder resolved (the name itself left alone)."""
        folder = path.parent
        real = self._folders.get(folder)
        if real is None:
            real = self._folders[folder] = folder.resolve()
        return real / path.name

    def add(self, path: str | Path, what: str) -> None:
        """Note that the run reads ``path`` (it need not exist); ``what``: how a message names it."""
        path = Path(path).expanduser()
        self._paths.setdefault(self._place(path), what)
        try:
            st = os.lstat(path)
        except OSError:
            return
        self._inodes.setdefault((st.st_dev, st.st_ino), what)
        if stat.S_ISLNK(st.st_mode):
            self._paths.setdefault(path.resolve(), what)
            with contextlib.suppress(OSError):
                target = os.stat(path)
                self._inodes.setdefault((target.st_dev, target.st_ino), what)

    def which(self, output: str | Path) -> str | None:
        """What writing ``output`` would replace among the files read, or None when it replaces none of them."""
        output = Path(output).expanduser()
        what = self._paths.get(self._place(output))
        if what is not None:
            return what
        try:
            st = os.lstat(output)
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):
            return self._paths.get(output.resolve())
        return self._inodes.get((st.st_dev, st.st_ino)) if st.st_nlink == 1 else None


def file_kind(path: str | Path) -> str:
    """What is at ``path``, links followed, in words: "a file", "a folder", "a FIFO", "a device", "a socket",
    "a link loop", "a broken link", "a name too long" (over the system's limit) or "nothing"."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a link loop"
        if exc.errno == errno.ENAMETOOLONG:
            return "a name too long"
        return "a broken link" if os.path.islink(path) else "nothing"
    except ValueError:  # a null character: no file has such a name
        return "nothing"
    return _kind(mode)


def _kind(mode: int) -> str:
    for test, words in (
        (stat.S_ISREG, "a file"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return words
    return "a special file"


class Unreadable(Exception):
    """A file :func:`read_regular` refuses; the message is what follows its name ("is a FIFO, not a regular file")."""


def open_regular(
    path: str | Path,
    limit: int,
    *,
    links: bool = True,
    inside: Callable[[str], bool] | None = None,
    where: str = "the allowed folders",
) -> int:
    """A read-only descriptor on the regular file at ``path`` of at most ``limit`` bytes, opened without following a
    final link and without blocking, then fstat-ed: a FIFO, a device or a larger file is refused, never read, and
    no swap between a check and the open is possible. ``links``: a link at ``path`` is resolved first (False: it is
    refused). ``inside(real path)``: whether the file may be read from there (asked of its real path before the
    open and of the descriptor's own path after; ``where`` names those places in the refusal). Unreadable
    otherwise; the caller closes the descriptor."""
    real = os.path.realpath(path) if links else os.fspath(path)
    if inside is not None and not inside(real):
        raise Unreadable(f"lies outside {where}")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(real, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        linked = "was replaced by a link while it was opened" if links else "is a link, not a regular file"
        reason = {errno.ELOOP: linked, errno.ENOENT: "does not exist"}
        raise Unreadable(reason.get(exc.errno or 0) or f"cannot be read ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Unreadable(f"is {_kind(info.st_mode)}, not a regular file")
        if inside is not None and not inside(_opened(fd, real, info)):
            raise Unreadable(f"was moved outside {where} while it was opened")
        if info.st_size > limit:
            raise Unreadable(f"holds {info.st_size / 2**20:.1f} MiB, more than the {limit / 2**20:.0f} MiB read")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(
    path: str | Path,
    limit: int,
    inside: Callable[[str], bool] | None = None,
    where: str = "the allowed folders",
    *,
    links: bool = True,
) -> bytes:
    """The bytes of the regular file at ``path`` (at most ``limit``), read through :func:`open_regular`'s one
    descriptor (the same arguments); Unreadable otherwise, or when it grew past ``limit`` while it was read."""
    fd = open_regular(path, limit, links=links, inside=inside, where=where)
    try:
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew after the fstat
        raise Unreadable(f"holds more than the {limit / 2**20:.0f} MiB read")
    return data


def _opened(fd: int, real: str, info: os.stat_result) -> str:
    """The path of the file open on ``fd`` (``real``: the path it was opened by, ``info``: its fstat) as the
    system knows it now; "" when it cannot tell and ``real`` names another file by now."""
    try:
        if os.path.isdir("/proc/self/fd"):
            return os.readlink(f"/proc/self/fd/{fd}")
        if sys.platform == "darwin":
            import fcntl

            return fcntl.fcntl(fd, fcntl.F_GETPATH, bytes(1024)).split(b"\0", 1)[0].decode()
        return real if os.path.samestat(info, os.stat(real)) else ""
    except OSError:
        return ""
