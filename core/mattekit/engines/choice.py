"""Which CPU engine runs a model fastest, by measurement: torch (mattekit's CPU engine) or ONNX Runtime (the export of
the same net), fp32 both, one thread each, turn by turn; the ratio of their CPU seconds decides.

Two tables are read, the first that has the model deciding: this machine's own, in the user's mattekit home under a
fingerprint of the machine (:func:`fingerprint`: CPU class and model, cores, torch and ONNX Runtime versions; a new
fingerprint, e.g. after an upgrade, has no measurements yet), and the one shipped with mattekit (``measured.json``
beside this module, per CPU class, made by ``mattekit bench engines`` on the developers' machines), which
``$MATTEKIT_ENGINE_TABLE=hidden`` hides (a machine nobody measured, for tests and benches). Where neither has the
model, :func:`mattekit.engines.loading.measure_engines` times both engines on first use (a few seconds, once, cached) and
``mattekit doctor --measure`` measures again.

A table: ``{key: {model name: {"torch_s": s, "onnx_s": s, "ratio": torch_s / onnx_s, "input": [h, w],
"measured": date, "machine": CPU model}}}``, seconds of CPU per call; the key is a CPU class (shipped) or a fingerprint.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from ..machine import cpu_info

SHIPPED = Path(__file__).with_name("measured.json")
MARGIN = 1.05  # a measurement takes ONNX Runtime where torch takes at least 5 % more CPU time (below: noise, and no export)
MEASURE_PIXELS = 320 * 320  # a first-use measurement's input at most (the model's own input where smaller)


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


def fingerprint() -> str:
    """This machine as its measurements depend on it: 'x86_64-avx2 | AMD EPYC 7B13 | 2 cores | torch 2.13.0 |
    onnxruntime 1.23.2' (versions read without importing either)."""
    from importlib import metadata

    from ..machine import cpu_count

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "none"

    info = cpu_info()
    return (f"{cpu_class()} | {info[0] if info else platform.processor() or 'unknown CPU'} | {cpu_count()} cores | "
            f"torch {version('torch')} | onnxruntime {version('onnxruntime')}")


def own_table_path() -> Path:
    """Where this machine's measurements are kept (beside the weights cache, in the user's mattekit home)."""
    from ..weights import cache_dir

    return cache_dir().parent / "engines.json"


def _table(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def shipped_hidden() -> bool:
    """``$MATTEKIT_ENGINE_TABLE=hidden``: the shipped table is not read (this machine stands for one nobody measured)."""
    return os.environ.get("MATTEKIT_ENGINE_TABLE", "").strip().lower() == "hidden"


def measured(model: str) -> tuple[dict, str] | None:
    """(the measurement of ``model`` here, "this machine" | "shipped for CPU class C"), or None where no table has it."""
    tables = [(own_table_path(), fingerprint(), "this machine")]
    if not shipped_hidden():
        tables.append((SHIPPED, cpu_class(), f"shipped for {cpu_class()}"))
    for path, key, source in tables:
        row = _table(path).get(key, {}).get(model)
        if isinstance(row, dict) and isinstance(row.get("ratio"), (int, float)) and row["ratio"] > 0:
            return row, source
    return None


def covers(entry) -> bool:
    """Whether the shipped measurements cover ``entry``'s net family (u2net, isnet, csnet, modnet, sinet...: the
    convolutional segment and matte nets): only there do measurement and the evidence choose ONNX Runtime."""
    from .. import catalog

    cat, measured_nets = catalog.load(), set()
    for rows in _table(SHIPPED).values():
        measured_nets.update(cat.models[name].net.split(":")[0] for name in rows if name in cat.models)
    return entry.net.split(":")[0] in measured_nets


def winner(row: dict) -> str:
    """"onnx" where a measurement's torch took at least MARGIN times ONNX Runtime's time, else "torch"."""
    return "onnx" if row["ratio"] >= MARGIN else "torch"


def save(rows: dict[str, dict], key: str | None = None) -> Path:
    """Merge ``rows`` ({model: measurement}) into this machine's table under ``key`` (default: :func:`fingerprint`)."""
    from ..fsutil import atomic_write

    path = own_table_path()
    table = _table(path)
    table.setdefault(key or fingerprint(), {}).update(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(table, indent=1, sort_keys=True) + "\n")
    return path
