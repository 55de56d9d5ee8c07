"""The layers of core/mattekit, lowest first: what tests/unit/test_layers.py holds the imports to and what the layout
table of docs/design.md (tests/helpers/design_table.py) is grouped by. The benchmarks (bench/mattekit_bench) are beside
the core, a client of it, and have no layer here."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "core" / "mattekit"

# Lower layers first; a module may import from its own layer or below, never above.
LAYERS = [
    {"errors", "fsutil", "heap", "startup", "wire", "machine", "onnx_import", "provenance", "progress", "settings"},
    {"ops", "weights"},
    {"io", "matting", "catalog", "options", "nets", "engines"},
    {"runtime", "predictor", "finish"},
    {"upscaling", "subject", "lens"},  # the algorithms the tasks declare
    {"tasks"},
    {"roto", "running"},
    {"api", "worker"},
    {"commands"},
    {"cli", "__main__"},
]
