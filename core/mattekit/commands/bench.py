"""``mattekit bench KIND``: quality and speed benchmarks that print tables of figures."""

from __future__ import annotations

import importlib

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
