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

    from .. import catalog
    from ..engines import plan, tables
    from ..engines.policy import onnx_available
    from ..errors import MattekitError
    from ..machine import cpu_info
    from ..engines.plan import decide
    from ..runtime import Predictor

    if args.repeat < 1:
        raise MattekitError("--repeat must be at least 1.")
    if not onnx_available():
        raise MattekitError("bench engines needs ONNX Runtime: pip install onnxruntime.")
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
        f"ONNX Runtime {_ort_version()}, 1 thread per engine, {args.repeat} calls each; load average {load:.1f}"
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
        engines = {
            b: Predictor(entry, decide(entry, "cpu", b, "fp32", weights_file or None)) for b in ("torch", "onnx")
        }
        x = engines["torch"].prepare(image)
        outputs = {b: [p.engine(x), p.engine(x)][-1].float() for b, p in engines.items()}  # warm-up; raw outputs
        seconds = {b: [] for b in engines}
        for turn in range(args.repeat):
            for b in ("torch", "onnx") if turn % 2 == 0 else ("onnx", "torch"):
                start = time.process_time()
                engines[b].engine(x)
                seconds[b].append(time.process_time() - start)
        torch_s, onnx_s = statistics.median(seconds["torch"]), statistics.median(seconds["onnx"])
        diff = float((outputs["torch"] - outputs["onnx"]).abs().max())
        rows[name] = {
            "torch_s": round(torch_s, 4),
            "onnx_s": round(onnx_s, 4),
            "ratio": round(torch_s / onnx_s, 3),
            "max_diff": diff,
            "input": list(x.shape[2:]),
            "machine": info[0] if info else "",
            "measured": time.strftime("%Y-%m-%d"),
            "weights": "stand-in" if stand_in else "real",
        }
        faster = plan.winner(rows[name])
        print(
            f"{name:24s} {'x'.join(map(str, x.shape[2:])):>10s} {torch_s:8.3f} {onnx_s:8.3f} "
            f"{torch_s / onnx_s:6.2f}  {faster:7s} {diff:.1e}",
            flush=True,
        )
        del engines, outputs
    work.cleanup()
    print(f"ratio = torch CPU s / ONNX Runtime CPU s per call; `auto` takes torch at {1 / plan.MARGIN:.2f} or less.")
    if args.save:
        print(f"saved for this machine ({plan.fingerprint()}): {tables.save(rows)}")
    return 0


def _both_engine_models(cat):
    """(entry, where) of the segment and matte models whose weights are here and that run on torch and ONNX
    Runtime alike (no net family pinned to one backend, not recurrent)."""
    from ..engines.plan import pinned_backend

    for task in ("segment", "matte"):
        for entry, where in cat.available(task):
            if pinned_backend(entry) is None and not entry.recurrent:
                yield entry, where


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
