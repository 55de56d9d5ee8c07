"""``bench speed --whole``: whole commands as a user runs them, each in a fresh process, in turns:
``mattekit remove`` (defaults and ``--no-refine --no-matting``), ``mattekit roto`` on a sequence, and rembg's
``rembg p`` loop; seconds, images/s, CPU seconds and each process's peak RSS, with the ratios."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from . import wxh
from .speed_setup import _images, _rembg_home, machine_line


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
    from mattekit.errors import MattekitError

    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise MattekitError(
            f"{Path(argv[0]).name} {' '.join(argv[1:4])}... failed: "
            f"{(err.strip().splitlines() or ['no output'])[-1][:300]}"
        )
    return {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime}


def held(argv: list[str], env: dict, ms: float, report: Path) -> dict:
    """:func:`_timed_process` of the mattekit command ``argv`` (``python -m mattekit ...``) on a simulated GPU of
    ``ms`` milliseconds an image (``python -m mattekit_bench.simulated``), with the device's figures it wrote at exit
    into ``report``: held_s (seconds held), span_s (from its first batch to its last) and first_s (from the command's
    launch to its first batch: its start-up, which nothing overlaps; perf_counter is the system's monotonic clock,
    one for both processes)."""
    launched = time.perf_counter()
    simulated = [argv[0], "-m", "mattekit_bench.simulated", f"{ms:g}", str(report), *argv[3:]]
    got = _timed_process(simulated, env)
    device = json.loads(report.read_text(encoding="utf-8"))
    ran = device["first_s"] is not None
    span = (device["last_s"] - device["first_s"]) if ran else 0.0
    first = (device["first_s"] - launched) if ran else got["seconds"]
    return dict(got, held_s=device["held_s"], span_s=span, first_s=first, batches=device["batches"])


def ping_pong(frames: list, length: int) -> list:
    """``frames`` forwards, then backwards, then forwards... cut at ``length`` items: a shot lengthened with its motion
    continuous (each turn shows its end frame twice)."""
    played: list = []
    while len(played) < length:
        played.extend(frames if len(played) // len(frames) % 2 == 0 else frames[::-1])
    return played[:length]


def _photo_folder(args, work: Path) -> list[Path]:
    """--photo WxH: the folder's first image resized to W x H (cubic), one JPEG (quality 92) in ``work``."""
    import cv2

    w, h = wxh(args.photo, "--photo")
    folder = work / "photo"
    folder.mkdir(exist_ok=True)
    target = folder / f"photo_{w}x{h}.jpg"
    if not target.is_file():
        image = cv2.imread(str(_images(args)[0]), cv2.IMREAD_COLOR)
        cv2.imwrite(
            str(target), cv2.resize(image, (w, h), interpolation=cv2.INTER_CUBIC), [cv2.IMWRITE_JPEG_QUALITY, 92]
        )
    return [target]


def _sequence_runs(files: list[Path], plate: Path, model: list[str], remove: list[str]) -> tuple[list[str], dict]:
    """The frames ``files`` linked into the folder ``plate`` as one numbered sequence: (their paths there, {command:
    argv} of roto on the sequence and of remove making the same mattes), ``model``: the model's flags."""
    plate.mkdir(exist_ok=True)
    for i, f in enumerate(files):
        link = plate / f"frame.{i:05d}{f.suffix.lower()}"
        if not link.exists():
            link.symlink_to(Path(f).resolve())
    names = [str(plate / f"frame.{i:05d}{f.suffix.lower()}") for i, f in enumerate(files)]
    roto = [sys.executable, "-m", "mattekit", "roto", str(plate / f"frame.#####{files[0].suffix.lower()}")]
    runs = {
        "mattekit roto": roto + model + ["--overwrite"],
        "mattekit remove --result alpha": remove + ["--result", "alpha"],
    }
    return names, runs


