"""The CLI subcommands generated from the task registry: ``mattekit <task> INPUT... [-o OUT] [options]``.

Each declared option becomes a flag (``--name``; booleans also get ``--no-name``), each optional
input port a ``--port FILE|FOLDER`` flag (a file, or a folder of files named like the inputs).
Files, folders and globs are expanded by :mod:`mattekit.commands.files` and run by
:mod:`mattekit.running.runner`. Nothing here imports torch until a command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import MattekitError
from ..options import Option, OptionError, options_of
from ..tasks import registry
from ..tasks.common import FileOptions
from ..tasks.registry import Task


def _metavar(option: Option) -> str | None:
    if option.choices is not None:
        return None
    return "PATH" if option.path else {int: "N", float: "X", str: "TEXT"}[option.type]


def help_line(summary: str) -> str:
    """A declaration's summary as the one-line help of its subcommand in ``mattekit --help``."""
    return summary[0].lower() + summary[1:].rstrip(".")


def add_task_parser(sub, task: Task) -> None:
    """The subcommand for ``task`` with its flags, all derived from the declaration."""
    summary = task.summary.replace("%", "%%")
    p = sub.add_parser(task.name, help=help_line(summary), description=summary)
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns; - reads standard input"
    )
    p.add_argument(
        "-o",
        "--output",
        help="output file (one input) or folder; - (PNG) or FORMAT:- (jpg:-, tif:-...) "
        "writes standard output; default: beside each input as "
        f"NAME{task.suffix_for(task.options()).replace('{scale}', 'N') or '_out'}.EXT",
    )
    for port in task.inputs[1:]:
        p.add_argument(
            f"--{port.name.replace('_', '-')}",
            dest=f"port_{port.name}",
            metavar="FILE|FOLDER",
            help=f"{port.help or port.kind} (a file, or a folder of files named like the inputs)".replace("%", "%%"),
        )
    add_option_flags(p, task.declared)
    p.add_argument("--threads", type=int, help="CPU threads for inference (per inference worker for several images)")
    p.add_argument("--skip-existing", action="store_true", help="leave inputs whose output already exists")
    p.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing but errors (no progress, no written files)"
    )
    add_option_flags(p, options_of(FileOptions))
    # the flags these replaced, kept working for old scripts (file_options says what they now are)
    p.add_argument("--no-metadata", dest="old_no_metadata", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--strip-personal", dest="old_strip_personal", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=lambda args: run(task, args))


def add_option_flags(parser, options: list[Option]) -> None:
    """One flag per option offered to the CLI (``--name``, booleans also ``--no-name``);
    the parsed value lands in ``opt_<name>``, None when the flag is not given."""
    for option in options:
        if "cli" not in option.hosts:
            continue
        common = dict(
            dest=f"opt_{option.name}", default=None, help=option.help.replace("%", "%%")
        )  # argparse formats help
        if option.type is bool:
            parser.add_argument(option.flag, action=argparse.BooleanOptionalAction, **common)
        elif option.repeat:
            parser.add_argument(option.flag, action="append", metavar=_metavar(option), **common)
        else:
            parser.add_argument(
                option.flag,
                type=option.type,
                choices=option.choices,
                metavar=_metavar(option),
                nargs="?" if option.bare is not None else None,
                const=option.bare,
                **common,
            )


def option_values(args, options: list[Option]) -> dict:
    """{option name: value as given} for the flags given on the command line (a repeated flag's values joined with
    ";"), for the one check that makes the options (:meth:`mattekit.tasks.registry.Declaration.make_options`)."""
    values = {}
    for option in options:
        given = getattr(args, f"opt_{option.name}", None)
        if option.repeat and given is not None:
            given = ";".join(given)
        if given is not None:
            values[option.name] = given
    return values


def options_from_args(task: Task, args) -> tuple[object, dict[str, str]]:
    """(the task's options, {input port: the FILE|FOLDER given}) from parsed arguments; a MattekitError
    sentence for a bad value."""
    ports = {}
    for port in task.inputs[1:]:
        given = getattr(args, f"port_{port.name}", None)
        if given is not None:
            _check_port(port, given)
            ports[port.name] = given
    values = option_values(args, task.declared)
    try:
        return task.make_options(values, host="cli"), ports
    except OptionError as exc:
        raise MattekitError(as_flags(str(exc), task)) from None


def _check_port(port: registry.Port, given: str) -> None:
    """MattekitError unless ``given`` (an optional input's FILE|FOLDER) is a folder or a regular file: a missing
    file would fail only after the models load, a device such as /dev/zero would be read forever."""
    from .files import not_a_file

    path = Path(given)
    if not path.is_dir() and not path.is_file():
        what = not_a_file(given, "an image file").rstrip(".")
        raise MattekitError(
            f"--{port.name.replace('_', '-')} {what}; give an image file or a folder of images named like the inputs."
        )


def as_flags(message: str, task: registry.Declaration) -> str:
    """An option error in the CLI's words: 'Option 'x_y'' -> '--x-y'."""
    for option in task.declared:
        message = message.replace(f"Option '{option.name}'", option.flag)
    return message


def file_options(args) -> FileOptions:
    """What the written files carry (:class:`~mattekit.tasks.common.FileOptions`) from the flags given; the old
    flags' meaning said on standard error: ``--no-metadata`` is ``--no-provenance``, ``--strip-personal`` the default."""
    values = option_values(args, options_of(FileOptions))  # booleans: argparse gives True or False
    if args.old_no_metadata:
        print(
            "mattekit: --no-metadata is now --no-provenance: it leaves out mattekit's provenance record (the input's "
            "personal metadata is left out by default).",
            file=sys.stderr,
        )
        values.setdefault("provenance", False)
    if args.old_strip_personal:
        if values.get("keep_personal"):
            raise MattekitError("--strip-personal and --keep-personal contradict each other; give one of them.")
        print(
            "mattekit: --strip-personal is the default now (--keep-personal keeps the input's personal metadata).",
            file=sys.stderr,
        )
    return FileOptions(**values)


def run(task: Task, args) -> int:
    """One CLI run of ``task``: arguments, inputs and outputs are checked before any model loads (so a
    licence notice never comes before a usage error), then each input is processed and written."""
    from .stdio import standard_streams

    options, ports = options_from_args(task, args)
    written = file_options(args)
    with standard_streams(args) as streams:
        return _run_files(task, args, options, ports, streams, written)


def _run_files(task: Task, args, options, ports: dict, streams, written: FileOptions) -> int:
    from .. import heap
    from ..io import naming
    from . import files

    suffix = naming.output_suffix(task, options)
    # written beside the inputs: a folder's outputs of an earlier run are no inputs of this one
    left_out: list[Path] = []
    jobs = files.expand_inputs(args.inputs, streams.stdin, suffix if args.output is None else "", left_out)
    if left_out and not args.quiet:
        names = ", ".join(p.name for p in left_out[:3]) + (", ..." if len(left_out) > 3 else "")
        print(
            f"mattekit: left out {len(left_out)} file(s) named as this command's outputs of other inputs ({names}); "
            f"name one on its own to process it.",
            file=sys.stderr,
        )
    if len(jobs) == 1 and not streams.data():
        masks = {p.name: ports[p.name] for p in task.inputs[1:] if p.kind != "image" and p.name in ports}
        files.check_header(jobs[0][0], options, masks)
    extension = naming.output_extension(task, options, args.output)
    planned = naming.plan_outputs(
        jobs, args.output, suffix, extension, task.files_read(options, ports), overwrite=written.overwrite
    )
    if len(planned) == 1 and getattr(args, "own_process", False):  # process-wide: never for main() called in-process
        heap.for_one_image()  # before any thread starts or any large block is made
    from .. import provenance, runtime  # torch: only once every check that needs no model has passed

    models = runtime.ModelCache(say=runtime.say_on_stderr).for_task(task, options, set(ports))
    from ..running.runner import Runner

    record = provenance.record(task, options, models) if written.provenance else None
    messages = files.Messages(quiet=args.quiet, label=streams.label, deliver=streams.deliver)
    runner = Runner(task, models, options, ports, record, personal=written.keep_personal)
    return files.run_files(args, planned, runner, messages, streams.data())
