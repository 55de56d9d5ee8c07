"""Shared helpers for commands that take files, folders and globs and write one output per input."""

from __future__ import annotations

import glob
import os
import sys
import traceback
import warnings
from contextlib import nullcontext
from pathlib import Path

from ..errors import InputError, MattekitError, OutputError, printable
from ..fsutil import NAME_MAX, file_kind
from ..io.formats import extension_of, reason
from ..io.outputs import IMAGE_SUFFIXES, WRITABLE
from ..io.naming import earlier_outputs
from ..progress import Display, Progress, Reporter, shown


def expand_inputs(
    items: list[str], stdin: Path | None = None, suffix: str = "", left_out: list[Path] | None = None
) -> list[tuple[Path, Path]]:
    """Files, folders (their images, sorted) and globs -> [(file, folder it came from or its parent)];
    ``-`` -> (``stdin``: the name standard input goes by, see :class:`standard_streams`; its folder).
    ``suffix``: the run writes beside its inputs with it, and a folder's or a glob's earlier outputs of
    that naming are left out (:func:`mattekit.io.naming.earlier_outputs`; added to ``left_out``); a file named on its own is kept."""
    found: list[tuple[Path, Path]] = []
    listed: set[Path] = set()  # the files a folder or a glob gave
    for item in items:
        if item == STDIO and stdin is not None:
            found.append((stdin, stdin.parent))
            continue
        if not item.strip():
            raise InputError("An input name is empty; name an image, a folder or a pattern (. for this folder).")
        path = Path(item)
        if file_kind(item) == "a name too long":  # pathlib's is_dir() would raise
            raise InputError(not_a_file(item, "an image file"))
        if path.is_dir():
            files = regular_files(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), item)
            if not files:
                raise InputError(
                    f"The folder {item} holds no images (PNG, JPEG, TIFF, WebP, BMP, HEIC/HEIF, AVIF, EXR)."
                )
            found += [(p, path) for p in files]
            listed.update(files)
        elif path.is_file():
            found.append((path, path.parent))
        elif glob.has_magic(item):
            files = regular_files(
                sorted(Path(p) for p in glob.glob(item, recursive=True) if not Path(p).is_dir()), item
            )
            if not files:
                raise InputError(f"No file matches {item}.")
            found += [(p, p.parent) for p in files]
            listed.update(files)
        else:
            raise InputError(not_a_file(item, "an image file"))
    ours = earlier_outputs([p for p, _ in found], suffix) & listed
    if left_out is not None:
        left_out += sorted(ours)
    return [(p, root) for p, root in found if p not in ours]


def not_a_file(name: str | Path, wanted: str) -> str:
    """The sentence for a ``name`` given as ``wanted`` ("an image file") that is no regular file or folder:
    "x does not exist.", "x is a link loop.", "x is a FIFO, not an image file."."""
    kind = file_kind(name)
    if kind == "nothing":
        return f"{name} does not exist."
    if kind == "a name too long":
        return f"{name} is longer than a file name may be here ({NAME_MAX} bytes)."
    if kind in ("a link loop", "a broken link"):
        return f"{name} is {kind}" + (", pointing at nothing." if kind == "a broken link" else ".")
    return f"{name} is {kind}, not {wanted}."


def regular_files(paths: list[Path], given: str) -> list[Path]:
    """The regular files of ``paths`` (a folder's or a glob's images, ``given`` by the user); the others
    (FIFOs, devices, link loops, broken links) are skipped with one warning line naming them."""
    kinds = {path: file_kind(path) for path in paths}
    odd = [f"{path.name} ({kind})" for path, kind in kinds.items() if kind not in ("a file", "a folder")]
    if odd:
        one = len(odd) == 1
        warnings.warn(
            f"Skipped {len(odd)} {'entry' if one else 'entries'} of {given} that "
            f"{'is not an image file' if one else 'are not image files'}: {', '.join(odd)}."
        )
    return [path for path, kind in kinds.items() if kind == "a file"]


def check_header(path: Path, options=None, masks: dict[str, str] | None = None) -> None:
    """InputError (one sentence) unless ``path`` is an image mattekit reads whose declared size fits the pixel
    budget and what ``options`` say of it (their ``check_image(height, width)``, if any: a point inside it), and
    the files of ``masks`` ({mask input: FILE|FOLDER} given with it) have its size: headers alone are read, so a
    single bad input is refused before any model loads."""
    from ..io import read_layout
    from ..io.outputs import companion, same_size
    from ..io.picture import check_size

    layout = read_layout(path)
    check_size(str(path), layout.width, layout.height)
    if hasattr(options, "check_image"):
        options.check_image(layout.height, layout.width)
    for name, given in (masks or {}).items():
        found = companion(given, path, name)
        mask = read_layout(found)
        same_size(name, found, (mask.height, mask.width), (layout.height, layout.width))


