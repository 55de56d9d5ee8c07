"""The engine measurements :func:`mattekit.engines.plan.decide` reads: the CPU's class (:func:`cpu_class`), this
machine's fingerprint (:func:`fingerprint`: CPU class and model, cores, torch and ONNX Runtime versions; a new
fingerprint, e.g. after an upgrade or on a bigger machine, has no measurements yet), this machine's own table (in the
user's mattekit home, under its fingerprint, written by ``mattekit bench engines --save``: :func:`save`,
:func:`own_row`) and the one shipped with mattekit (``measured.json`` beside this module, per CPU class, made by
``mattekit bench engines`` on the developers' machines: :func:`shipped_row`), which ``$MATTEKIT_ENGINE_TABLE=hidden``
hides (a machine nobody measured, for tests and benches). A table: ``{key: {model name: {"torch_s": s, "onnx_s": s,
"ratio": torch_s / onnx_s, "input": [h, w], "measured": date, "machine": CPU model}}}``, CPU seconds per call (fp32,
one thread each, turn by turn); the key is a CPU class (shipped) or a fingerprint. Reading them imports neither torch
nor ONNX Runtime.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from ..fsutil import atomic_write
from ..machine import cpu_count, cpu_info

EVIDENCE = "not measured here: ONNX Runtime (faster a call in 15 of 16 rows; it starts from its cached export)"
SHIPPED = Path(__file__).with_name("measured.json")
# A measurement takes torch where ONNX Runtime takes at least 5 % more CPU time a call (below: noise, and torch's
# start-up, which builds the net from the weights each time where ONNX Runtime loads its cached export)
MARGIN = 1.05


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
    return class_of(arch, info[1])


VECTOR_LEVELS = (("avx512_bf16", ("avx512_bf16", "amx_bf16")), ("avx512", ("avx512f",)), ("avx2", ("avx2",)))


def class_of(arch: str, flags) -> str:
    """The CPU class of an ``arch`` ("x86_64") CPU with feature ``flags`` (/proc/cpuinfo's names): the widest level of
    :data:`VECTOR_LEVELS` that one of its flags gives, checked widest first; the architecture alone without any."""
    for level, needs in VECTOR_LEVELS:
        if any(flag in flags for flag in needs):
            return f"{arch}-{level}"
    return arch


def fingerprint() -> str:
    """This machine as its measurements depend on it: 'x86_64-avx2 | AMD EPYC 7B13 | 2 cores | torch 2.13.0 |
    onnxruntime 1.23.2' (versions read without importing either)."""
    from importlib import metadata

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "none"

    info = cpu_info()
    return (
        f"{cpu_class()} | {info[0] if info else platform.processor() or 'unknown CPU'} | {cpu_count()} cores | "
        f"torch {version('torch')} | onnxruntime {version('onnxruntime')}"
    )


def own_table_path() -> Path:
    """Where this machine's measurements are kept (beside the weights cache, in the user's mattekit home)."""
    from ..weights import cache_dir

    return cache_dir().parent / "engines.json"


def read_table(path: Path) -> dict:
    """The table at ``path`` ({} where it is missing or damaged)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def shipped_hidden() -> bool:
    """``$MATTEKIT_ENGINE_TABLE=hidden``: the shipped table is not read (this machine stands for one nobody measured)."""
    return os.environ.get("MATTEKIT_ENGINE_TABLE", "").strip().lower() == "hidden"


def own_row(model: str) -> tuple[dict, str] | None:
    """(this machine's measurement of ``model``, under its fingerprint, "this machine"), or None."""
    return _row(own_table_path(), fingerprint(), model, "this machine")


def shipped_row(model: str) -> tuple[dict, str] | None:
    """(the shipped measurement of ``model`` for this CPU class, "shipped for C"), or None (none, or hidden)."""
    return None if shipped_hidden() else _row(SHIPPED, cpu_class(), model, f"shipped for {cpu_class()}")


def measured(model: str) -> tuple[dict, str] | None:
    """:func:`own_row`, else :func:`shipped_row` of ``model``."""
    return own_row(model) or shipped_row(model)


def _row(path: Path, key: str, model: str, source: str) -> tuple[dict, str] | None:
    row = read_table(path).get(key, {}).get(model)
    if isinstance(row, dict) and isinstance(row.get("ratio"), (int, float)) and row["ratio"] > 0:
        return row, source
    return None


def covers(entry) -> bool:
    """Whether the shipped measurements cover ``entry``'s net family (u2net, isnet, csnet, modnet, sinet...: the
    convolutional segment and matte nets): only there do measurement and the evidence choose ONNX Runtime."""
    from .. import catalog

    cat, measured_nets = catalog.load(), set()
    for rows in read_table(SHIPPED).values():
        measured_nets.update(cat.models[name].net.split(":")[0] for name in rows if name in cat.models)
    return entry.net.split(":")[0] in measured_nets


def winner(row: dict) -> str:
    """ "torch" where a measurement's ONNX Runtime took at least MARGIN times torch's CPU time a call, else "onnx"."""
    return "torch" if row["ratio"] * MARGIN <= 1 else "onnx"


def save(rows: dict[str, dict], key: str | None = None) -> Path:
    """Merge ``rows`` ({model: measurement}) into this machine's table under ``key`` (default: :func:`fingerprint`)."""
    path = own_table_path()
    table = read_table(path)
    table.setdefault(key or fingerprint(), {}).update(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(table, indent=1, sort_keys=True) + "\n")
    return path
