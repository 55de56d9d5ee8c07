"""Which CPU engine runs a model fastest, by measurement: ``mattekit bench engines`` times a model's net in
mattekit's torch engine and in ONNX Runtime (fp32 both, one thread each, turn by turn) and records the ratio
per CPU class (:func:`cpu_class`, e.g. ``x86_64-avx2``).

Two tables are read, the first that has the model for this CPU class deciding: the machine's own
(``bench engines --save``, in the cache folder) and the one shipped with mattekit (``measured.json`` beside
this module, made by the same bench on the developers' machines). A model neither measured for this CPU
class keeps the rule of :func:`mattekit.engines.policy.resolve_backend`.

A table: ``{cpu class: {model name: {"torch_s": s, "onnx_s": s, "ratio": torch_s / onnx_s, "measured": date,
"machine": CPU model}}}``, seconds of CPU per image at the model's catalog input size.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from ..machine import cpu_info

SHIPPED = Path(__file__).with_name("measured.json")
MARGIN = 1.05  # ONNX Runtime is chosen when torch takes at least 5 % more CPU time (below that: noise, and no export)


def cpu_class() -> str:
    """The CPU's architecture and widest vector feature that the engines use: ``x86_64-avx512_bf16`` (AVX-512
    BF16 or AMX), ``x86_64-avx512``, ``x86_64-avx2``, ``x86_64``, or the architecture alone (``arm64``...).
    ``$MATTEKIT_CPU_CLASS`` names it instead (tests take other machines' paths with it)."""
    forced = os.environ.get("MATTEKIT_CPU_CLASS", "").strip()
    if forced:
        return forced
    arch = {"amd64": "x86_64", "aarch64": "arm64"}.get(platform.machine().lower(), platform.machine().lower())
    info = cpu_info()
    if arch != "x86_64" or info is None:
        return arch
    flags = info[1]
    for level, needs in (("avx512_bf16", ("avx512_bf16", "amx_bf16")), ("avx512", ("avx512f",)), ("avx2", ("avx2",))):
        if any(flag in flags for flag in needs):
            return f"{arch}-{level}"
    return arch


def own_table_path() -> Path:
    """Where ``bench engines --save`` keeps this machine's measurements (beside the weights cache)."""
    from ..weights import cache_dir

    return cache_dir().parent / "engines.json"


def _table(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def measured(model: str, cpu: str | None = None) -> tuple[dict, str] | None:
    """(the measurement of ``model`` on CPU class ``cpu`` (default: this one), "this machine" | "shipped"),
    or None where neither table has it."""
    cpu = cpu or cpu_class()
    for path, source in ((own_table_path(), "this machine"), (SHIPPED, "shipped")):
        row = _table(path).get(cpu, {}).get(model)
        if isinstance(row, dict) and isinstance(row.get("ratio"), (int, float)):
            return row, source
    return None


def winner(model: str) -> str | None:
    """"onnx" or "torch" where ``model`` was measured on this CPU class, else None."""
    found = measured(model)
    if found is None:
        return None
    return "onnx" if found[0]["ratio"] >= MARGIN else "torch"


def save(rows: dict[str, dict], cpu: str | None = None) -> Path:
    """Merge ``rows`` ({model: measurement}) into this machine's table under ``cpu``; returns its path."""
    from ..fsutil import atomic_write

    path = own_table_path()
    table = _table(path)
    table.setdefault(cpu or cpu_class(), {}).update(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(table, indent=1, sort_keys=True) + "\n")
    return path
