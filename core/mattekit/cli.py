"""The ``mattekit`` command.

Task subcommands (remove, matte, upscale, bokeh, enhance, depth, mask-preview, ...) are generated
from the task registry (:mod:`mattekit.commands.tasks`); a sequence task of the registry (roto) has its
command module ``mattekit.commands.<name>``, which takes its options from the declaration; the others live in
``mattekit.commands.<name>`` and define ``add_parser(subparsers)`` (which sets ``func``). Only the
subcommand being run is built in full, and nothing imports torch before a model is needed, so
``mattekit --help`` and ``--version`` are quick. ``MattekitError`` (a user-caused problem) prints
one sentence and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import warnings

from . import __version__
from .errors import Cancelled, MattekitError, OutputError, printable

COMMANDS = {  # hand-written subcommands: name -> one-line help
    "models": "list, download and verify model weights",
    "serve": "run the local worker the GIMP plug-in and the Blender add-on talk to",
    "bench": "measure quality or speed on a folder of data and print figures",
    "info": "print what made an image: mattekit version, task, model, weights sha256, options",
    "doctor": "show the machine, the GPU and how each model will run (device, engine, precision)",
    "colorspaces": "list the OCIO colour spaces a plate may be given in (roto --colorspace)",
}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one ``mattekit: error:`` sentence naming the flag and the fix (exit 2),
    not the usage block; ``--help`` still prints it. Subcommands' parsers are of this class too. A word that
    starts with a minus and a digit is a value, not a flag: ``--box -5,-5,10,10``, ``--point -1,-1``,
    ``--frames -3--1`` (argparse took only plain negative numbers)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\d[\d.,:x-]*$")  # no flag of mattekit looks like this

    def error(self, message: str):
        print(f"mattekit: error: {printable(usage_sentence(message, self.prog))}", file=sys.stderr)
        self.exit(2)


TYPE_WORDS = {"int": "a whole number", "float": "a number"}


def usage_sentence(message: str, prog: str) -> str:
    """argparse's complaint as one sentence: 'argument --crop: invalid float value: 'abc'' ->
    "--crop must be a number, not 'abc'."."""
    match = re.fullmatch(r"argument (\S+?)(?:/(\S+))?: (.*)", message, re.DOTALL)
    if match is None:  # unrecognized or missing arguments
        return f"{message[0].upper()}{message[1:].rstrip('.')}; see `{prog} --help`."
    flag = match.group(2) or match.group(1)
    problem = match.group(3)
    bad_type = re.fullmatch(r"invalid (\w+) value: (.*)", problem)
    choice = re.fullmatch(r"invalid choice: (.*?) \(choose from (.*)\)", problem, re.DOTALL)
    if bad_type:
        return f"{flag} must be {TYPE_WORDS.get(bad_type.group(1), bad_type.group(1))}, not {bad_type.group(2)}."
    if choice:
        return f"{flag} must be one of {choice.group(2).replace(chr(39), '')}, not {choice.group(1)}."
    if problem.startswith("expected"):
        return f"{flag} needs a value; see `{prog} --help`."
    return f"{flag}: {problem.rstrip('.')}."


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; ``command`` (a subcommand name) is built in full, the others only as names with help."""
    from .commands import tasks as task_commands
    from .tasks import registry

    parser = Parser(prog="mattekit", description="Cut out, matte, upscale and enhance images and frame sequences.")
    parser.add_argument("--version", action="version", version=f"mattekit {__version__}")
    parser.add_argument("--debug", action="store_true", help="print the traceback of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for task in registry.tasks().values():
        if command in (None, task.name):
            task_commands.add_task_parser(sub, task)
        else:
            sub.add_parser(task.name, help=task_commands.help_line(task.summary))
    for task in registry.sequences().values():  # sequence tasks: their command module builds the flags
        if command in (None, task.name):
            importlib.import_module(f"{__package__}.commands.{task.name}").add_parser(sub)
        else:
            sub.add_parser(task.name, help=task_commands.help_line(task.summary))
    for name, summary in COMMANDS.items():
        if command in (None, name):
            importlib.import_module(f"{__package__}.commands.{name}").add_parser(sub)
        else:
            sub.add_parser(name, help=summary)
    return parser


def _command(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is not an option), if any."""
    return next((word for word in argv if not word.startswith("-")), None)


def _internal(exc: BaseException, debug: bool) -> int:
    """A failure that is not the user's: one sentence (the traceback too with --debug), exit 1."""
    from .commands.files import failure_sentence

    print(f"mattekit: error: {printable(failure_sentence(exc, debug))}", file=sys.stderr)
    return 1


def _stdout_dropped() -> None:
    """Nothing more goes to standard output: its descriptor leads to the null device (what is still buffered
    would raise again as Python exits)."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no file descriptor (a test's captured stream)
        pass


def _pipe_closed() -> int:
    """Standard output's reader has gone: nothing more is written to it, no message; the status a shell shows for
    a tool that SIGPIPE ended, 128 + 13."""
    _stdout_dropped()
    return 141


def _stdout_failed(exc: OSError) -> OutputError:
    """Standard output cannot take more for another cause than a reader gone (a full disk, a file size limit):
    nothing more is written to it; the sentence saying why."""
    from .io.formats import reason

    _stdout_dropped()
    return OutputError(f"Cannot write to standard output: {reason(exc)}.")


class _Stdout:
    """The command's standard output (:func:`run`) as the stream it wraps, but a write or flush it cannot take for
    another cause than a reader gone ends the command with that sentence (OutputError, exit 2) rather than an
    internal error or a silent 141."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def __getattr__(self, name: str):
        return getattr(self._stream, name)

    def write(self, text: str) -> int:
        return self._guarded(self._stream.write, text)

    def flush(self) -> None:
        self._guarded(self._stream.flush)

    @staticmethod
    def _guarded(step, *args):
        try:
            return step(*args)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _stdout_failed(exc) from None


def _show_warnings(debug: bool) -> None:
    """Python warnings as one ``mattekit: warning:`` line each, without source paths: mattekit's own
    (UserWarning raised in the package, e.g. "only the first frame is used"); all others
    (numpy's RuntimeWarnings, libraries' deprecations) only with --debug."""
    package = os.path.dirname(os.path.abspath(__file__))

    def show(message, category, filename, lineno, file=None, line=None):
        if debug or (category is UserWarning and os.path.abspath(filename).startswith(package)):
            print(f"mattekit: warning: {printable(str(message))}", file=sys.stderr)

    warnings.showwarning = show


THREADS = (1, 1024)  # the one range of every command's --threads (roto's declared option has the same)


def _check_threads(count: int | None) -> None:
    """MattekitError unless ``count`` (a command's --threads, None when not given) is in :data:`THREADS`."""
    if count is not None and not THREADS[0] <= count <= THREADS[1]:
        raise MattekitError(f"--threads must be a whole number from {THREADS[0]} to {THREADS[1]}, not {count}.")


def _take_debug(argv: list[str]) -> tuple[list[str], bool]:
    """(``argv`` without ``--debug``, whether it was there): the flag is the root parser's, but it may come
    after the command too (``mattekit remove x.jpg --debug``), as the error sentences' "rerun with --debug" reads."""
    end = argv.index("--") if "--" in argv else len(argv)
    kept = [word for word in argv[:end] if word != "--debug"] + argv[end:]
    return kept, len(kept) != len(argv)


def main(argv: list[str] | None = None) -> int:
    own_process = argv is None  # this process's own command line, not main() called from Python (tests, scripts)
    argv, debug = _take_debug(sys.argv[1:] if argv is None else list(argv))
    args = build_parser(_command(argv) or "").parse_args(argv)
    args.debug, args.own_process = debug, own_process
    _show_warnings(args.debug)
    try:
        _check_threads(getattr(args, "threads", None))
        return int(args.func(args) or 0)
    except (MattekitError, Cancelled) as exc:
        print(f"mattekit: error: {printable(str(exc))}", file=sys.stderr)
        if args.debug and getattr(exc, "detail", None):
            print(f"mattekit: {printable(exc.detail)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mattekit: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of standard output left (`... -o - | head -c 10`): end quietly
        return _pipe_closed()
    except Exception as exc:  # noqa: BLE001 - a bug or the machine: still one sentence, no traceback
        return _internal(exc, args.debug)


def _runs_a_task(command: str | None) -> bool:
    """Whether ``command`` is one the task registry generates (its run goes through the Runner): neither a
    hand-written command nor a sequence task's, which have a module of their own in :mod:`mattekit.commands`.
    Asked before anything is imported (the registry's imports take 0.4 s)."""
    if not command or command in COMMANDS or not command.replace("-", "").isalnum():
        return False
    return not os.path.exists(os.path.join(os.path.dirname(__file__), "commands", f"{command}.py"))


def run() -> None:
    """The command line's entry (``mattekit``, ``python -m mattekit``): :func:`main` in the command's start-up
    (:func:`mattekit.startup.paused`: the garbage collector paused for a task command until its run begins), then
    :func:`exit_without_teardown`."""
    from . import startup

    sys.stdout = _Stdout(sys.stdout)
    with startup.paused(_runs_a_task(_command(_take_debug(sys.argv[1:])[0]))):
        code = main()
    exit_without_teardown(code)


def exit_without_teardown(code: int) -> None:
    """End this process with status ``code`` as Python's own exit does up to its interpreter's teardown, which is
    skipped: the threads Python waits for joined, the exit handlers run (child processes, a bench's
    report, logging), the standard streams flushed, then :func:`os._exit`. That teardown frees every module one by
    one and writes nothing; with torch loaded it took 0.5-0.7 s of a 2-photo command's 2.3-2.5 s on 2 cores."""
    import atexit
    import threading

    getattr(threading, "_shutdown", lambda: None)()  # what Python runs first on exit: the non-daemon threads joined
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # the reader of standard output left (`mattekit ... | head`)
        code = code or _pipe_closed()
    except (OSError, OutputError) as exc:  # a full disk, a file size limit
        failed = exc if isinstance(exc, OutputError) else _stdout_failed(exc)
        print(f"mattekit: error: {failed}", file=sys.stderr)
        code = code or failed.exit_code
    except ValueError:  # a stream closed
        pass
    try:
        sys.stderr.flush()
    except (OSError, ValueError):  # nowhere left to say it
        pass
    os._exit(code)


if __name__ == "__main__":
    run()
