"""Errors a user can cause. Their message is one sentence meant for the user."""

from __future__ import annotations

import re
import unicodedata


class MattekitError(Exception):
    """A problem the user can fix; the CLI prints the message and exits non-zero."""

    exit_code = 2


class WeightsError(MattekitError):
    """Weights missing, offline, unreachable or failing verification. ``fix``: what the user can do, in a few words
    (a command), where one is known; ``detail``: the longer account (each place tried), shown with ``--debug``."""

    def __init__(self, message: str, fix: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.fix, self.detail = fix, detail


class WeightsCheckFailed(WeightsError):
    """A weights file on disk that failed its check (damaged or changed): never used, and said as it is rather than
    as weights that cannot be had."""


class Cancelled(Exception):
    """Work its user cancelled before it finished; what was finished stays (a roto re-run resumes). The message is
    one sentence; the CLI exits with code 130, as for Ctrl-C, and the worker reports the job state "cancelled".
    Not a :class:`MattekitError`: no stage takes it for a failed input and goes on with the next one."""

    exit_code = 130


class InputError(MattekitError):
    """An input file that cannot be read or understood."""


class OutputError(MattekitError):
    """An output location that cannot be written."""


def in_words(message: str, options, word) -> str:
    """``message``, a sentence in the CLI's words, with each flag of ``options`` (declared options: ``flag`` and
    ``name``; "-o" stands for the option ``output``) replaced by ``word(name)``, the option as another front
    end names it: ``name=`` in Python, ``option 'name'`` in the worker's answers that GIMP and Blender show."""
    flags = {o.flag: o.name for o in options}
    if "output" in flags.values():
        flags["-o"] = "output"
    pattern = "|".join(re.escape(flag) for flag in sorted(flags, key=len, reverse=True))
    return re.sub(rf"(?<![\w-])({pattern})(?![\w-])", lambda found: word(flags[found.group(1)]), message)


_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: str) -> str:
    """``text`` safe to print on a terminal, as ``ls -b`` shows names: control characters (escapes, newlines),
    bidirectional overrides and undecodable bytes of a file name (surrogate escapes) written as backslash codes
    (``\\x1b``, ``\\n``, ``\\xff``, ``\\u202e``); everything else as it is."""

    def safe(char: str) -> str:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # a byte the file system's encoding could not decode
            return f"\\x{code - 0xDC00:02x}"
        if unicodedata.category(char) in ("Cc", "Cs") or char in _BIDI:
            return repr(char)[1:-1]
        return char

    return "".join(safe(c) if not c.isprintable() else c for c in text)
