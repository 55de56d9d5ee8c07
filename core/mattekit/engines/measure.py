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


def measure_engines(entry: ModelEntry, weights_path: str | Path | None = None) -> dict:
    """Time ``entry``'s two CPU engines here (fp32, one thread, turn by turn, CPU seconds: torch warmed on a 64 x 64
    input and ONNX Runtime by its first call, then the least of the timed calls, at least one of torch's and two of
    ONNX Runtime's, at its input for a 1024 x 768 photo shrunk (to multiples of 32) to at most
    :data:`MEASURE_PIXELS`), save the row under this machine's fingerprint and return it (with
    "cost_s", the wall seconds the measurement took, "load_s" and "export_s", those of them that loaded the net and
    made the ONNX export where it was not cached; "export_kept": the export is the one the ONNX engine runs from
    then on, the model's input being no larger). Loads the model once; a fixed-size model larger than that is measured on a dynamic export of its net,
    kept in the export cache. Said on standard error, with its cost beyond what the first load takes anyway."""
    import time

    from ..progress import Display

    start = time.perf_counter()
    display = Display()
    with display.ticking(f"measuring torch and ONNX Runtime for {entry.name} once on this CPU "
                         "(cached; `mattekit doctor --measure` measures again)"):
        row = _timed_engines(entry, weights_path)
    row["cost_s"] = round(time.perf_counter() - start, 2)
    exported = row["export_kept"] and winner(row) == "onnx"  # the export its ONNX engine runs from now on
    anyway = row["load_s"] + (row["export_s"] if exported else 0.0)  # what its first load takes without measuring
    display.note(f"measured {entry.name}'s engines in {row['cost_s'] - anyway:.1f} s ({winner(row)}, "
                 f"{row['ratio']:.2f}x), beyond the {anyway:.1f} s of loading{' and exporting' if exported else ''}"
                 " it that its first use takes anyway.")
    save({entry.name: row})
    return row


def _timed_engines(entry, weights_path: str | None) -> dict:
    """The measurement row of :func:`measure_engines` (without its cost)."""
    import time

    from .. import engines
    from ..machine import cpu_info

    h, w = entry.input.net_size(768, 1024)
    scale = min(1.0, (MEASURE_PIXELS / (h * w)) ** 0.5)  # shrunk: sides of multiples of 32, which these nets take
    size = (h, w) if scale == 1.0 else tuple(max(32, int(v * scale) // 32 * 32) for v in (h, w))
    begin = time.perf_counter()
    path = weights_file(entry, weights_path)
    net, made = load_net(entry, path), export_recipe(entry, path)
    load_s = time.perf_counter() - begin
    own = engines.onnx_export_path(**made)  # the export its ONNX engine runs
    if size != (h, w):
        made.update(example=size, dynamic_size=True)
    begin = time.perf_counter()
    onnx = engines.onnx_engine(lambda: net, label=entry.name, **made)  # its export made once, kept for later runs
    if not own.is_file():  # a fixed-size net larger than the measurement's input: its fixed export, made from this one
        fixed_dims(onnx.path, own, (h, w))
    export_s = time.perf_counter() - begin
    torch_engine = engines.build_torch(net, "cpu", "fp32", made["index"])
    x = np.random.default_rng(0).random((1, 3) + size, dtype=np.float32) * 2 - 1
    previous = threads.count()
    threads.set_count(1)
    seconds = {"torch": [], "onnx": []}
    try:
        import torch

        torch_engine(torch.from_numpy(x[:, :, :64, :64].copy()))  # its one-time costs, on a small input
        calls = {"torch": lambda: torch_engine(torch.from_numpy(x)), "onnx": lambda: onnx(x)}

        def timed(name: str) -> float:
            begin = time.thread_time()
            calls[name]()
            seconds[name].append(time.thread_time() - begin)
            return seconds[name][-1]

        spent = sum(timed(name) for name in ("onnx", "torch", "onnx"))  # ONNX Runtime's first call: its warm-up
        while spent < 0.5 and len(seconds["torch"]) < 4:  # a fast net: more turns, while under half a second
            spent += timed("torch") + timed("onnx")
    finally:
        threads.set_count(previous)
    torch_s, onnx_s = min(seconds["torch"]), min(seconds["onnx"])
    info = cpu_info()
    return {"torch_s": round(torch_s, 5), "onnx_s": round(onnx_s, 5), "ratio": round(torch_s / onnx_s, 3),
            "input": list(size), "load_s": round(load_s, 2), "export_s": round(export_s, 2), "export_kept": own.is_file(), "measured": time.strftime("%Y-%m-%d"),
            "machine": info[0] if info else ""}


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
