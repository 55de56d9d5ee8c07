"""``mattekit bench KIND``: quality and speed benchmarks that print tables of figures. The benchmarks are their own
package beside the core (``mattekit_bench``, shipped in the same distribution, a client of mattekit); this is the one
module of the core that names it, and imports it only when ``mattekit bench`` is run."""

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
MISSING = "mattekit: error: The benchmarks are not installed with this mattekit (no package mattekit_bench).\n"


def add_parser(sub) -> None:
    parser = sub.add_parser("bench", help="measure quality or speed on a folder of data and print figures")
    try:
        importlib.import_module("mattekit_bench")
    except ModuleNotFoundError as exc:
        if exc.name != "mattekit_bench":
            raise
        parser.exit(2, MISSING)
    kinds = parser.add_subparsers(dest="bench", metavar="KIND")
    kinds.required = True
    for name in BENCHES:
        importlib.import_module(f"mattekit_bench.{name}").add_parser(kinds)
