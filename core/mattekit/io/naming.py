"""Where a task's results for input files go, and the outputs refused before anything runs.

One naming rule for the CLI's per-file commands and the Python API's path mode: ``NAME<suffix><ext>`` beside
each input (the suffix is the task's, ``_cutout``; the extension its format choice), or under ``-o`` /
``output=``. An output that would replace a file the run reads, or that cannot be written, is refused with one
sentence (OutputError) in the words of the front end (``api``: ``output=``, ``trimap=``; else ``-o``, ``--trimap``).
"""

from __future__ import annotations

import errno
import os
from collections import Counter
from pathlib import Path
from typing import Callable

from ..errors import OutputError
from ..options import model_choice
from ..fsutil import NAME_MAX, TEMP_EXTRA, FilesRead, temporary_name
from .formats import WRITERS
from .outputs import IMAGE_SUFFIXES, companion_files, same_format


def output_suffix(task, options) -> str:
    """The suffix of ``task``'s output names for ``options`` ("_cutout", "_x4"): ``{scale}`` is the upscaling
    factor of the main model its option holds, or of the catalog's default (:func:`mattekit.options.model_choice`,
    the one rule for it; nothing loads)."""
    suffix = task.suffix_for(options)
    if "{scale}" in suffix:
        model = model_choice(getattr(options, task.main), task.option_table()[task.main].model)
        suffix = suffix.replace("{scale}", str(model.scale))
    return suffix


def output_extension(task, options, out: str | None) -> Callable[[Path], str]:
    """extension(input file) -> the extension of its output (".png"...): the task's choice for ``options``, the
    input's and the one ``out`` (``-o``; None: none) names, or else the input's own where mattekit writes it."""
    named = Path(out).suffix.lower() if out else ""

    def extension(source: Path) -> str:
        if task.output_format is None:
            return same_format(source)
        return task.output_format(options, source.suffix.lower(), named)

    return extension


def earlier_outputs(inputs: list[Path], suffix: str) -> set[Path]:
    """The files among ``inputs`` that a run writing beside its inputs with ``suffix`` names as its own
    outputs: ``NAME<suffix>.EXT`` (or ``NAME_<ext><suffix>.EXT``, see :func:`plan_outputs`), EXT one
    mattekit writes, for an input ``NAME.<ext>`` in the same folder. A lone ``y_cutout.png`` (no ``y.*``
    among the inputs) may be the user's own photo and is not one."""
    if not suffix:
        return set()
    names = set()
    for path in inputs:
        names |= {(path.parent, path.stem), (path.parent, f"{path.stem}_{path.suffix[1:].lower()}")}
    return {
        path
        for path in inputs
        if path.suffix.lower() in WRITERS
        and path.stem.endswith(suffix)
        and (path.parent, path.stem[: -len(suffix)]) in names
    }


def output_path(
    source: Path, root: Path, out: str | None, single: bool, suffix: str, ext: str, stem: str | None = None
) -> Path:
    """Where the result for ``source`` goes.

    No ``-o``: beside the input as ``<stem><suffix><ext>``. ``-o`` naming a file (one input,
    with an image extension): that file. Otherwise ``-o`` is a folder, the input's path
    relative to its folder (``root``) kept, named ``<stem><ext>``. ``stem``: the name to use instead of the
    input's own stem (see :func:`plan_outputs`).
    """
    stem = stem or source.stem
    if out is None:
        return source.with_name(stem + suffix + ext)
    target = Path(out)
    if single and target.suffix.lower() in IMAGE_SUFFIXES and not target.is_dir():
        return target
    rel = source.relative_to(root) if source.is_relative_to(root) else Path(source.name)
    return target / rel.parent / (stem + ext)


