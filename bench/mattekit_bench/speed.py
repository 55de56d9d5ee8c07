"""``mattekit bench speed``: images/s, peak memory and per-stage times of mattekit next to rembg,
on the same folder, with the same weights, in one run.

rembg (``pip install 'mattekit[bench]'``) gets an ONNX export of the very weights mattekit uses
(``U2NET_HOME`` pointing at it, ``MODEL_CHECKSUM_DISABLED=1``; it cannot download here) and runs
the loop of ``rembg p -m MODEL IN OUT`` with its defaults: an RGBA PNG cut-out per image. mattekit runs
what ``mattekit remove`` does on a folder (the read -> infer -> write pipeline, default backend,
RGBA PNG cut-outs), without edge refinement unless ``--refine`` (rembg has none: same work, same masks).

Each tool runs in a process of its own (its peak RSS, VmHWM, is its own) that loads its model once and
then takes turns with the other every ``--chunk`` images, in ABBA order: the build machines are 2-core
and shared, and load from elsewhere then falls on both tools alike. The per-turn ratios show the spread.

Figures: images/s over the processing loop (the model already loaded) and end to end (process start,
imports and model load, plus the loop); CPU seconds per image; peak RSS; milliseconds per image of
read (decode + prepare), infer and write (finish + encode) (summed over threads, so parallel stages can add up to
more than the wall time). Masks: the alpha channels of the two tools' outputs compared per image
(mean absolute difference on 0..1, IoU of alpha > 0.5), checked against a stated tolerance; and
mattekit's engine against eager PyTorch on the first images.

``--synthetic N`` instead sends N generated frames (a moving subject over a textured background,
``--size``) through the mattekit pipeline, writing masks, and prints the RSS at the start, while it runs
and at the end: memory must stay flat however long the sequence.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .speed_setup import _Child, _images, _rembg_home, _weights, machine_line
from .speed_synthetic import synthetic
from .speed_report import agreement, print_comparison


def add_parser(kinds) -> None:
    p = kinds.add_parser(
        "speed",
        help="images/s and peak memory of mattekit next to rembg on the same images",
        description="Throughput, peak memory and per-stage times of mattekit and rembg on one folder.",
    )
    p.add_argument("--data", help="folder of images (default, where $MATTEKIT_TEST_DATA is set: its data/grabcut50/im)")
    p.add_argument(
        "--model",
        default="u2net",
        help="segmentation model (default u2net; rembg knows u2net, u2netp, u2net-human-seg, isnet-general-use)",
    )
    weights = p.add_mutually_exclusive_group()
    weights.add_argument("--weights", help="weights file (default: the catalog's download)")
    weights.add_argument(
        "--stand-in",
        action="store_true",
        help="deterministic stand-in weights made here: the real "
        "architecture with seeded random values (for speed only: the masks mean nothing)",
    )
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps (mattekit's side)")
    p.add_argument("--backend", default="auto", help="mattekit backend: auto (default), torch or onnx")
    p.add_argument("--precision", default="auto", help="mattekit precision: auto (default), fp32, fp16 or bf16")
    p.add_argument("--workers", type=int, help="mattekit inference workers (default: see mattekit.running.layout.plan)")
    p.add_argument("--threads", type=int, help="mattekit torch/ONNX Runtime threads per worker (default: see plan)")
    p.add_argument("--batch", type=int, help="mattekit batch size (default: 1 on CPU, 8 on CUDA)")
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--repeat", type=int, default=1, help="passes over the folder (default 1)")
    p.add_argument(
        "--chunk",
        type=int,
        default=10,
        help="the tools take turns every this many images (default 10; "
        "keep it a multiple of mattekit's workers, or one of them idles at the end of every turn)",
    )
    p.add_argument("--no-rembg", action="store_true", help="run mattekit only")
    p.add_argument(
        "--no-check",
        action="store_true",
        help="skip the check of mattekit's engine against eager PyTorch "
        "after the measurement (it runs the first images again: minutes for a large net on a small CPU)",
    )
    p.add_argument(
        "--refine",
        action="store_true",
        help="also refine mattekit's masks along image edges (rembg does "
        "not, so it is off by default: both tools then do the same work)",
    )
    _whole_options(p)
    p.add_argument("--synthetic", type=int, metavar="N", help="flat-memory check: N synthetic frames through mattekit")
    p.add_argument("--size", default="320x240", help="synthetic frame size WxH (default 320x240)")
    p.add_argument("--keep", help="keep the outputs (and synthetic frames) in this folder")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.set_defaults(func=run)


def _whole_options(p) -> None:
    """The options of ``--whole`` (whole commands, each in a fresh process) and of the simulated device."""
    p.add_argument(
        "--whole",
        action="store_true",
        help="time whole commands instead, each in a fresh process: "
        "`mattekit remove` with its defaults, with --no-refine --no-matting, and rembg's `rembg p` loop, "
        "in turns (--repeat rounds, after one first use of each, timed apart); images/s and peak RSS of each, "
        "and their ratios",
    )
    p.add_argument(
        "--photo",
        metavar="WxH",
        help="with --whole: one photo of this size (the folder's first image "
        "resized, e.g. 8660x5774 for 50 MP) instead of the folder",
    )
    p.add_argument(
        "--sequence",
        metavar="FOLDER",
        help="with --whole: a folder of frames (e.g. a DAVIS shot): "
        "`mattekit roto` (temporal consistency on) next to `mattekit remove --result alpha` and rembg's "
        "`rembg p -om` on the same frames, all writing mattes",
    )
    p.add_argument(
        "--frames",
        type=int,
        metavar="N",
        help="with --sequence: the shot played forwards, backwards, "
        "forwards... to N frames (a long shot whose motion stays continuous, so start-up weighs in the "
        "ratios what it weighs on a real shot of that length)",
    )
    p.add_argument(
        "--rembg-python",
        help="with --whole: a Python interpreter that has rembg and onnxruntime "
        "(e.g. a separate venv); default: this one",
    )
    p.add_argument(
        "--simulate-device",
        type=float,
        metavar="MS",
        help="mattekit on a simulated GPU holding the device "
        "MS milliseconds per image (0: a device that is never the bottleneck), planned as a GPU is: shows "
        "whether the host side keeps a GPU busy (device busy %% = time held / wall); implies --no-rembg and "
        "--no-check (mattekit_bench.simulated)",
    )


# ----------------------------------------------------------------------------------- parent


def run(args) -> int:
    from mattekit.errors import MattekitError

    if args.repeat < 1 or args.chunk < 1:
        raise MattekitError("--repeat and --chunk must be at least 1.")
    if args.frames is not None and not (args.whole and args.sequence):
        raise MattekitError("--frames lengthens a shot: give it with --whole --sequence FOLDER.")
    if args.frames is not None and args.frames < 1:
        raise MattekitError("--frames must be at least 1.")
    if args.whole and args.sequence:
        args.data = args.sequence
    if args.simulate_device is not None:  # mattekit's processes get the simulated GPU (mattekit_bench.simulated)
        if not 0 <= args.simulate_device < float("inf"):
            raise MattekitError("--simulate-device takes milliseconds per image, 0 or more.")
        args.no_rembg = args.no_check = True
    return _measured(args)


def _measured(args) -> int:
    """The bench of checked ``args``: its figures printed (and saved with --json)."""
    if not args.synthetic:
        _images(args)  # no folder of images: refused before a model is built or a folder made
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mattekit-bench-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        weights = _weights(args, work)
        asked = ("model", "device", "backend", "precision", "workers", "threads", "batch", "refine")
        cfg = {key: getattr(args, key) for key in asked} | {"weights": weights, "simulate": args.simulate_device}
        if args.whole:
            from .speed_whole import _whole

            figures = _whole(args, cfg, work)
        else:
            figures = synthetic(args, cfg, work) if args.synthetic else _compare(args, cfg, work)
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str), encoding="utf-8")
    return 0 if figures.get("ok", True) else 1


def _compare(args, cfg: dict, work: Path) -> dict:
    files = [str(f) for f in _images(args)]
    tools = ["mattekit"] if args.no_rembg else ["rembg", "mattekit"]
    env = {"mattekit": None}
    if "rembg" in tools:
        session, home = _rembg_home(args, cfg, work)
        env["rembg"] = dict(os.environ, U2NET_HOME=str(home), MODEL_CHECKSUM_DISABLED="1")
        env["rembg"].pop("REMBG_HOME", None)
        cfg = dict(cfg, session=session)
    load = [os.getloadavg()[0]] if hasattr(os, "getloadavg") else []
    children: dict[str, _Child] = {}
    chunks = [files[i : i + args.chunk] for i in range(0, len(files), args.chunk)]
    try:
        for tool in tools:  # one after the other, so start-up times do not overlap
            out = work / f"{tool}-out"
            out.mkdir(exist_ok=True)
            children[tool] = _Child(
                tool,
                dict(cfg, out=str(out), check=tool == "mattekit" and not args.no_check, check_files=files[:3]),
                work,
                env[tool],
            )
        totals = _turns(children, chunks, args.repeat)
        final = {t: children[t].finish() for t in tools}
    finally:
        for child in children.values():
            child.close()
    if hasattr(os, "getloadavg"):
        load.append(os.getloadavg()[0])
    summary = {t: _summary(final[t], totals[t], children[t].ready["startup_s"], args.repeat, len(files)) for t in tools}
    masks = agreement([Path(f) for f in files], work) if "rembg" in tools else None
    figures = {
        "images": len(files),
        "folder": str(Path(files[0]).parent),
        "model": args.model,
        "weights": cfg["weights"],
        "machine": machine_line(args),
        "load_average": load,
        "repeat": args.repeat,
        "chunk": args.chunk,
        "summary": summary,
        "masks": masks,
    }
    figures["ok"] = print_comparison(figures)
    return figures


def _turns(children: dict, chunks: list[list[str]], repeat: int) -> dict:
    """Each tool's child (``children``: {tool: _Child}, in order) run on every chunk of files, ``repeat`` passes, the
    tools taking turns ABBA so that drift in load cancels out; {tool: summed images, loop and CPU seconds, and each
    chunk's loop seconds}."""
    tools = list(children)
    totals = {t: {"images": 0, "loop_s": 0.0, "cpu_s": 0.0, "chunks": []} for t in tools}
    turn = 0
    for _ in range(repeat):
        for chunk in chunks:
            for tool in tools if turn % 2 == 0 else tools[::-1]:  # ABBA: drift in load cancels out
                got = children[tool].run(chunk)
                for key in ("images", "loop_s", "cpu_s"):
                    totals[tool][key] += got[key]
                totals[tool]["chunks"].append(got["loop_s"])
            turn += 1
    return totals


def _summary(final: dict, totals: dict, startup_s: float, repeat: int, images: int) -> dict:
    """One tool's figures: its child's last word (``final``) with the summed ``totals``, its start-up, images a
    second in the loop and end to end (start-up plus one pass over the ``images`` files), each chunk's seconds."""
    r = dict(final, **{k: totals[k] for k in ("images", "loop_s", "cpu_s")})
    r["startup_s"] = startup_s
    r["images_per_s"] = r["images"] / r["loop_s"]
    r["end_to_end_s"] = r["startup_s"] + r["loop_s"] / repeat
    r["end_to_end_per_s"] = images / r["end_to_end_s"]
    r["chunk_s"] = totals["chunks"]
    return r
