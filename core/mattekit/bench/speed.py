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
decode, preprocess, infer, postprocess and encode (summed over threads, so parallel stages can add up to
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
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .memory import current_rss, peak_rss

REMBG_SESSIONS = {"u2net": "u2net", "u2netp": "u2netp", "u2net-human-seg": "u2net_human_seg",
                  "isnet-general-use": "isnet-general-use"}
STAND_IN = {"u2net:U2NET": "u2net", "u2net:U2NETP": "u2netp", "isnet:ISNetDIS": "isnetdis"}  # conformance folders
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
STAGES = ("decode", "preprocess", "infer", "postprocess", "encode")
TOLERANCE = {"mad": 0.02, "iou": 0.90}  # means over the images; see _tolerance_note


def add_parser(kinds) -> None:
    p = kinds.add_parser("speed", help="images/s and peak memory of mattekit next to rembg on the same images",
                         description="Throughput, peak memory and per-stage times of mattekit and rembg on one folder.")
    p.add_argument("--data", help="folder of images (default: $MATTEKIT_TEST_DATA/data/grabcut50/im)")
    p.add_argument("--model", default="u2net", help="segmentation model (default u2net; rembg knows u2net, u2netp, "
                   "u2net-human-seg, isnet-general-use)")
    weights = p.add_mutually_exclusive_group()
    weights.add_argument("--weights", help="weights file (default: the catalog's download)")
    weights.add_argument("--stand-in", action="store_true", help="deterministic stand-in weights from the conformance "
                         "manifest in $MATTEKIT_TEST_DATA (real architecture, random values: for speed only)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps (mattekit's side)")
    p.add_argument("--backend", default="auto", help="mattekit backend: auto (default), torch or onnx")
    p.add_argument("--precision", default="auto", help="mattekit precision: auto (default), fp32, fp16 or bf16")
    p.add_argument("--workers", type=int, help="mattekit inference workers (default: see mattekit.pipeline.plan)")
    p.add_argument("--threads", type=int, help="mattekit torch/ONNX Runtime threads per worker (default: see plan)")
    p.add_argument("--batch", type=int, help="mattekit batch size (default: 1 on CPU, 8 on CUDA)")
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--repeat", type=int, default=1, help="passes over the folder (default 1)")
    p.add_argument("--chunk", type=int, default=10, help="the tools take turns every this many images (default 10; "
                   "keep it a multiple of mattekit's workers, or one of them idles at the end of every turn)")
    p.add_argument("--no-rembg", action="store_true", help="run mattekit only")
    p.add_argument("--refine", action="store_true", help="also refine mattekit's masks along image edges (rembg does "
                   "not, so it is off by default: both tools then do the same work)")
    p.add_argument("--whole", action="store_true", help="time whole commands instead, each in a fresh process: "
                   "`mattekit remove` with its defaults, with --no-refine --no-matting, and rembg's `rembg p` loop, "
                   "in turns (--repeat rounds); images/s and peak RSS of each, and their ratios")
    p.add_argument("--photo", metavar="WxH", help="with --whole: one photo of this size (the folder's first image "
                   "resized, e.g. 8660x5774 for 50 MP) instead of the folder")
    p.add_argument("--sequence", metavar="FOLDER", help="with --whole: a folder of frames (e.g. a DAVIS shot): "
                   "`mattekit roto` (temporal consistency on) next to `mattekit remove --result alpha` and rembg's "
                   "`rembg p -om` on the same frames, all writing mattes")
    p.add_argument("--rembg-python", help="with --whole: a Python interpreter that has rembg and onnxruntime "
                   "(e.g. a separate venv); default: this one")
    p.add_argument("--synthetic", type=int, metavar="N", help="flat-memory check: N synthetic frames through mattekit")
    p.add_argument("--size", default="320x240", help="synthetic frame size WxH (default 320x240)")
    p.add_argument("--keep", help="keep the outputs (and synthetic frames) in this folder")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.set_defaults(func=run)


# ----------------------------------------------------------------------------------- parent

def run(args) -> int:
    from ..errors import MattekitError

    if args.repeat < 1 or args.chunk < 1:
        raise MattekitError("--repeat and --chunk must be at least 1.")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mattekit-bench-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        weights = _weights(args, work)
        cfg = {"model": args.model, "weights": weights, "device": args.device, "backend": args.backend,
               "precision": args.precision, "workers": args.workers, "threads": args.threads, "batch": args.batch,
               "refine": args.refine}
        if args.whole:
            figures = _whole(args, cfg, work)
        else:
            figures = _synthetic(args, cfg, work) if args.synthetic else _compare(args, cfg, work)
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str), encoding="utf-8")
    return 0 if figures.get("ok", True) else 1


