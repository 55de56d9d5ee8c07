"""The first-use measurement of a model's two CPU engines (:func:`measure_engines`), which
:func:`mattekit.engines.plan.decide` asks for where no table has the model, and this machine's table of them
(:func:`save`; read by :func:`mattekit.engines.tables.own_row`). ``mattekit doctor --measure`` and ``mattekit bench
engines`` measure again."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..catalog import ModelEntry
from ..fsutil import atomic_write
from . import export_recipe, load_net, threads, weights_file
from .tables import fingerprint, own_table_path, read_table, winner

MEASURE_PIXELS = 320 * 320  # a first-use measurement's input at most (the model's own input where smaller)
BUDGET_S = 3.0  # wall seconds a first-use measurement's warm-up and timed calls take at most (beyond load and export)


def measure_engines(entry: ModelEntry, weights_path: str | Path | None = None) -> dict:
    """Time ``entry``'s two CPU engines here (fp32, one thread, turn by turn, CPU seconds: torch warmed on a 64 x 64
    input and ONNX Runtime by its first call, then the least of the timed calls, at least one of torch's and two of
    ONNX Runtime's, more while they fit :data:`BUDGET_S` (:func:`_timed_calls`), at its input for a 1024 x 768 photo
    shrunk (to multiples of 32) to at most :data:`MEASURE_PIXELS`, and further for a net too slow for three calls in
    the budget: :func:`_measured_size`), save the row under this machine's fingerprint and return it (with
    "cost_s", the wall seconds the measurement took, "load_s" and "export_s", those of them that loaded the net and
    made the ONNX export where it was not cached; "export_kept": the export is the one the ONNX engine runs from
    then on, the model's input being no larger). Loads the model once; a fixed-size model larger than that is measured on a dynamic export of its net,
    kept in the export cache. Said on standard error, with its cost beyond what the first load takes anyway."""
    import time

    from ..progress import Display

    path = weights_file(entry, weights_path)  # a model without its weights says so before any measuring is said
    start = time.perf_counter()
    display = Display()
    with display.ticking(
        f"measuring torch and ONNX Runtime for {entry.name} once on this CPU "
        "(cached; `mattekit doctor --measure` measures again)"
    ):
        row = _timed_engines(entry, path)
    row["cost_s"] = round(time.perf_counter() - start, 2)
    exported = row["export_kept"] and winner(row) == "onnx"  # the export its ONNX engine runs from now on
    anyway = row["load_s"] + (row["export_s"] if exported else 0.0)  # what its first load takes without measuring
    display.note(
        f"measured {entry.name}'s engines in {row['cost_s'] - anyway:.1f} s ({winner(row)}, "
        f"{row['ratio']:.2f}x), beyond the {anyway:.1f} s of loading{' and exporting' if exported else ''}"
        " it that its first use takes anyway."
    )
    save({entry.name: row})
    return row


def _timed_engines(entry, path) -> dict:
    """The measurement row of :func:`measure_engines` (without its cost) for ``entry``'s weights file ``path``."""
    import time

    import torch

    from .. import engines
    from ..machine import cpu_info

    h, w = entry.input.net_size(768, 1024)
    begin = time.perf_counter()
    net, made = load_net(entry, path), export_recipe(entry, path)
    load_s = time.perf_counter() - begin
    torch_engine = engines.build_torch(net, "cpu", "fp32", made["index"])
    previous = threads.count()
    threads.set_count(1)
    try:
        small = np.random.default_rng(0).random((1, 3, 128, 128), dtype=np.float32) * 2 - 1
        torch_engine(torch.from_numpy(small[:, :, :64, :64].copy()))  # its one-time costs, on a small input
        took = []
        for side in (64, 128):  # a pixel's CPU seconds beyond a call's own, to size the timed input
            started = time.thread_time()
            torch_engine(torch.from_numpy(small[:, :, :side, :side].copy()))
            took.append(time.thread_time() - started)
        size = _measured_size(h, w, (took[1] - took[0]) / (128 * 128 - 64 * 64))
        own = engines.onnx_export_path(**made)  # the export its ONNX engine runs
        if size != (h, w):
            made.update(example=size, dynamic_size=True)
        begin = time.perf_counter()
        onnx = engines.onnx_engine(lambda: net, label=entry.name, **made)  # its export made once, kept for later runs
        if not own.is_file():  # a fixed-size net larger than the measurement's input: its fixed export, made from it
            fixed_dims(onnx.path, own, (h, w))
        export_s = time.perf_counter() - begin
        x = np.random.default_rng(0).random((1, 3) + size, dtype=np.float32) * 2 - 1
        seconds = _timed_calls({"torch": lambda: torch_engine(torch.from_numpy(x)), "onnx": lambda: onnx(x)})
    finally:
        threads.set_count(previous)
    torch_s, onnx_s = min(seconds["torch"]), min(seconds["onnx"])
    info = cpu_info()
    return {
        "torch_s": round(torch_s, 5),
        "onnx_s": round(onnx_s, 5),
        "ratio": round(torch_s / onnx_s, 3),
        "input": list(size),
        "load_s": round(load_s, 2),
        "export_s": round(export_s, 2),
        "export_kept": own.is_file(),
        "measured": time.strftime("%Y-%m-%d"),
        "machine": info[0] if info else "",
    }


