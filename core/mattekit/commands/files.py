"""Shared helpers for commands that take files, folders and globs and write one output per input."""
from __future__ import annotations

import glob
import os
import sys
import traceback
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from .. import io
from ..io.outputs import IMAGE_SUFFIXES, bit_depth_for, for_file, same_format
from ..errors import InputError, MattekitError, OutputError

def expand_inputs(items: list[str]) -> list[tuple[Path, Path]]:
    """Files, folders (their images, sorted) and globs -> [(file, folder it came from or its parent)]."""
    found: list[tuple[Path, Path]] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not files:
                raise InputError(f"The folder {item} holds no images (PNG, JPEG, TIFF, WebP, BMP, EXR).")
            found += [(p, path) for p in files]
        elif path.is_file():
            found.append((path, path.parent))
        elif glob.has_magic(item):
            files = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not files:
                raise InputError(f"No file matches {item}.")
            found += [(p, p.parent) for p in files]
        else:
            raise InputError(f"{item} does not exist.")
    return found


def output_path(source: Path, root: Path, out: str | None, single: bool, suffix: str, ext: str,
                stem: str | None = None) -> Path:
    """Where the result for ``source`` goes.

    No ``-o``: beside the input as ``<stem><suffix><ext>``. ``-o`` naming a file (one input,
    with an image extension): that file. Otherwise ``-o`` is a folder, the input's path
    relative to its folder kept, named ``<stem><ext>``. ``stem``: the name to use instead of the
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


def plan_outputs(jobs: list[tuple[Path, Path]], out: str | None, suffix: str, extension) -> list[tuple[Path, Path]]:
    """(input, output) for every input of a run, before anything is written.

    Inputs that share a stem in one folder (``a.jpg``, ``a.png``) would share an output name: each
    of them gets its extension in the name instead (``a_jpg_cutout.png``, ``a_png_cutout.png``; with
    ``-o FOLDER``: ``a_jpg.png``), so no result replaces another. An output that is one of the inputs,
    or two inputs landing on one output, is refused with one sentence (OutputError) and nothing runs.
    """
    single = len(jobs) == 1
    stems = Counter((source.parent.resolve(), source.stem.lower()) for source, _ in jobs)
    planned = []
    for source, root in jobs:
        shared = stems[(source.parent.resolve(), source.stem.lower())] > 1
        stem = f"{source.stem}_{source.suffix[1:].lower()}" if shared else None
        planned.append((source, output_path(source, root, out, single, suffix, extension(source), stem)))
    inputs = {source.resolve() for source, _ in jobs}
    seen: dict[Path, Path] = {}
    for source, target in planned:
        where = target.resolve()
        if where in inputs:
            raise OutputError(f"The output {target} is an input: writing it would replace the original; "
                              f"choose another -o (or leave -o out to write NAME{suffix}.EXT beside each input).")
        if where in seen:
            raise OutputError(f"{seen[where]} and {source} would both be written to {target}; "
                              f"give -o a folder or rename one of them.")
        seen[where] = source
    return planned


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
    return f"Internal error ({type(exc).__name__}{': ' + detail if detail else ''}); rerun with --debug for the traceback."


def ensure_parent(path: Path) -> None:
    """Create the folder that will hold ``path``; an OutputError sentence when that is impossible."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot create the output folder {path.parent}: {exc.strerror or exc}.") from None
    if not os.access(path.parent, os.W_OK):
        raise OutputError(f"The output folder {path.parent} is not writable.")


def summarise_failures(failures: list[Path], total: int) -> int:
    """Print the one-line summary of the inputs that failed; the exit status (1 when any did, else 0)."""
    if not failures:
        return 0
    names = ", ".join(str(p) for p in failures)
    print(f"mattekit: {len(failures)} of {total} images failed: {names}", file=sys.stderr)
    return 1


def each_image(args, suffix: str, process, extension=same_format, jobs=None) -> int:
    """Run ``process(picture, target) -> pixels`` over every input of ``args.inputs``.

    One output per input (see :func:`output_path`; ``extension(source)`` picks its format),
    ``args.skip_existing`` honoured, a progress bar for several inputs. A failing input is
    reported and the others go on; returns 1 when any failed (a single input re-raises).
    ``jobs``: :func:`expand_inputs` of ``args.inputs`` when the caller already has it.
    """
    jobs = jobs or expand_inputs(args.inputs)
    single = len(jobs) == 1
    failures: list[Path] = []
    with tqdm(total=len(jobs), unit="img", disable=single, file=sys.stderr) as bar:
        for source, target in plan_outputs(jobs, args.output, suffix, extension):
            if not (args.skip_existing and target.exists()):
                try:
                    picture = io.read_image(source)
                    result = process(picture, target)
                    ensure_parent(target)
                    io.write_image(target, result, bit_depth=bit_depth_for(picture, target))
                except Exception as exc:  # noqa: BLE001 - one input's failure never stops the others
                    if single:
                        raise
                    failures.append(source)
                    tqdm.write(f"mattekit: error: {source}: {failure_sentence(exc, getattr(args, 'debug', False))}",
                               file=sys.stderr)
            bar.update()
    return summarise_failures(failures, len(jobs))


def each_image_pipelined(args, suffix: str, task, models: dict, options, inputs_for, output: str, extension,
                         jobs) -> int:
    """:func:`each_image` for many inputs of a streaming ``task``: decoding + ``task.prepare``, the main
    model, and ``task.finish`` + encoding overlap (``mattekit.pipeline``; ``args.threads`` torch threads
    per inference worker). ``inputs_for(picture)`` gives the task's inputs for a decoded picture.
    Failing inputs are listed and the others written; returns 1 when any failed.
    """
    from .. import pipeline

    todo = [(source, target) for source, target in plan_outputs(jobs, args.output, suffix, extension)
            if not (args.skip_existing and target.exists())]
    predictor = models[task.main]
    debug = getattr(args, "debug", False)

    def per_item(stage):  # any failure fails its own input only (the pipeline goes on after MattekitErrors)
        def run(item, *rest):
            try:
                return stage(item, *rest)
            except MattekitError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise MattekitError(f"{item[0]}: {failure_sentence(exc, debug)}") from None
        return run

    @per_item
    def read(item):
        picture = io.read_image(item[0])
        inputs = inputs_for(picture)
        x, context = task.prepare(models, inputs, options)
        return x, (picture, inputs, context)

    @per_item
    def write(item, carried, y) -> None:
        picture, inputs, context = carried
        target = item[1]
        result = for_file(task.finish(models, inputs, options, context, y)[output], target)
        ensure_parent(target)
        io.write_image(target, result, bit_depth=bit_depth_for(picture, target))

    with tqdm(total=len(jobs), initial=len(jobs) - len(todo), unit="img", file=sys.stderr) as bar:
        report = pipeline.run_pipeline(todo, read, predictor, write, progress=lambda done, item: bar.update(),
                                       **pipeline.plan(predictor, threads=getattr(args, "threads", None)))
        for (source, _), reason in report.failed:
            tqdm.write(f"mattekit: error: {reason}", file=sys.stderr)
    return summarise_failures([source for (source, _), _ in report.failed], len(jobs))


def tile_bar(target: Path, quiet: bool):
    """A progress bar for the tiles of one image; call it with (done, total); ``close()`` it after."""
    bar = tqdm(unit="tile", desc=target.name, disable=True if quiet else None, leave=False, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    progress.close = bar.close
    return progress
