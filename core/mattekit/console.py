"""The process's standard output and error, down to its file descriptors: what libraries print on them, captured instead
(:func:`library_text`), and the lock under which data goes to standard output (:func:`standard_output`).
Standard library only.

A decoder such as OpenEXR prints lines of its own when it meets a damaged file, from C on file descriptors 1
and 2 and through Python's ``sys.stdout``, where mattekit says what went wrong in one sentence of its own.
While a capture is open, descriptors 1 and 2, ``sys.stdout`` and ``sys.stderr`` all lead to a temporary file;
captures opened side by side (decoders in several threads) share it, and everything comes back when the last
one closes. Data written to standard output (``-o -``) waits for that under :func:`standard_output`, so image
bytes never land in a capture. Text that other threads print during a capture (a progress bar's refresh) lands
there too and is not shown; nothing a user needs is printed while a decoder runs.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import tempfile
import threading
from typing import IO, Iterator

_lock = threading.Condition()  # guards the three below; notified when the descriptors come back
_open = 0  # captures open now
_saved: tuple[int, int] | None = None  # copies of descriptors 1 and 2 as they were, while any capture is open
_file: IO[bytes] | None = None  # the temporary file descriptors 1 and 2 point at meanwhile


class _ToFile:
    """A text stream writing into the capture's file (what Python code prints during a capture)."""

    def __init__(self, fd: int):
        self.fd = fd

    def write(self, text: str) -> int:
        os.write(self.fd, text.encode(errors="replace"))
        return len(text)

    def flush(self) -> None:
        pass


class Captured:
    """What was printed on descriptors 1 and 2 while a capture was open (by any thread): ``text``, set when
    the capture closes."""

    text = ""


@contextlib.contextmanager
def library_text() -> Iterator[Captured]:
    """Within: what is printed on descriptors 1 and 2 goes to a temporary file, not to the terminal or a pipe.
    Yields a :class:`Captured`, whose ``text`` is filled in when the block ends."""
    global _open, _saved, _file, _streams
    captured = Captured()
    with _lock:
        if _open == 0:
            _flush(python=True)
            _file = tempfile.TemporaryFile()
            _saved = (os.dup(1), os.dup(2))
            os.dup2(_file.fileno(), 1)
            os.dup2(_file.fileno(), 2)
            _streams = (sys.stdout, sys.stderr)
            sys.stdout = sys.stderr = _ToFile(_file.fileno())
        _open += 1
        file = _file
        start = os.fstat(file.fileno()).st_size
    try:
        yield captured
    finally:
        with _lock:
            _flush(python=False)  # C's own buffers, so that what was printed inside is in the file
            end = os.fstat(file.fileno()).st_size
            if hasattr(os, "pread"):  # (not on Windows, where the text is dropped)
                captured.text = os.pread(file.fileno(), end - start, start).decode(errors="replace").strip()
            _open -= 1
            if _open == 0:
                sys.stdout, sys.stderr = _streams
                for fd, saved in zip((1, 2), _saved):
                    os.dup2(saved, fd)
                    os.close(saved)
                _file.close()
                _saved = _file = _streams = None
                _lock.notify_all()


@contextlib.contextmanager
def standard_output() -> Iterator[None]:
    """Hold while writing data to standard output: waits until no capture holds descriptor 1, and keeps new
    captures waiting until the block ends."""
    with _lock:
        _lock.wait_for(lambda: _open == 0)
        yield


def _flush(python: bool) -> None:
    """Push buffered text to the descriptors it is meant for: C's stdio buffers (which C++ streams write
    through) and, with ``python``, the Python streams'."""
    if python:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(AttributeError, OSError, ValueError):
                stream.flush()
    if _libc is not None:
        _libc.fflush(None)


try:
    _libc = ctypes.CDLL(None)  # the C library this process runs on (POSIX); Windows has no such handle
    _libc.fflush.argtypes = [ctypes.c_void_p]
except (OSError, TypeError, AttributeError):
    _libc = None
