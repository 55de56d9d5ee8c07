"""``mattekit bench engines``: which CPU engine runs each model faster here, mattekit's torch engine or ONNX
Runtime (the export of the same net), and by how much; ``--save`` records it for ``auto`` to use
(:func:`mattekit.engines.tables.save`).

Each model's net gets the input a 1024 x 768 photo gives it (its catalog size, or its resize rule), in fp32, one
thread per engine. The two engines take turns call by call (``--repeat`` calls each after two warm-up calls), so
load from elsewhere falls on both alike; the figure is the median CPU seconds per call, and their ratio.
Both engines' raw outputs (before the catalog's activation) are compared (max |difference|): the faster engine
must keep the answer.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from .stand_in import write_stand_in

PHOTO = (768, 1024)  # H x W of the photo whose network input is timed


def add_parser(kinds) -> None:
    p = kinds.add_parser(
        "engines",
        help="torch or ONNX Runtime: which CPU engine runs each model faster here",
        description="Time each model's net in mattekit's torch engine and in ONNX Runtime, turn by "
        "turn, and print the ratio per model for this CPU class.",
    )
    p.add_argument(
        "--model",
        action="append",
        metavar="NAME[=WEIGHTS]",
        help="a catalog model, optionally with its weights file (repeatable; default: every segment and "
        "matte model whose weights are on disk or in a mirror and that runs on both engines)",
    )
    p.add_argument(
        "--stand-in",
        action="store_true",
        help="models given without weights run with deterministic "
        "stand-in weights made here (real architecture, seeded random values: for speed only)",
    )
    p.add_argument("--repeat", type=int, default=5, help="timed calls per engine (default 5)")
    p.add_argument(
        "--save",
        action="store_true",
        help="record the figures for this machine: `auto` then picks the faster engine for these models",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    import os

    import numpy as np
    import torch

    from mattekit import catalog
    from mattekit.engines import plan, tables
    from mattekit.engines.policy import onnx_available
    from mattekit.errors import MattekitError
    from mattekit.machine import cpu_info

    if args.repeat < 1:
        raise MattekitError("--repeat must be at least 1.")
    if not onnx_available():
        raise MattekitError("bench engines needs ONNX Runtime: pip install onnxruntime.")
    import onnxruntime

    cat = catalog.load()
    chosen = (
        [m.partition("=") for m in args.model]
        if args.model
        else [(entry.name, "", "") for entry, _ in _both_engine_models(cat)]
    )
    torch.set_num_threads(1)
    cpu = plan.cpu_class()
    info = cpu_info()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"bench engines: CPU class {cpu} ({info[0] if info else 'unknown CPU'}), torch {torch.__version__}, "
        f"ONNX Runtime {onnxruntime.__version__}, 1 thread per engine, {args.repeat} calls each; load average {load:.1f}"
    )
    print(f"{'model':24s} {'input':>10s} {'torch s':>8s} {'onnx s':>8s} {'ratio':>6s}  {'faster':7s} max|diff|")
    image = np.random.default_rng(0).random(PHOTO + (3,), dtype=np.float32)
    rows = {}
    work = tempfile.TemporaryDirectory(prefix="mattekit-bench-engines-")  # stand-in weights files
    for name, _, weights_file in chosen:
        entry = cat.get(name)
        stand_in = not weights_file and args.stand_in
        if stand_in:
            weights_file = str(write_stand_in(entry, Path(work.name)))
        kept = {"machine": info[0] if info else "", "weights": "stand-in" if stand_in else "real"}
        rows[name] = _measured(name, entry, weights_file or None, image, args.repeat, kept)
    work.cleanup()
    print(f"ratio = torch CPU s / ONNX Runtime CPU s per call; `auto` takes torch at {1 / plan.MARGIN:.2f} or less.")
    if args.save:
        print(f"saved for this machine ({plan.fingerprint()}): {tables.save(rows)}")
    return 0


def _measured(name: str, entry, weights_file: str | None, image, repeat: int, kept: dict) -> dict:
    """The row of model ``name`` (catalog ``entry``), printed: the median CPU seconds per call of torch and ONNX Runtime (``repeat`` calls each,
    alternating, after two warm-up calls) on ``image`` (H x W x 3 float32 [0,1]), their ratio, the raw outputs'
    largest difference, the input's h x w, the day and ``kept`` (the machine, the weights' kind); both engines let
    go on return."""
    from mattekit.engines import plan
    from mattekit.engines.plan import decide
    from mattekit.predictor import Predictor

    engines = {
        b: Predictor(entry, decide(entry, "cpu", b, "fp32", weights_file, loading=True)) for b in ("torch", "onnx")
    }
    x = engines["torch"].prepare(image)
    outputs = {b: [p.engine(x), p.engine(x)][-1].float() for b, p in engines.items()}  # warm-up; raw outputs
    seconds = {b: [] for b in engines}
    for turn in range(repeat):
        for b in ("torch", "onnx") if turn % 2 == 0 else ("onnx", "torch"):
            start = time.process_time()
            engines[b].engine(x)
            seconds[b].append(time.process_time() - start)
    torch_s, onnx_s = statistics.median(seconds["torch"]), statistics.median(seconds["onnx"])
    diff = float((outputs["torch"] - outputs["onnx"]).abs().max())
    row = {
        "torch_s": round(torch_s, 4),
        "onnx_s": round(onnx_s, 4),
        "ratio": round(torch_s / onnx_s, 3),
        "max_diff": diff,
        "input": list(x.shape[2:]),
        "machine": kept["machine"],
        "measured": time.strftime("%Y-%m-%d"),
        "weights": kept["weights"],
    }
    faster = plan.winner(row)
    print(
        f"{name:24s} {'x'.join(map(str, x.shape[2:])):>10s} {torch_s:8.3f} {onnx_s:8.3f} "
        f"{torch_s / onnx_s:6.2f}  {faster:7s} {diff:.1e}",
        flush=True,
    )
    return row


def _both_engine_models(cat):
    """(entry, where) of the segment and matte models whose weights are here and that run on torch and ONNX
    Runtime alike (no net family pinned to one backend, not recurrent)."""
    from mattekit.engines.plan import pinned_backend

    for task in ("segment", "matte"):
        for entry, where in cat.available(task):
            if pinned_backend(entry) is None and not entry.recurrent:
                yield entry, where