def _whole(args, cfg: dict, work: Path) -> dict:
    """Whole commands in fresh processes (start-up, imports, model load, every image, exit), in turns, after one
    first use of each (its one-time costs, timed apart)."""
    files = _photo_folder(args, work) if args.photo else _images(args)
    names = [str(f) for f in files]
    model = ["--model", args.model] + (["--weights", cfg["weights"]] if args.weights or args.stand_in else [])
    model += ["--device", args.device] if args.device != "auto" else []
    remove = [sys.executable, "-m", "mattekit", "remove", "-q"] + model
    if args.sequence:  # mattes of the same frames: roto (frames, in a folder of their own) vs per-image tools
        files = ping_pong(files, args.frames) if args.frames else files
        names, runs = _sequence_runs(files, work / "plate", model, remove)
    else:
        runs = {
            "mattekit remove": remove,
            "mattekit remove --no-refine --no-matting": remove + ["--no-refine", "--no-matting"],
        }
    # Every tool with its own thread defaults: OMP_NUM_THREADS set would cap torch, and rembg hands it to
    # ONNX Runtime (set to 1, rembg took 70 s instead of 39 s on 50 photos on 2 cores).
    defaults = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env = {name: defaults for name in runs}
    if not args.no_rembg:
        session, home = _rembg_home(args, cfg, work, check_import=args.rembg_python is None)
        runs["rembg p"] = [
            args.rembg_python or sys.executable,
            "-c",
            REMBG_LOOP,
            session,
            "-om" if args.sequence else "-",
        ]
        env["rembg p"] = dict(defaults, U2NET_HOME=str(home), MODEL_CHECKSUM_DISABLED="1")
    order = list(runs)

    def run(name: str, turn: str) -> dict:
        out = work / f"out-{order.index(name)}-{turn}"
        out.mkdir(exist_ok=True)
        if args.simulate_device is not None and name != "rembg p":
            report = work / f"device-{order.index(name)}-{turn}.json"
            return held(argv_of(name, out), env[name], args.simulate_device, report)
        return _timed_process(argv_of(name, out), env[name])

    def argv_of(name: str, out: Path) -> list[str]:
        if name == "rembg p":
            return runs[name] + [str(out)] + names
        if name == "mattekit roto":
            return runs[name] + ["-o", str(out / "matte.#####.png")]
        return runs[name] + ["-o", str(out)] + names

    # Each command's first use, apart: what a user's first run pays once (mattekit's ONNX export; rembg's session
    # set-up), timed and shown, but not in the rounds
    first_use = {name: run(name, "first") for name in order}
    load = [os.getloadavg()[0]]
    results: dict[str, list[dict]] = {name: [] for name in runs}
    for turn in range(args.repeat):
        for name in order if turn % 2 == 0 else order[::-1]:  # ABBA: drift in load falls on all alike
            results[name].append(run(name, str(turn)))
    load.append(os.getloadavg()[0])
    return _report(args, files, results, first_use, load, order)


def _summed(got: list[dict], images: int) -> dict:
    """One command's rounds (``got``: each run's figures, on ``images`` images) summed: images a second, mean
    seconds and CPU seconds a run, the highest peak RSS in MB, and the runs."""
    seconds = sum(r["seconds"] for r in got)
    return {
        "images_per_s": images * len(got) / seconds,
        "seconds": seconds / len(got),
        "cpu_s": sum(r["cpu_s"] for r in got) / len(got),
        "peak_mb": max(r["peak_mb"] for r in got),
        "runs": got,
    }