def plan_outputs(
    jobs: list[tuple[Path, Path]],
    out: str | None,
    suffix: str,
    extension: Callable[[Path], str],
    reads: list[tuple[str, str]] = (),
    api: bool = False,
    overwrite: bool = False,
) -> list[tuple[Path, Path]]:
    """(input, output) for every (input, its folder) of ``jobs``, before anything is written.

    Inputs that share a stem in one folder (``a.jpg``, ``a.png``) would share an output name: each
    of them gets its extension in the name instead (``a_jpg_cutout.png``, ``a_png_cutout.png``; with
    ``-o FOLDER``: ``a_jpg.png``), so no result replaces another. An output that is one of the inputs,
    or one of the other files the run reads (``reads``: (flag, file or folder) from
    :meth:`mattekit.tasks.registry.Task.files_read`; of a folder, the images named like an input), or two
    inputs landing on one output, a name longer than the file system takes, or a folder where no file can be
    created, is refused with one sentence (OutputError) and nothing runs; so is an existing file mattekit did not
    write, unless ``overwrite`` (:func:`refuse_foreign`).
    """
    single, o = len(jobs) == 1, _output_word(api)
    if out is not None:
        _check_out(out, len(jobs), api)
    stems = Counter((source.parent.resolve(), source.stem.lower()) for source, _ in jobs)
    planned = []
    for source, root in jobs:
        shared = stems[(source.parent.resolve(), source.stem.lower())] > 1
        stem = f"{source.stem}_{source.suffix[1:].lower()}" if shared else None
        planned.append((source, output_path(source, root, out, single, suffix, extension(source), stem)))
    read = _files_read(jobs, reads, api)
    seen: dict[Path, Path] = {}
    for source, target in planned:
        check_name_length(target, api=api)
        _refuse_replacing(target, read.which(target), suffix, api)
        if not overwrite:
            refuse_foreign(target, api)
        blocked = next((folder for folder in target.parents if folder.exists() and not folder.is_dir()), None)
        if blocked is not None:
            raise OutputError(
                f"Cannot create the output folder {target.parent}: {blocked} is a file; choose another {o}."
            )
        where = target.resolve()
        if where in seen:
            raise OutputError(
                f"{seen[where]} and {source} would both be written to {target}; "
                f"give {o} a folder or rename one of them."
            )
        seen[where] = source
    for folder in sorted({target.parent for _, target in planned}):
        check_writable(folder, api)
    return planned


def _check_out(out: str, inputs: int, api: bool) -> None:
    """An OutputError sentence for an output ``out`` (-o or output=) that cannot hold the run's ``inputs`` results:
    a name too long, one image file for several inputs, or for one input a file name that is no image's."""
    o, path = _output_word(api), Path(out)
    check_name_length(path, writes=path.suffix.lower() in IMAGE_SUFFIXES, api=api)
    if inputs != 1 and path.suffix.lower() in IMAGE_SUFFIXES and not path.is_dir():
        raise OutputError(f"{o} {out} names one image file, but {inputs} inputs were given; give {o} a folder.")
    if (
        inputs == 1
        and path.suffix
        and path.suffix.lower() not in IMAGE_SUFFIXES
        and not path.is_dir()
        and path.suffix[1:].isalnum()
    ):
        raise OutputError(
            f"{o} {out} is not an image file name ({', '.join(sorted(s[1:] for s in WRITERS))}) "
            f"nor an existing folder; name the output file with one of those extensions."
        )


def _files_read(jobs: list[tuple[Path, Path]], reads, api: bool) -> FilesRead:
    """Every file the run reads: the inputs of ``jobs`` and, of each (flag, file or folder) in ``reads``, the files
    named like an input, each with the flag (or the API's ``name=``) that named it."""
    read = FilesRead()
    for source, _ in jobs:
        read.add(source, "")
    for flag, given in reads:
        for path in companion_files(given, {source.stem for source, _ in jobs}):
            read.add(path, f"{flag.lstrip('-').replace('-', '_')}=" if api else flag)
    return read


def _output_word(api: bool) -> str:
    return "output=" if api else "-o"


