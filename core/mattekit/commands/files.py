"""Shared helpers for commands that take files, folders and globs and write one output per input."""

from __future__ import annotations

import glob
import sys
import traceback
import warnings
from contextlib import nullcontext
from pathlib import Path

from ..errors import InputError, MattekitError, printable
from ..fsutil import NAME_MAX, file_kind
from ..io.outputs import IMAGE_SUFFIXES
from ..io.naming import earlier_outputs
from ..progress import Display, Progress, Reporter, shown
from .stdio import STDIO


def expand_inputs(
    items: list[str], stdin: Path | None = None, suffix: str = "", left_out: list[Path] | None = None
) -> list[tuple[Path, Path]]:
    """Files, folders (their images, sorted) and globs -> [(file, folder it came from or its parent)];
    ``-`` -> (``stdin``: the name standard input goes by, see :class:`.stdio.standard_streams`; its folder).
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
    standard output before its line says it was written (see :class:`.stdio.standard_streams`)."""

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


def run_files(args, planned: list[tuple[Path, Path]], runner, messages: Messages, data: dict | None = None) -> int:
    """Run ``runner`` (a :class:`mattekit.running.runner.Runner`) on every (input, output) of ``planned``
    (:func:`mattekit.io.naming.plan_outputs`; ``data``: the inputs that are no file, see :meth:`.stdio.standard_streams.data`):
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
