"""The process's standard output and error, down to its file descriptors: what a library prints on them while
it runs, captured instead (:func:`library_text`), and the lock under which data goes to standard output
(:func:`standard_output`). Standard library only.

A decoder such as OpenEXR prints lines of its own when it meets a damaged file, from C on file descriptors 1
and 2 and from Python through ``sys.stdout``, where mattekit says what went wrong in one sentence of its own.
While any capture is open, descriptors 1 and 2 point at a temporary file (captures opened side by side, by
decoders in several threads, share it; the descriptors come back when the last one closes), and
``sys.stdout`` / ``sys.stderr`` are routers (installed by the first capture, and kept): what a capturing thread
prints goes to the file, what any other thread prints goes where it always went (through copies of the original
descriptors while a capture is open, else straight on). Data written to
standard output (``-o -``) waits under :func:`standard_output` until no capture is open, so image bytes never
land in a capture. Only text written from C, or through a stream object taken before the capture began
(a progress bar holds one), by another thread during a capture lands in the file and is not shown.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import tempfile
import threading
from typing import IO, Iterator

_lock = threading.Condition()  # guards the state below; notified when the descriptors come back
_capturing: dict[int, int] = {}  # thread ident -> captures it has open
_saved: tuple[int, int] | None = None  # copies of descriptors 1 and 2 as they were, while any capture is open
_file: IO[bytes] | None = None  # the temporary file descriptors 1 and 2 point at meanwhile


class _Router:
    """``sys.stdout`` or ``sys.stderr`` while captures are open: a capturing thread's text to the capture's
    file; another thread's to the stream it replaced, or, where that stream writes to descriptor 1 or 2, to
    the copy of that descriptor (the descriptor itself leads to the file)."""

    def __init__(self, stream):
        self.stream = stream
        try:
            self.fd = stream.fileno() if stream.fileno() in (1, 2) else None
        except (AttributeError, OSError, ValueError):  # (io.UnsupportedOperation is both)
            self.fd = None

    def write(self, text: str) -> int:
        with _lock:
            if threading.get_ident() in _capturing:
                os.write(_file.fileno(), text.encode(errors="replace"))
            elif _saved is not None and self.fd is not None:
                os.write(_saved[self.fd - 1], text.encode(getattr(self.stream, "encoding", None) or "utf-8", "replace"))
            else:
                return self.stream.write(text)
        return len(text)

    def flush(self) -> None:
        if threading.get_ident() not in _capturing:
            self.stream.flush()

    def __getattr__(self, name):  # encoding, isatty, fileno, buffer ...: the stream's
        return getattr(self.stream, name)


class Captured:
    """What was printed on descriptors 1 and 2, or by the capturing thread, while a capture was open:
    ``text``, set when the capture closes."""

    text = ""


@contextlib.contextmanager
def library_text() -> Iterator[Captured]:
    """Within: what this thread prints, and what anything prints on descriptors 1 and 2, goes to a temporary
    file, not to the terminal or a pipe. Yields a :class:`Captured`, whose ``text`` is set when the block ends."""
    global _saved, _file
    captured, me = Captured(), threading.get_ident()
    with _lock:
        if not _capturing:
            _flush(python=True)
            _file = tempfile.TemporaryFile()
            _saved = (os.dup(1), os.dup(2))
            os.dup2(_file.fileno(), 1)
            os.dup2(_file.fileno(), 2)
            # The routers stay once installed: swapping sys.stdout back while another thread is inside print()
            # frees the object print holds without a reference on Python 3.11 (a crash, seen in the tests).
            if not isinstance(sys.stdout, _Router):
                sys.stdout = _Router(sys.stdout)
            if not isinstance(sys.stderr, _Router):
                sys.stderr = _Router(sys.stderr)
        _capturing[me] = _capturing.get(me, 0) + 1
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
            _capturing[me] -= 1
            if not _capturing[me]:
                del _capturing[me]
            if not _capturing:
                for fd, saved in zip((1, 2), _saved):
                    os.dup2(saved, fd)
                    os.close(saved)
                _file.close()
                _saved = _file = None
                _lock.notify_all()


@contextlib.contextmanager
def standard_output() -> Iterator[None]:
    """Hold while writing data to standard output: waits until no capture holds descriptor 1, and keeps new
    captures waiting until the block ends."""
    with _lock:
        _lock.wait_for(lambda: not _capturing)
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