def _weights(args, work: Path) -> str | None:
    """The weights file both tools use: --weights, generated stand-in weights, or the catalog's (fetched)."""
    from .. import catalog, fsutil, weights
    from ..errors import MattekitError

    entry = catalog.load().get(args.model, "segment")
    if args.weights:
        if not Path(args.weights).is_file():
            raise MattekitError(f"Weights file {args.weights} does not exist.")
        return str(Path(args.weights).resolve())
    if not args.stand_in:
        return str(weights.model_file(entry.name, entry.files))
    folder = STAND_IN.get(entry.net)
    root = os.environ.get("MATTEKIT_TEST_DATA")
    if folder is None or not root or not (Path(root) / "conformance" / folder / "manifest.json").is_file():
        raise MattekitError(f"No stand-in weights for {args.model}: they need $MATTEKIT_TEST_DATA/conformance/{folder or '?'}.")
    target = weights.cache_dir() / "stand-in" / f"{args.model}-stand-in.pth"
    if not target.is_file():
        import importlib.util

        import torch

        from .. import nets

        conformance = Path(root) / "conformance"
        spec = importlib.util.spec_from_file_location("pseudo_weights", conformance / "pseudo_weights.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        manifest = json.loads((conformance / folder / "manifest.json").read_text())
        net = nets.build(entry.net, **entry.kwargs)
        state = module.pseudo_state_dict(manifest["state_dict"], net.state_dict())
        target.parent.mkdir(parents=True, exist_ok=True)
        fsutil.atomic_write(target, lambda tmp: torch.save(state, tmp))
    return str(target)


def _images(args) -> list[Path]:
    from ..errors import MattekitError

    root = os.environ.get("MATTEKIT_TEST_DATA")
    folder = Path(args.data) if args.data else (Path(root) / "data" / "grabcut50" / "im" if root else None)
    if folder is None or not folder.is_dir():
        raise MattekitError("Give a folder of images with --data (or set MATTEKIT_TEST_DATA).")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    files = files[: args.limit] if args.limit else files
    if not files:
        raise MattekitError(f"{folder} holds no images.")
    return files


def _rembg_home(args, cfg, work: Path, check_import: bool = True) -> tuple[str, Path]:
    """(rembg session name, a U2NET_HOME holding an ONNX export of the same weights under rembg's file name);
    ``check_import``: rembg must be importable here (else it runs in another interpreter)."""
    import torch

    from .. import catalog, nets, weights
    from ..engines.onnx import export_onnx, onnx_path
    from ..errors import MattekitError

    session = REMBG_SESSIONS.get(args.model)
    if session is None:
        raise MattekitError(f"rembg has no session for model {args.model}; use --no-rembg or one of {', '.join(REMBG_SESSIONS)}.")
    if check_import:
        try:
            import rembg  # noqa: F401
        except ImportError:
            raise MattekitError("rembg is not installed: pip install 'mattekit[bench]' (or use --no-rembg).") from None
    entry = catalog.load().get(args.model, "segment")
    if str(cfg["weights"]).lower().endswith(".onnx"):  # rembg's own release of the weights: used as it is
        path = Path(cfg["weights"])
    else:
        net = nets.build(entry.net, **entry.kwargs).eval()
        net.load_state_dict(weights.load_state_dict_file(cfg["weights"]), strict=True)
        size = entry.input.size or (320, 320)
        recipe = {"net": entry.net, "kwargs": entry.kwargs, "size": list(size), "for": "rembg"}
        path = onnx_path(net, entry.output.index, cfg["weights"], recipe)
    if not path.is_file():
        print(f"bench speed: exporting {args.model} to ONNX for rembg (once, cached)...", file=sys.stderr)
        with torch.no_grad():
            export_onnx(net, path, entry.output.index, tuple(size), dynamic_size=False)
    home = work / "u2net_home"
    home.mkdir(exist_ok=True)
    link = home / f"{session}.onnx"
    link.unlink(missing_ok=True)
    try:
        link.symlink_to(path)
    except OSError:
        import shutil

        shutil.copyfile(path, link)
    return session, home


class _Child:
    """One tool in a process of its own, driven chunk by chunk through a pipe: the two tools take turns
    every few images, so a noisy machine's load falls on both alike."""

    def __init__(self, kind: str, cfg: dict, work: Path, env: dict | None = None):
        self.kind = kind
        cfg_path = work / f"{kind}-config.json"
        cfg_path.write_text(json.dumps(cfg), encoding="utf-8")
        self.log = work / f"{kind}-stderr.txt"
        start = time.perf_counter()
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "mattekit.bench.speed", "--child", kind, str(cfg_path)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        self.ready = self._reply()
        self.ready["startup_s"] = time.perf_counter() - start  # process start, imports, model load

    def _reply(self) -> dict:
        from ..errors import MattekitError

        for line in self.proc.stdout:
            if line.startswith("@@"):
                return json.loads(line[2:])
        self.proc.wait()
        lines = self.log.read_text(errors="replace").strip().splitlines() if self.log.is_file() else []
        raise MattekitError(f"The {self.kind} run failed: {(lines or ['no output'])[-1][:300]}")

    def _send(self, message: dict) -> dict:
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def run(self, files: list[str]) -> dict:
        return self._send({"files": files})

    def finish(self) -> dict:
        result = self._send({"end": True})
        self.proc.wait()
        return result

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


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
    totals = {t: {"images": 0, "loop_s": 0.0, "cpu_s": 0.0, "chunks": []} for t in tools}
    try:
        for tool in tools:  # one after the other, so start-up times do not overlap
            out = work / f"{tool}-out"
            out.mkdir(exist_ok=True)
            children[tool] = _Child(tool, dict(cfg, out=str(out), check=tool == "mattekit", check_files=files[:3]),
                                    work, env[tool])
        turn = 0
        for _ in range(args.repeat):
            for chunk in chunks:
                for tool in (tools if turn % 2 == 0 else tools[::-1]):  # ABBA: drift in load cancels out
                    got = children[tool].run(chunk)
                    for key in ("images", "loop_s", "cpu_s"):
                        totals[tool][key] += got[key]
                    totals[tool]["chunks"].append(got["loop_s"])
                turn += 1
        final = {t: children[t].finish() for t in tools}
    finally:
        for child in children.values():
            child.close()
    if hasattr(os, "getloadavg"):
        load.append(os.getloadavg()[0])
    summary = {}
    for t in tools:
        r = dict(final[t], **{k: totals[t][k] for k in ("images", "loop_s", "cpu_s")})
        r["startup_s"] = children[t].ready["startup_s"]
        r["images_per_s"] = r["images"] / r["loop_s"]
        r["end_to_end_s"] = r["startup_s"] + r["loop_s"] / args.repeat
        r["end_to_end_per_s"] = len(files) / r["end_to_end_s"]
        r["chunk_s"] = totals[t]["chunks"]
        summary[t] = r
    masks = _agreement([Path(f) for f in files], work) if "rembg" in tools else None
    figures = {"images": len(files), "folder": str(Path(files[0]).parent), "model": args.model, "weights": cfg["weights"],
               "machine": _machine(), "load_average": load, "repeat": args.repeat, "chunk": args.chunk,
               "summary": summary, "masks": masks}
    figures["ok"] = _print_comparison(figures, args)
    return figures


# ----------------------------------------------------------------------------------- whole commands

REMBG_LOOP = """
import sys
from pathlib import Path
from rembg import new_session, remove
session, only_mask = new_session(sys.argv[1]), sys.argv[2] == "-om"
out = Path(sys.argv[3])
for name in sys.argv[4:]:  # what `rembg p -m MODEL [-om] IN OUT` does per file, with its defaults
    path = Path(name)
    (out / path.name).with_suffix(".png").write_bytes(remove(path.read_bytes(), session=session, only_mask=only_mask))
"""


def _timed_process(argv: list[str], env: dict | None) -> dict:
    """Run ``argv`` to its end: {"seconds": wall, "peak_mb": its peak RSS, "cpu_s": user + system}."""
    from ..errors import MattekitError

    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise MattekitError(f"{Path(argv[0]).name} {' '.join(argv[1:4])}... failed: "
                            f"{(err.strip().splitlines() or ['no output'])[-1][:300]}")
    return {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime}


def _photo_folder(args, work: Path) -> list[Path]:
    """--photo WxH: the folder's first image resized to W x H (cubic), one JPEG (quality 92) in ``work``."""
    import cv2

    from ..errors import MattekitError

    try:
        w, h = (int(v) for v in args.photo.lower().split("x"))
    except ValueError:
        raise MattekitError(f"--photo {args.photo} is not WxH (e.g. 8660x5774).") from None
    folder = work / "photo"
    folder.mkdir(exist_ok=True)
    target = folder / f"photo_{w}x{h}.jpg"
    if not target.is_file():
        image = cv2.imread(str(_images(args)[0]), cv2.IMREAD_COLOR)
        cv2.imwrite(str(target), cv2.resize(image, (w, h), interpolation=cv2.INTER_CUBIC), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return [target]


def _whole(args, cfg: dict, work: Path) -> dict:
    """Whole commands in fresh processes (start-up, imports, model load, every image, exit), in turns."""
    if args.sequence:
        args.data = args.sequence
    files = _photo_folder(args, work) if args.photo else _images(args)
    names = [str(f) for f in files]
    model = ["--model", args.model] + (["--weights", cfg["weights"]] if args.weights or args.stand_in else [])
    model += ["--device", args.device] if args.device != "auto" else []
    remove = [sys.executable, "-m", "mattekit", "remove", "-q"] + model
    if args.sequence:  # mattes of the same frames: roto (frames, in a folder of their own) vs per-image tools
        plate = work / "plate"
        plate.mkdir(exist_ok=True)
        for i, f in enumerate(files):
            link = plate / f"frame.{i:05d}{f.suffix.lower()}"
            if not link.exists():
                link.symlink_to(Path(f).resolve())
        names = [str(plate / f"frame.{i:05d}{f.suffix.lower()}") for i, f in enumerate(files)]
        runs = {"mattekit roto": [sys.executable, "-m", "mattekit", "roto", str(plate / f"frame.#####{files[0].suffix.lower()}")]
                + model + ["--overwrite"],
                "mattekit remove --result alpha": remove + ["--result", "alpha"]}
    else:
        runs = {"mattekit remove": remove, "mattekit remove --no-refine --no-matting": remove + ["--no-refine", "--no-matting"]}
    # Every tool with its own thread defaults: OMP_NUM_THREADS set would cap torch, and rembg hands it to
    # ONNX Runtime (set to 1, rembg took 70 s instead of 39 s on 50 photos on 2 cores).
    defaults = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env = {name: defaults for name in runs}
    if not args.no_rembg:
        session, home = _rembg_home(args, cfg, work, check_import=args.rembg_python is None)
        runs["rembg p"] = [args.rembg_python or sys.executable, "-c", REMBG_LOOP, session, "-om" if args.sequence else "-"]
        env["rembg p"] = dict(defaults, U2NET_HOME=str(home), MODEL_CHECKSUM_DISABLED="1")
    load = [os.getloadavg()[0]]
    results: dict[str, list[dict]] = {name: [] for name in runs}
    order = list(runs)
    for turn in range(args.repeat):
        for name in (order if turn % 2 == 0 else order[::-1]):  # ABBA: drift in load falls on all alike
            out = work / f"out-{order.index(name)}-{turn}"
            out.mkdir(exist_ok=True)
            if name == "rembg p":
                argv = runs[name] + [str(out)] + names
            elif name == "mattekit roto":
                argv = runs[name] + ["-o", str(out / "matte.#####.png")]
            else:
                argv = runs[name] + ["-o", str(out)] + names
            results[name].append(_timed_process(argv, env[name]))
    load.append(os.getloadavg()[0])
    summary = {}
    for name, got in results.items():
        seconds = sum(r["seconds"] for r in got)
        summary[name] = {"images_per_s": len(files) * len(got) / seconds, "seconds": seconds / len(got),
                         "cpu_s": sum(r["cpu_s"] for r in got) / len(got), "peak_mb": max(r["peak_mb"] for r in got),
                         "runs": got}
    what = f"one {args.photo} photo" if args.photo else f"{len(files)} {'frames' if args.sequence else 'images'} from {files[0].parent}"
    print(f"bench speed --whole: {what}, model {args.model}; {args.repeat} round(s) in turns; "
          f"load average {load[0]:.1f} -> {load[1]:.1f}")
    print(f"{'command':44s}{'seconds':>9s}{'images/s':>10s}{'CPU s':>8s}{'peak RSS MB':>13s}")
    for name, r in summary.items():
        print(f"{name:44s}{r['seconds']:9.2f}{r['images_per_s']:10.3f}{r['cpu_s']:8.2f}{r['peak_mb']:13.0f}")
    if args.sequence:
        r, m = summary["mattekit roto"], summary["mattekit remove --result alpha"]
        print(f"mattekit roto / mattekit remove --result alpha: {r['seconds'] / m['seconds']:.2f}x the time, "
              f"{r['peak_mb'] / m['peak_mb']:.2f}x the peak RSS")
    if "rembg p" in summary:
        rb = summary["rembg p"]
        for name in order[:-1]:
            r = summary[name]
            print(f"{name} / rembg p: {r['images_per_s'] / rb['images_per_s']:.2f}x images/s, "
                  f"{r['seconds'] / rb['seconds']:.2f}x the time, {r['cpu_s'] / rb['cpu_s']:.2f}x the CPU time, "
                  f"{r['peak_mb'] / rb['peak_mb']:.2f}x the peak RSS")
    return {"images": len(files), "photo": args.photo, "model": args.model, "load_average": load, "summary": summary}


def _alpha(path: Path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGBA"), np.float32)[..., 3] / 255.0


def _agreement(files: list[Path], work: Path) -> dict:
    """Per image mean |alpha_mattekit - alpha_rembg| and IoU of alpha > 0.5."""
    import numpy as np

    mads, ious = [], []
    for f in files:
        a, b = work / "mattekit-out" / f"{f.stem}.png", work / "rembg-out" / f"{f.stem}.png"
        if not (a.is_file() and b.is_file()):
            continue
        ma, mb = _alpha(a), _alpha(b)
        if ma.shape != mb.shape:
            continue
        mads.append(float(np.abs(ma - mb).mean()))
        union = np.logical_or(ma > 0.5, mb > 0.5).sum()
        ious.append(float(np.logical_and(ma > 0.5, mb > 0.5).sum() / union) if union else 1.0)
    if not mads:
        return {"compared": 0}
    return {"compared": len(mads), "mad_mean": float(np.mean(mads)), "mad_max": float(np.max(mads)),
            "iou_mean": float(np.mean(ious)), "iou_min": float(np.min(ious)),
            "ok": bool(np.mean(mads) <= TOLERANCE["mad"] and np.mean(ious) >= TOLERANCE["iou"])}


def _machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    from ..pipeline import cpu_count

    return {"cpu": cpu, "cores": cpu_count(), "python": platform.python_version(), "system": platform.system(),
            "torch": torch.__version__}


def _tolerance_note() -> str:
    return (f"tolerance: mean MAD <= {TOLERANCE['mad']} and mean IoU >= {TOLERANCE['iou']}; mattekit's network output "
            "matches eager PyTorch (above), the tools differ in resampling: rembg resizes with Lanczos on 8-bit values, "
            "mattekit with area/bilinear on floats; stand-in weights give soft masks, where IoU at 0.5 is touchiest")


def _print_comparison(f: dict, args) -> bool:
    s = f["summary"]
    m = f["machine"]
    load = " -> ".join(f"{x:.1f}" for x in f["load_average"])
    print(f"bench speed: {f['images']} images from {f['folder']}, model {f['model']} ({Path(f['weights']).name})")
    print(f"machine: {m['cpu']}, {m['cores']} CPUs, Python {m['python']}, torch {m.get('torch', '?')}; "
          f"load average {load}")
    print(f"the tools take turns every {f['chunk']} images (ABBA), {f['repeat']} pass(es) over the folder")
    print(f"{'':30s}{'images/s':>9s}{'loop s':>9s}{'start s':>9s}{'e2e img/s':>10s}{'CPU s/img':>10s}{'peak RSS MB':>12s}")
    for tool, r in s.items():
        print(f"{tool:30s}{r['images_per_s']:9.3f}{r['loop_s']:9.2f}{r['startup_s']:9.2f}"
              f"{r['end_to_end_per_s']:10.3f}{r['cpu_s'] / r['images']:10.3f}{r['maxrss_mb']:12.0f}")
    for tool, r in s.items():
        what = f"rembg {r.get('version', '')}, onnxruntime {r.get('onnxruntime', '')}, `rembg p` defaults" \
            if tool == "rembg" else f"{r.get('engine', '?')}, {r.get('plan', '')}, {r.get('device_name', '')}"
        print(f"  {tool}: {what}")
    ok = True
    if "rembg" in s:
        mk, rb = s["mattekit"], s["rembg"]
        pairs = [b / a for a, b in zip(mk["chunk_s"], rb["chunk_s"]) if a > 0]
        print(f"mattekit / rembg: {mk['images_per_s'] / rb['images_per_s']:.2f}x images/s "
              f"(per turn: median {statistics.median(pairs):.2f}x, {min(pairs):.2f}x to {max(pairs):.2f}x), "
              f"{mk['end_to_end_per_s'] / rb['end_to_end_per_s']:.2f}x end to end, "
              f"{(rb['cpu_s'] / rb['images']) / (mk['cpu_s'] / mk['images']):.2f}x less CPU time per image, "
              f"peak RSS {mk['maxrss_mb'] / rb['maxrss_mb']:.2f}x")
    print("per-stage ms/image (summed over threads): " + "".join(f"{k:>12s}" for k in STAGES))
    for tool, r in s.items():
        print(f"  {tool:39s}" + "".join(f"{r['stages_ms'].get(k, 0.0):12.1f}" for k in STAGES))
    check = s.get("mattekit", {}).get("check")
    if check:
        print(f"mattekit engine vs eager PyTorch (raw prediction, first {check['images']} images): "
              f"max abs diff {check['max_abs']:.2e}")
    masks = f.get("masks")
    if masks and masks.get("compared"):
        print(f"masks vs rembg ({masks['compared']} images): mean |diff| {masks['mad_mean']:.4f} "
              f"(worst image {masks['mad_max']:.4f}), IoU@0.5 mean {masks['iou_mean']:.4f} (worst {masks['iou_min']:.4f}) "
              f"-> {'within' if masks['ok'] else 'OUTSIDE'} tolerance")
        print("  " + _tolerance_note())
        ok = masks["ok"]
    return ok


def _synthetic(args, cfg: dict, work: Path) -> dict:
    from ..errors import MattekitError

    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise MattekitError(f"--size {args.size} is not WxH (e.g. 320x240).") from None
    frames = work / "frames"
    print(f"bench speed: writing {args.synthetic} synthetic {w}x{h} frames to {frames}...", file=sys.stderr)
    paths = [str(p) for p in _make_frames(frames, args.synthetic, w, h)]
    out = work / "masks"
    out.mkdir(exist_ok=True)
    child = _Child("mattekit", dict(cfg, out=str(out), masks=True, sample=True), work)
    try:
        run = child.run(paths)
        result = dict(child.finish(), **run)
    finally:
        child.close()
    figures = {"frames": args.synthetic, "size": [w, h], "model": args.model, "machine": _machine(), "result": result}
    samples = result["rss_samples"]
    start_mb, end_mb = samples[0][1], samples[-1][1]
    warm = min(100, args.synthetic)
    steady = next((mb for n, mb in samples if n >= warm), start_mb)
    print(f"bench speed --synthetic: {args.synthetic} frames {w}x{h}, model {args.model}, "
          f"{result['engine']} ({result['plan']})")
    print(f"  {result['images'] / result['loop_s']:.2f} frames/s, loop {result['loop_s']:.1f} s, "
          f"{len(result.get('failed', []))} failed")
    print("  RSS MB by frames done: " + ", ".join(f"{n}: {mb:.0f}" for n, mb in samples))
    print(f"  RSS at start {start_mb:.0f} MB (model loaded, before the first frame; after frame {warm}: {steady:.0f} MB), "
          f"at end {end_mb:.0f} MB, peak {result['maxrss_mb']:.0f} MB; change after frame {warm}: {end_mb - steady:+.0f} MB")
    figures["ok"] = end_mb - steady <= max(50.0, 0.1 * steady)
    return figures


def _make_frames(folder: Path, n: int, w: int, h: int) -> list[Path]:
    """N JPEG frames: a textured gradient background and a subject (an ellipse with a head) moving over it."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 40, (h, w, 1), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.dstack([80 + 100 * xx / w, 120 + 60 * yy / h, 160 - 80 * xx / w]).astype(np.uint8) + texture
    paths = []
    for i in range(n):
        frame = base.copy()
        t = i / 50.0
        cx, cy = int(w * (0.5 + 0.3 * np.sin(t))), int(h * (0.55 + 0.1 * np.cos(1.3 * t)))
        cv2.ellipse(frame, (cx, cy), (w // 8, h // 4), 10 * np.sin(t), 0, 360, (40, 60, 200), -1)
        cv2.circle(frame, (cx, cy - h // 3), h // 10, (60, 160, 230), -1)
        path = folder / f"frame_{i:05d}.jpg"
        if not path.is_file():
            cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------------- children

def _cpu_s() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


class _RembgTool:
    """The loop of ``rembg p -m MODEL IN OUT`` (rembg's CLI defaults), instrumented per stage."""

    def __init__(self, cfg: dict):
        t0 = time.perf_counter()
        import inspect
        from importlib.metadata import version

        from rembg import bg, new_session

        try:  # rembg p skips non-images with filetype (its CLI extra); our folder is filtered by suffix already
            import filetype
        except ImportError:
            filetype = None
        t_import = time.perf_counter()
        self.session = new_session(cfg["session"])
        self.ready = {"import_s": t_import - t0, "load_s": time.perf_counter() - t_import}
        self.bg, self.filetype, self.out = bg, filetype, Path(cfg["out"])
        self.versions = {"version": version("rembg"), "onnxruntime": version("onnxruntime")}
        self.spent = dict.fromkeys(("decode", "preprocess", "infer", "predict", "cutout", "total"), 0.0)
        self.images = 0

        def timed(name, fn):
            def wrapper(*a, **k):
                start = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    self.spent[name] += time.perf_counter() - start
            return wrapper

        s = self.session
        s.inner_session.run = timed("infer", s.inner_session.run)
        s.normalize = timed("preprocess", s.normalize)
        s.predict = timed("predict", s.predict)
        bg.fix_image_orientation = timed("decode", bg.fix_image_orientation)  # Image.open is lazy: pixels decode here
        bg.naive_cutout = timed("cutout", bg.naive_cutout)
        bg.apply_background_color = timed("cutout", bg.apply_background_color)
        defaults = dict(alpha_matting=False, alpha_matting_foreground_threshold=240,
                        alpha_matting_background_threshold=10, alpha_matting_erode_size=10, only_mask=False,
                        post_process_mask=False, decontaminate=False, vitmatte=False, bgcolor=(0, 0, 0, 0))
        accepted = inspect.signature(bg.remove).parameters
        self.kwargs = {k: v for k, v in defaults.items() if k in accepted}

    def run(self, files: list[str]) -> dict:
        cpu0, loop0, done = _cpu_s(), time.perf_counter(), 0
        for name in files:
            path = Path(name)
            if self.filetype is not None:
                kind = self.filetype.guess(path)
                if kind is None or "image" not in kind.mime:
                    continue
            start = time.perf_counter()
            result = self.bg.remove(path.read_bytes(), session=self.session, **self.kwargs)
            (self.out / path.name).with_suffix(".png").write_bytes(result)
            self.spent["total"] += time.perf_counter() - start
            done += 1
        self.images += done
        return {"images": done, "loop_s": time.perf_counter() - loop0, "cpu_s": _cpu_s() - cpu0}

    def finish(self) -> dict:
        t, n = self.spent, max(1, self.images)
        stages = {"decode": t["decode"], "preprocess": t["preprocess"], "infer": t["infer"],
                  "postprocess": t["predict"] - t["preprocess"] - t["infer"] + t["cutout"],
                  "encode": t["total"] - t["decode"] - t["predict"] - t["cutout"]}
        return dict(self.versions, maxrss_mb=peak_rss() / 2**20, stages_ms={k: 1000 * v / n for k, v in stages.items()})


class _MattekitTool:
    """What ``mattekit remove`` does on a folder, through mattekit.pipeline, instrumented per stage."""

    def __init__(self, cfg: dict):
        t0 = time.perf_counter()
        import torch

        from .. import catalog, io, pipeline, runtime
        from .. import cutout
        from .. import masks

        t_import = time.perf_counter()
        if cfg.get("threads"):
            torch.set_num_threads(cfg["threads"])  # also what an ONNX Runtime session is made with
        self.cfg, self.torch, self.pipeline = cfg, torch, pipeline
        self.entry = catalog.load().get(cfg["model"], "segment")
        self.predictor = runtime.ModelCache().get(self.entry, "segment", cfg["device"], cfg["weights"],
                                                  backend=cfg["backend"], precision=cfg["precision"])
        self.ready = {"import_s": t_import - t0, "load_s": time.perf_counter() - t_import}
        self.timings = pipeline.Timings()
        self.infer = self.predictor
        timings = self.timings

        def read(path):
            with timings.measure("decode"):
                picture = io.read_image(path)
            with timings.measure("preprocess"):
                x = self.predictor.prepare(picture.pixels)
            return x, picture

        def alpha_of(picture, y):
            with timings.measure("postprocess"):
                return masks.mask_from_prediction(picture.pixels, y, cfg["refine"],
                                                  upsampling=self.predictor.entry.output.upsample)

        self.read = read
        self.settings = pipeline.plan(self.predictor, cfg.get("workers"), cfg.get("threads"), cfg.get("batch"))
        self.samples, self.images, self.failed = [(0, current_rss() / 2**20)], 0, []
        out = Path(cfg["out"])

        def write(path, picture, y):
            alpha = alpha_of(picture, y)
            with self.timings.measure("encode"):
                result = alpha if cfg.get("masks") else cutout.assemble(picture.pixels, alpha, cutout.CutoutOptions(decontaminate=False))
                io.write_image(out / f"{Path(path).stem}.png", result)

        self.write = write

    def run(self, files: list[str]) -> dict:
        import threading

        every, lock = max(1, len(files) // 10), threading.Lock()

        def progress(done, item):
            if self.cfg.get("sample") and (done % every == 0 or done in (10, 100)):
                with lock:
                    self.samples.append((self.images + done, current_rss() / 2**20))

        cpu0 = _cpu_s()
        report = self.pipeline.run_pipeline(files, self.read, self.infer, self.write, progress=progress,
                                            timings=self.timings, **self.settings)
        self.images += report.done
        self.failed += [str(f) for f, _ in report.failed]
        return {"images": report.done, "loop_s": report.seconds, "cpu_s": _cpu_s() - cpu0}

    def finish(self) -> dict:
        torch, predictor = self.torch, self.predictor
        self.samples.append((self.images + len(self.failed), current_rss() / 2**20))
        s = self.settings
        result = {"maxrss_mb": peak_rss() / 2**20, "engine": predictor.backend, "failed": self.failed,
                  "stages_ms": {k: 1000 * self.timings.seconds.get(k, 0.0) / max(1, self.images) for k in STAGES},
                  "plan": f"{s['workers']} workers x {s['threads'] or 'default'} thread(s), batch {s['batch']}",
                  "rss_samples": sorted(self.samples), "device_name": str(predictor.device)}
        if predictor.device.type == "cuda":
            result["device_name"] = torch.cuda.get_device_name(predictor.device)
            result["cuda_peak_mb"] = torch.cuda.max_memory_allocated(predictor.device) / 2**20
        if self.cfg.get("check"):  # after the measurement: the engine against a fresh eager PyTorch net
            result["check"] = self._check()
        return result

    def _check(self) -> dict:
        torch = self.torch
        from .. import io, nets, runtime, weights
        from ..engines import select_output

        entry = self.entry
        net = nets.build(entry.net, **entry.kwargs).eval()
        net.load_state_dict(weights.load_state_dict_file(self.cfg["weights"], net), strict=True)
        files = self.cfg.get("check_files") or []
        worst, previous = 0.0, torch.get_num_threads()
        torch.set_num_threads(self.settings["threads"] or previous)  # the engine's throughput path
        with torch.inference_mode():
            for name in files:
                x = runtime.prepare(entry.input, io.read_image(name).pixels[..., :3])
                ref = select_output(net(x), entry.output.index).float()
                got = self.predictor.engine(x).float().cpu()
                worst = max(worst, float((got - ref).abs().max()))
        torch.set_num_threads(previous)
        return {"images": len(files), "max_abs": worst}


def _child(argv: list[str]) -> int:
    """A tool process: READY, then one reply per chunk of files, then the final figures (lines starting @@)."""
    kind, cfg_path = argv
    cfg = json.loads(Path(cfg_path).read_text(encoding="utf-8"))
    out = sys.stdout
    sys.stdout = sys.stderr  # libraries' prints must not mix with the replies

    def say(obj: dict) -> None:
        out.write("@@" + json.dumps(obj) + "\n")
        out.flush()

    tool = _RembgTool(cfg) if kind == "rembg" else _MattekitTool(cfg)
    say(tool.ready)
    for line in sys.stdin:
        message = json.loads(line)
        if message.get("end"):
            say(tool.finish())
            return 0
        say(tool.run(message["files"]))
    return 0


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--child":
    sys.exit(_child(sys.argv[2:]))