def _measured_size(height: int, width: int, per_pixel: float) -> tuple[int, int]:
    """The timed input (rows, columns) for a model whose input is ``height`` x ``width``: shrunk (sides of multiples
    of 32, which these nets take) to at most :data:`MEASURE_PIXELS`, and further where a call at
    ``per_pixel`` seconds a pixel (torch's, warm, beyond its calls' fixed cost) would pass a third of :data:`BUDGET_S` (the timed calls are at
    least three: ONNX Runtime's first, torch's, ONNX Runtime's second)."""
    pixels = min(MEASURE_PIXELS, BUDGET_S / 3 / max(per_pixel, 1e-12))
    scale = min(1.0, (pixels / (height * width)) ** 0.5)
    if scale == 1.0:
        return height, width
    return tuple(max(32, int(v * scale) // 32 * 32) for v in (height, width))


def _timed_calls(calls: dict) -> dict[str, list[float]]:
    """CPU seconds of each timed call of ``calls`` ({"torch": call, "onnx": call}), turn by turn: ONNX Runtime's
    first call (its warm-up, counted), torch's, ONNX Runtime's again; then more turns of both while the timed calls
    took under half a second of CPU, torch has had fewer than four and one more turn (at the calls' mean wall time so
    far) ends within :data:`BUDGET_S` of their start."""
    import time

    start = time.perf_counter()
    seconds: dict[str, list[float]] = {"torch": [], "onnx": []}

    def timed(name: str) -> float:
        begin = time.thread_time()
        calls[name]()
        seconds[name].append(time.thread_time() - begin)
        return seconds[name][-1]

    spent = sum(timed(name) for name in ("onnx", "torch", "onnx"))
    while spent < 0.5 and len(seconds["torch"]) < 4:  # a fast net: more turns, while the next one fits the budget
        elapsed = time.perf_counter() - start
        if elapsed + 2 * elapsed / (len(seconds["torch"]) + len(seconds["onnx"])) > BUDGET_S:
            break
        spent += timed("torch") + timed("onnx")
    return seconds


def fixed_dims(dynamic: Path, fixed: Path, size: tuple[int, int]) -> Path:
    """Write ``dynamic`` (an export whose batch, height and width are dynamic) to ``fixed`` with its input fixed at
    1 x 3 x ``size`` (H, W pixels): the static graph of the same net, without tracing it again; ONNX Runtime folds
    its shape arithmetic at that size as it does a static export's."""
    import onnx

    model = onnx.load(str(dynamic))
    for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim, (1, 3) + tuple(size)):
        dim.dim_value = value
    for dim in model.graph.output[0].type.tensor_type.shape.dim[:1]:
        dim.dim_value = 1
    atomic_write(fixed, lambda tmp: onnx.save(model, str(tmp)))
    return fixed


def save(rows: dict[str, dict], key: str | None = None) -> Path:
    """Merge ``rows`` ({model: measurement}) into this machine's table under ``key`` (default: :func:`fingerprint`)."""
    path = own_table_path()
    table = read_table(path)
    table.setdefault(key or fingerprint(), {}).update(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(table, indent=1, sort_keys=True) + "\n")
    return path
