"""Errors a user can cause. Their message is one sentence meant for the user."""


class MattekitError(Exception):
    """A problem the user can fix; the CLI prints the message and exits non-zero."""

    exit_code = 2


class WeightsError(MattekitError):
    """Weights missing, offline, unreachable or failing verification."""


class InputError(MattekitError):
    """An input file that cannot be read or understood."""


class OutputError(MattekitError):
    """An output location that cannot be written."""
