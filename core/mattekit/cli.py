"""The ``mattekit`` command. Each subcommand lives in ``mattekit.commands.<name>``.

A subcommand module defines ``add_parser(subparsers)`` (which sets ``func``) and
raises ``MattekitError`` for user-caused problems: they print one sentence and exit 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import MattekitError

COMMANDS = ("remove", "models", "bench", "serve", "upscale", "roto", "bokeh", "enhance", "matte")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mattekit", description="Cut out, matte, upscale and enhance images and frame sequences.")
    parser.add_argument("--version", action="version", version=f"mattekit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__package__}.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MattekitError as exc:
        print(f"mattekit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("mattekit: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
