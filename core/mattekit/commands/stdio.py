"""Standard input and output for the per-file commands: ``-`` as an input and ``-o -`` / ``-o FORMAT:-`` as the
output (:class:`standard_streams`)."""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

from ..errors import InputError, OutputError
from ..io.formats import extension_of, reason
from ..io.formats import WRITERS

STDIO = "-"


def stdout_format(output: str | None) -> str | None:
    """The extension of the image to write to standard output for ``-o`` (``-``: PNG; ``FORMAT:-`` such
    as ``jpg:-``), or None when ``-o`` names no stream."""
    if output == STDIO:
        return ".png"
    if output and output.endswith(":" + STDIO):
        ext = "." + output[:-2].lower().lstrip(".")
        if ext not in WRITERS:
            raise OutputError(
                f"Cannot write {output[:-2]} to standard output; name one of "
                f"{', '.join(sorted(e[1:] + ':-' for e in WRITERS))}."
            )
        return ext
    return None


def standard_input_cap() -> int:
    """The most bytes standard input may hold: what the largest picture mattekit accepts
    (:func:`mattekit.io.picture.pixel_budget`) takes uncompressed at 4 float channels, plus 64 MiB for its
    metadata. Beyond that it is no image mattekit could process, and reading on would only fill the memory."""
    from ..io.picture import pixel_budget

    return 16 * pixel_budget() + (64 << 20)


def read_standard_input() -> bytes:
    """Standard input, whole; InputError (one sentence naming the cap) once it holds more than
    :func:`standard_input_cap` bytes, read in pieces so that no more than that is ever held."""
    cap, held, pieces = standard_input_cap(), 0, []
    while piece := sys.stdin.buffer.read1(min(16 << 20, cap + 1 - held)):
        pieces.append(piece)
        held += len(piece)
        if held > cap:
            raise InputError(
                f"Standard input goes on past {cap / 1e6:.0f} MB, the most an image within this machine's "
                f"pixel limit takes; pipe in one image file, or raise MATTEKIT_MAX_PIXELS to allow more."
            )
    return b"".join(pieces)


class standard_streams:
    """``-`` as an input (standard input) and ``-o -`` / ``-o FORMAT:-`` (standard output) for a per-file
    command. Standard input is read into memory, at most :func:`standard_input_cap` bytes, and decoded from
    there (:meth:`data`); inside the ``with``
    block it goes by the name ``stdin.EXT`` in :data:`os.devnull` (:attr:`stdin`, EXT told by its first
    bytes), a path no file can have, so that outputs are named as for a file and none is taken for it.
    For standard output, ``args.output`` names a file in a private temporary folder, which goes to
    standard output on a clean exit. Reading standard input without ``-o`` writes a PNG to standard
    output (never to a terminal). ``label(path)`` names both as "standard input" / "standard output"."""

    def __init__(self, args):
        self.args = args
        self.folder: Path | None = None
        self.stdin: Path | None = None
        self.stdout: Path | None = None
        self.delivered = False
        self._bytes = b""

    def __enter__(self) -> "standard_streams":
        import tempfile

        args = self.args
        reads = args.inputs.count(STDIO)
        ext = stdout_format(args.output)
        if reads == 0 and ext is None:
            return self
        if reads > 1:
            raise InputError("Standard input (-) can be given once.")
        if ext is None and args.output is None:
            ext = ".png"
        if ext is not None:
            if len(args.inputs) != 1 or any(os.path.isdir(i) or glob.has_magic(i) for i in args.inputs):
                raise OutputError("Standard output (-o -) takes the result of exactly one input image.")
            if sys.stdout.isatty():
                raise OutputError("Standard output is a terminal; redirect it to a file (> out.png) or give -o FILE.")
        if reads:
            self._bytes = read_standard_input()
            if not self._bytes:
                raise InputError("Standard input is empty; pipe an image into it (cat photo.jpg | mattekit ...).")
            self.stdin = Path(os.devnull) / ("stdin" + extension_of(self._bytes[:12]))
        if ext is not None:
            self.folder = Path(tempfile.mkdtemp(prefix="mattekit-"))
            self.stdout = self.folder / ("stdout" + ext)
            args.output = str(self.stdout)
        return self

    def data(self) -> dict:
        """{the name of standard input: (its bytes, "standard input")} for :meth:`mattekit.running.runner.Runner.files`;
        empty when standard input is not read."""
        return {} if self.stdin is None else {self.stdin: (self._bytes, "standard input")}

    def label(self, path) -> str:
        if self.stdin is not None and Path(path) == self.stdin:
            return "standard input"
        if self.stdout is not None and Path(path) == self.stdout:
            return f"{self.stdout.suffix[1:].upper()} to standard output"
        return str(path)

    def deliver(self) -> None:
        """The result bound for standard output, written there whole and flushed (once; nothing when there is none
        yet). BrokenPipeError when its reader has gone; OutputError (one sentence) when it cannot take it all (a
        full disk, a file size limit)."""
        if self.stdout is None or not self.stdout.is_file() or self.delivered:
            return
        self.delivered = True
        try:
            sys.stdout.flush()  # (text printed before the image, if any)
            write_all(sys.stdout.buffer, self.stdout.read_bytes())
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(f"Cannot write {self.label(self.stdout)}: {reason(exc)}.") from None

    def __exit__(self, kind, exc, tb) -> None:
        import shutil

        try:
            if kind is None:
                self.deliver()
            elif isinstance(exc, OutputError) and self.stdout is not None and str(self.folder) in str(exc):
                # the private temporary is no name the user gave: the sentence names standard output
                named = str(exc).replace(str(self.stdout), self.label(self.stdout))
                raise OutputError(named.replace(str(self.folder), "a temporary folder")) from None
        finally:
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)


def write_all(stream, data: bytes) -> None:
    """``data`` written whole to the binary ``stream`` after what it holds: straight to its descriptor, each short
    write continued and a full non-blocking one waited for (Python's raw stream, as PYTHONUNBUFFERED makes standard
    output, may take part of a write and say so in a count easily dropped); a stream with no descriptor (a test's
    capture) takes it at once."""
    import select

    stream.flush()
    try:
        fd = stream.fileno()
    except (OSError, AttributeError):  # io.UnsupportedOperation is an OSError
        stream.write(data)
        stream.flush()
        return
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:  # a non-blocking descriptor that is full: wait until it takes more
            select.select([], [fd], [])
