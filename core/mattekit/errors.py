"""Errors a user can cause. Their message is one sentence meant for the user."""
from __future__ import annotations

import re


class MattekitError(Exception):
    """A problem the user can fix; the CLI prints the message and exits non-zero."""

    exit_code = 2


class WeightsError(MattekitError):
    """Weights missing, offline, unreachable or failing verification."""


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
