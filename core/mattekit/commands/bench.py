"""``mattekit bench KIND``: quality and speed benchmarks that print tables of figures."""

from __future__ import annotations

import importlib

from .. import heap

BENCHES = (
    "segment",
    "hints",
    "upscale",
    "roto",
    "bokeh",
    "speed",
    "engines",
    "matte",
    "shadow",
    "two_shots",
    "see_through",
)


def add_parser(sub) -> None:
    parser = sub.add_parser("bench", help="measure quality or speed on a folder of data and print figures")
    kinds = parser.add_subparsers(dest="bench", metavar="KIND")
    kinds.required = True
    for name in BENCHES:
        importlib.import_module(f"mattekit.bench.{name}").add_parser(kinds)
    for parser in kinds.choices.values():
        parser.set_defaults(func=_collecting(parser.get_default("func")))


def _collecting(run):
    """``run(args)`` with the command line's start-up pause of the garbage collector ended first
    (:func:`mattekit.heap.resume_collection`): a bench runs for minutes, and not every one loads its models through
    the model cache, which ends it."""

    def collecting(args):
        heap.resume_collection()
        return run(args)

    return collecting