def failure_sentence(exc: BaseException, debug: bool = False) -> str:
    """One sentence for any failure on one input: the MattekitError's own, or what went wrong inside
    (with the traceback printed first when ``debug``)."""
    if isinstance(exc, MattekitError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "Out of memory on this image; try a smaller image, --tile, or another device."
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return (
        f"Internal error ({type(exc).__name__}{': ' + detail if detail else ''}); rerun with --debug for the traceback."
    )


def summarise_failures(failures: list[Path], total: int) -> int:
    """Print the one-line summary of the inputs that failed; the exit status (1 when any did, else 0)."""
    if not failures:
        return 0
    names = ", ".join(printable(str(p)) for p in failures)
    print(f"mattekit: {len(failures)} of {total} images failed: {names}", file=sys.stderr)
    return 1


class Messages:
    """What a per-file run tells the user on stderr (through one :class:`mattekit.progress.Display`): one line per
    written file (with its count, '[3/10]', off a terminal; above the bar of images on one) and the skipped ones
    (``quiet``: nothing but errors). ``label(path)`` names a file in messages, ``deliver()`` sends a result bound for
    standard output before its line says it was written (see :func:`standard_streams`)."""

    def __init__(self, quiet: bool = False, label=str, deliver=lambda: None):
        self.quiet, self.deliver = quiet, deliver
        self.label = lambda path: printable(label(path))
        self.display = Display(quiet=quiet)
        self.written: set[Path] = set()
        self.sources: dict[Path, Path] = {}  # {output: its input}

    def wrote(self, target: Path) -> None:
        """``target`` is written; a run of several files says so with its progress event (:meth:`item`)."""
        self.written.add(target)

    def item(self, event: Progress) -> None:
        """One input of several finished (``event.item``: its output; None: none yet): its line, and the bar."""
        if event.item is None:
            self.display(event)
        elif event.item in self.written:
            self.display(event, f"wrote {self.label(event.item)}")
        else:
            self.display(event, f"failed: {self.label(self.sources[event.item])} (the reason is below)")

    def warn(self, target: Path, sentence: str) -> None:
        """A note on the written ``target`` (its subject came out empty): one warning line naming it."""
        self.display.warning(f"{self.label(target)}: {sentence}")

    def close(self, skipped: int) -> None:
        """The display closed, and a line counting the ``skipped`` inputs (their outputs existed)."""
        self.display.close()
        if skipped and not self.quiet:
            print(
                f"mattekit: skipped {skipped} input(s) whose output already exists (--skip-existing).", file=sys.stderr
            )


SLOW = 5.0  # seconds one input may take before a run of one image shows that it is working on it


def run_files(
    args, planned: list[tuple[Path, Path]], runner, messages: Messages, data: dict | None = None, ahead=None
) -> int:
    """Run ``runner`` (a :class:`mattekit.running.runner.Runner`) on every (input, output) of ``planned``
    (:func:`mattekit.io.naming.plan_outputs`; ``data``: the inputs that are no file, see :meth:`standard_streams.data`;
    ``ahead``: the inputs decoding already, a :class:`mattekit.running.ahead.ReadAhead`):
    ``args.skip_existing`` honoured, one line per written file (and a warning for one whose subject came out
    empty, :func:`mattekit.running.runner.transparent_note`), one bar of images on a terminal for several
    inputs (of tiles for one; for one without tiles, a line once it takes :data:`SLOW` seconds), ``args.threads``
    torch threads per inference worker. A failing input is listed and the others are written (returns 1); a single
    input's failure is raised as it is."""
    single = len(planned) == 1
    found = [pair for pair in planned if args.skip_existing and pair[1].exists()]
    messages.sources = {target: source for source, target in planned}
    images = Reporter(None if single else messages.item, len(planned), "image", skipped=len(found))
    images.start()
    # the tiles of one image: a bar on a terminal, no lines elsewhere; one image without tiles: a line once it takes
    # long, its seconds counted on a terminal (SLOW seconds: Display.ticking)
    untiled = single and not runner.task.progress
    alone = (
        messages.display.ticking(f"working on {messages.label(planned[0][0])}", after=SLOW)
        if untiled
        else nullcontext()
    )
    with shown(0, "tile", quiet=messages.quiet or not (single and runner.task.progress), lines=False) as tiles, alone:
        try:
            result = runner.files(
                planned,
                skip_existing=args.skip_existing,
                wrote=messages.wrote,
                data=data,
                ahead=ahead,
                threads=getattr(args, "threads", None),
                steps=tiles.steps,
                progress=lambda done, pair: images(pair[1]),
                note=lambda pair, sentence: messages.warn(pair[1], sentence),
            )
        finally:
            messages.display.close()
    if single and result.failed:
        raise result.failed[0][1]
    if single and messages.written:
        messages.deliver()  # (a reader of standard output that has gone: BrokenPipeError, and no 'wrote' line)
        messages.display.note(f"wrote {messages.label(planned[0][1])}")
    for (source, _), exc in result.failed:
        sentence = printable(failure_sentence(exc, getattr(args, "debug", False)))
        print(f"mattekit: error: {messages.label(source)}: {sentence}", file=sys.stderr)
    messages.close(result.skipped)
    return summarise_failures([source for (source, _), _ in result.failed], len(planned))


# ------------------------------------------------------------------- standard input and output

STDIO = "-"


def stdout_format(output: str | None) -> str | None:
    """The extension of the image to write to standard output for ``-o`` (``-``: PNG; ``FORMAT:-`` such
    as ``jpg:-``), or None when ``-o`` names no stream."""
    if output == STDIO:
        return ".png"
    if output and output.endswith(":" + STDIO):
        ext = "." + output[:-2].lower().lstrip(".")
        if ext not in WRITABLE:
            raise OutputError(
                f"Cannot write {output[:-2]} to standard output; name one of "
                f"{', '.join(sorted(e[1:] + ':-' for e in WRITABLE))}."
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