def _refuse_replacing(target: Path, what: str | None, suffix: str, api: bool) -> None:
    """OutputError when ``target`` is a file the run reads: ``what`` is "" for an input, a flag for another."""
    if what is None:
        return
    if what == "" and api:
        raise OutputError(
            f"The output {target} is the input: writing it would replace the original; choose another output=."
        )
    if what == "":
        raise OutputError(
            f"The output {target} is an input: writing it would replace the original; "
            f"choose another -o (or leave -o out to write NAME{suffix}.EXT beside each input)."
        )
    raise OutputError(
        f"The output {target} is the {what} input: writing it would replace the original; "
        f"choose another {_output_word(api)}."
    )


def refuse_foreign(target: Path, api: bool = False) -> None:
    """OutputError when a file is at ``target`` that mattekit did not write: the one rule of every command (roto's
    own: :meth:`mattekit.roto.store.Store.check`): an output replaces only mattekit's own earlier output
    as it wrote it (a regular file carrying its provenance record, whose bytes still give the digest sealed into
    that record; roto: one its manifest or journal records) unless ``--overwrite`` / ``overwrite=True``."""
    if not os.path.lexists(target) or _written_by_mattekit(target):
        return
    raise OutputError(
        f"{target} already exists and is not an output of mattekit's left as written (another file, or one changed "
        f"since); move it away, choose another {_output_word(api)}, or use "
        f"{'overwrite=True' if api else '--overwrite'} to replace it."
    )


def _written_by_mattekit(path: Path) -> bool:
    """Whether ``path`` is a regular file (not a link) carrying mattekit's own provenance record, and still the
    very file that record was sealed into (:func:`mattekit.provenance.intact`: not retouched since, nor another
    picture the record was pasted into)."""
    from ..errors import MattekitError
    from ..fsutil import Unreadable, open_regular
    from ..provenance import intact
    from .read import read_provenance

    try:
        fd = open_regular(path, 1 << 50, links=False)  # a link (even to mattekit's file), a FIFO, a device: not it
    except Unreadable:
        return False
    try:
        record = read_provenance(path)
        mattekit = bool(record) and "task" in record and str(record.get("software", "")).startswith("mattekit ")
        return mattekit and intact(fd, record)
    except (OSError, ValueError, MattekitError):
        return False
    finally:
        os.close(fd)


def check_name_length(path: Path, writes: bool = True, api: bool = False, flag: str | None = None) -> None:
    """OutputError unless every name along ``path`` fits the file system (:data:`NAME_MAX` bytes), the last one
    (``writes``: a file written through :func:`mattekit.fsutil.temporary_name`) less :data:`TEMP_EXTRA`; the
    sentence asks for a shorter ``flag`` (default: the output's, ``-o`` or ``output=``)."""
    for part in path.parts:
        limit = NAME_MAX - TEMP_EXTRA if writes and part == path.name else NAME_MAX
        size = len(os.fsencode(part))
        if size > limit:
            short = part if len(part) <= 40 else part[:40] + "..."
            why = (
                f"{NAME_MAX} less {TEMP_EXTRA} for the temporary name it is written through"
                if limit < NAME_MAX
                else "the file system's limit"
            )
            raise OutputError(
                f"The output name {short} is {size} bytes long, over the {limit} a name may have "
                f"here ({why}); choose a shorter {flag or _output_word(api)}."
            )


def check_writable(folder: Path, api: bool = False) -> None:
    """OutputError unless a file can be created in ``folder`` (or, when it is yet to be made, in the nearest folder
    above it that exists): a file made and removed there, so an output nobody can write (``-o /proc/x.png``) is
    refused before any model loads."""
    from .formats import reason

    existing = next((p for p in (folder.absolute(), *folder.absolute().parents) if p.is_dir()), None)
    if existing is None:
        return
    probe = temporary_name(existing / "write-check")
    try:
        probe.open("xb").close()
        probe.unlink()
    except OSError as exc:  # ENOENT in a folder that exists: one such as /proc, which takes no new files
        why = "it takes no new files" if exc.errno == errno.ENOENT else reason(exc)
        raise OutputError(
            f"Cannot write in the output folder {existing} ({why}); choose another {_output_word(api)}."
        ) from None