def _report(args, files: list, results: dict, first_use: dict, load: list, order: list) -> dict:
    """Print :func:`_whole`'s table (per command: seconds, images/s, CPU s, peak RSS; the device's busy share on a
    simulated GPU; the ratios to rembg) and return its figures."""
    summary = {name: _summed(got, len(files)) for name, got in results.items()}
    what = (
        f"one {args.photo} photo"
        if args.photo
        else f"{len(files)} {'frames' if args.sequence else 'images'} from {files[0].parent}"
    )
    what += " (played forwards and backwards)" if args.sequence and args.frames else ""
    print(
        f"bench speed --whole: {what}, model {args.model}; {args.repeat} round(s) in turns; "
        f"load average {load[0]:.1f} -> {load[1]:.1f}"
    )
    machine = machine_line(args)
    print(machine)
    print(
        "first use, before the rounds and not in their figures: "
        + ", ".join(f"{name} {r['seconds']:.2f} s" for name, r in first_use.items())
    )
    simulating = args.simulate_device is not None
    if simulating:
        print(
            f"on a simulated GPU of {args.simulate_device:g} ms an image (mattekit_bench.simulated): device busy = "
            f"seconds held / the command's seconds, and / its seconds from the first batch to the last; first batch: "
            f"seconds from the command's launch to its first batch (the start-up)"
        )
    print(
        f"{'command':44s}{'seconds':>9s}{'images/s':>10s}{'CPU s':>8s}{'peak RSS MB':>13s}"
        + (f"{'busy':>7s}{'busy in run':>13s}{'first batch':>13s}" if simulating else "")
    )
    for name, r in summary.items():
        busy = ""
        if simulating:
            r["busy"] = sum(x["held_s"] for x in r["runs"]) / sum(x["seconds"] for x in r["runs"])
            r["busy_in_run"] = sum(x["held_s"] for x in r["runs"]) / max(1e-9, sum(x["span_s"] for x in r["runs"]))
            r["first_s"] = sum(x["first_s"] for x in r["runs"]) / len(r["runs"])
            busy = f"{100 * r['busy']:6.0f}%{100 * r['busy_in_run']:12.0f}%{r['first_s']:13.2f}"
        print(f"{name:44s}{r['seconds']:9.2f}{r['images_per_s']:10.3f}{r['cpu_s']:8.2f}{r['peak_mb']:13.0f}{busy}")
    if args.sequence:
        r, m = summary["mattekit roto"], summary["mattekit remove --result alpha"]
        print(
            f"mattekit roto / mattekit remove --result alpha: {r['seconds'] / m['seconds']:.2f}x the time, "
            f"{r['peak_mb'] / m['peak_mb']:.2f}x the peak RSS"
        )
    if "rembg p" in summary:
        rb = summary["rembg p"]
        for name in order[:-1]:
            print(against_rembg(name, summary[name], rb))
    return {
        "images": len(files),
        "photo": args.photo,
        "model": args.model,
        "load_average": load,
        "machine": machine,
        "first_use": first_use,
        "summary": summary,
    }


# Student's t for a two-sided 95 % interval, by degrees of freedom 1..30 (beyond: the normal's 1.96 corrected)
T_975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def interval_of_mean(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high): the mean of ``values`` (at least 2) and its two-sided 95 % interval by Student's t."""
    n, mean = len(values), statistics.mean(values)
    df = n - 1
    t = T_975[df - 1] if df <= len(T_975) else 1.96 + (1.96**3 + 1.96) / (4 * df)
    half = t * statistics.stdev(values, mean) / n**0.5
    return mean, mean - half, mean + half


def against_rembg(name: str, r: dict, rb: dict) -> str:
    """The line comparing command ``name``'s summary ``r`` with rembg's ``rb`` (each: images_per_s, seconds, cpu_s,
    peak_mb and its "runs", one per round): the ratios over all rounds, then images/s round by round (rembg's seconds
    over the command's in each round: a round runs both tools back to back, so its ratio shows the spread) and, from
    2 rounds, those ratios' mean with its 95 % interval (an interval that holds 1.0x does not tell the two apart)."""
    ratios = [b["seconds"] / a["seconds"] for a, b in zip(r["runs"], rb["runs"])]
    rounds = " ".join(f"{x:.2f}x" for x in ratios)
    spread = ""
    if len(ratios) >= 2:
        mean, low, high = interval_of_mean(ratios)
        spread = f"; their mean {mean:.3f}x, 95 % interval {low:.3f}x to {high:.3f}x"  # 3 places: a bound near 1.0x
    return (
        f"{name} / rembg p: {r['images_per_s'] / rb['images_per_s']:.2f}x images/s, "
        f"{r['seconds'] / rb['seconds']:.2f}x the time, {r['cpu_s'] / rb['cpu_s']:.2f}x the CPU time, "
        f"{r['peak_mb'] / rb['peak_mb']:.2f}x the peak RSS; images/s per round {rounds}{spread}"
    )
