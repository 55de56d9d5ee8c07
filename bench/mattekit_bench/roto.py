"""``mattekit bench roto``: region similarity J and flicker of roto mattes, with and without
temporal consistency, on sequences with per-frame ground truth (DAVIS layout).

- **J** (region similarity, DAVIS): IoU of matte >= 0.5 against the ground-truth mask, the
  mean over a sequence's frames, then the mean over sequences.
- **Flicker**: mean |alpha_t - alpha_t-1| over the pixels whose ground truth is the same in both
  frames (so genuine motion of the subject's outline does not count), the mean over a sequence's
  frame pairs, then over sequences. Lower is steadier. It also counts a *steady* matte error that
  moves (a false detection on a background the camera pans across), so it is printed next to a
  **motion-compensated flicker**: the same with alpha_t-1 first warped onto frame t along the
  plate's optical flow (DIS), which counts change only.

Columns: per-frame mattes (``--no-temporal``; refined as the window's ``refine_above`` says), the roto
default (motion-compensated window, :mod:`mattekit.roto.temporal`), and a plain exponential moving
average of the per-frame mattes as the baseline a temporal method must beat. All three use the same per-frame predictions, made
through the same code path as ``mattekit roto`` (:class:`mattekit.roto.MatteSource`), and the
temporal column is filtered in frame order as roto does (:class:`mattekit.roto.ordered.OrderedSmoother`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import cv2
import numpy as np

from mattekit import catalog
from mattekit.options import ModelChoice
from mattekit.roto import motion, ordered, temporal, tracking
from mattekit.errors import InputError
from mattekit.io.frame_patterns import folder_pattern
from mattekit.io.frame_ranges import chunk_frames
from mattekit.io.sequences import ImageSequence
from mattekit.roto import ROTO_MODEL_TASKS, MatteSource


def add_parser(kinds) -> None:
    p = kinds.add_parser(
        "roto",
        help="J (IoU) and flicker of roto mattes with and without temporal consistency",
        description="Matte every frame of each sequence and score against per-frame masks.",
    )
    p.add_argument(
        "--data",
        required=True,
        help="a DAVIS-style folder: im/SEQ (or JPEGImages/480p/SEQ) and gt/SEQ (or Annotations/480p/SEQ)",
    )
    p.add_argument("--sequences", help="comma-separated sequence names (default: all)")
    p.add_argument("--limit", type=int, help="only the first N frames of each sequence")
    p.add_argument("--model", help="people, objects, or a segment or matte model (default: objects)")
    p.add_argument("--weights", help="use this weights file instead of the catalog's download")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--threads", type=int, help="CPU threads for inference")
    p.add_argument("--radius", type=int, help="temporal window radius (default: the model's, see its catalog entry)")
    p.add_argument(
        "--flow-preset",
        choices=tuple(motion.DIS_PRESETS),
        help="the filter's DIS flow preset (default: the model's, see its catalog entry)",
    )
    p.add_argument("--flow-side", type=int, help="the filter's flow resolution, long side in px (default: the model's)")
    p.add_argument(
        "--flow-refinement",
        type=int,
        help="the filter's DIS variational refinement iterations per scale (default: the model's, else the preset's)",
    )
    p.add_argument(
        "--chunk",
        type=int,
        help="also run the shot in chunks of N frames as `roto --chunk N` does and "
        "print the largest alpha difference per frame against one run",
    )
    p.add_argument(
        "--hint",
        choices=("first-box",),
        help="also run each sequence with a hint and print both: first-box = "
        "the box around the first frame's ground truth, on that frame only, "
        "carried to the end as `roto --box` does",
    )
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.set_defaults(func=run)


def region_j(alpha: np.ndarray, gt: np.ndarray) -> float:
    pred, truth = alpha >= 0.5, gt > 127
    union = np.count_nonzero(pred | truth)
    return 1.0 if union == 0 else np.count_nonzero(pred & truth) / union


def flicker(alphas: list[np.ndarray], gts: list[np.ndarray], greys: list[np.ndarray] | None = None) -> float:
    """Mean over frame pairs of mean |alpha_t - alpha_t-1| where the ground truth does not change. With the plate's
    ``greys``, motion-compensated: alpha_t-1 is first warped onto frame t along the plate's optical flow, so a matte
    that moves with its subject (or with a panning background) counts only by how much it changes, not by how much it
    moves."""
    values = []
    for t in range(1, len(alphas)):
        same = (gts[t] > 127) == (gts[t - 1] > 127)
        if same.any():
            before = alphas[t - 1] if greys is None else motion.warp(alphas[t - 1], motion.flow(greys[t], greys[t - 1]))
            values.append(float(np.abs(alphas[t] - before)[same].mean()))
    return float(np.mean(values)) if values else 0.0


# the motion-compensated flicker's flow (512 px, DIS medium), whatever the filter's own settings
METRIC_FLOW = temporal.TemporalOptions()


def _folders(data: Path) -> tuple[Path, Path]:
    for im, gt in (("im", "gt"), ("JPEGImages/480p", "Annotations/480p"), ("JPEGImages", "Annotations")):
        if (data / im).is_dir() and (data / gt).is_dir():
            return data / im, data / gt
    raise InputError(f"{data} holds neither im/ and gt/ nor JPEGImages/480p/ and Annotations/480p/ folders.")


def _truth(path: Path, folder: Path) -> np.ndarray:
    """The ground-truth matte (H x W uint8) of frame ``path`` in ``folder``: the file of its stem as PNG, JPEG or BMP."""
    found = next(
        (folder / (path.stem + ext) for ext in (".png", ".jpg", ".bmp") if (folder / (path.stem + ext)).is_file()), None
    )
    if found is None:
        raise InputError(f"No ground truth for {path} in {folder}.")
    return cv2.imread(str(found), cv2.IMREAD_GRAYSCALE)


def _print_chunked(chunked: dict, chunk: int, entry) -> None:
    """One line: each kind of matte in chunks of ``chunk`` frames against one run."""
    warm = f" (recurrent warm-up {entry.warmup} frames)" if entry.recurrent else ""
    kinds = (
        f"{kind}: max |alpha difference| per frame {d['max']:.4g} (mean of the per-frame maxima "
        f"{d['mean']:.4g}), mean |difference| {d['mean_abs']:.2g}; at chunk starts (frame: max, mean) "
        + ", ".join(f"{f}: {m:.3g}, {a:.2g}" for f, (m, a) in d["chunk_starts"].items())
        for kind, d in chunked.items()
    )
    print(f"{'':<14}chunks of {chunk} vs one run{warm}: " + "; ".join(kinds), flush=True)


def run(args) -> int:
    images, truths = _folders(Path(args.data))
    names = args.sequences.split(",") if args.sequences else sorted(p.name for p in images.iterdir() if p.is_dir())
    cat = catalog.load()
    entry = cat.get(args.model, ROTO_MODEL_TASKS) if args.model else cat.default("segment")
    options = _temporal_options(entry, args)
    print(
        f"model {entry.name}, temporal: flow-compensated window, radius {options.radius}, {options.passes} passes, "
        f"{options.flow_preset} flow at {options.flow_side} px"
        + (f" ({options.flow_refinement} refinement iterations)" if options.flow_refinement is not None else "")
        + f"; per-frame mattes refined above {options.refine_above:g}x "
        f"the network's input; {len(names)} sequences"
    )
    head = (
        f"{'sequence':<14}{'frames':>7}  {'J frame':>8}{'J temp':>8}{'J ema':>8}  {'flicker frame':>14}{'temp':>9}{'ema':>9}"
        f"  {'mc-flicker frame':>17}{'temp':>9}{'ema':>9}  {'s/frame':>8}{'+temp s':>8}"
    )
    print(head)
    runs = {"no hint": []} | ({args.hint: []} if args.hint else {})
    for name in names:
        plate = ImageSequence(folder_pattern(images / name))
        frames = plate.frames[: args.limit] if args.limit else plate.frames
        gts = [_truth(plate.files[frame], truths / name) for frame in frames]
        for hint, rows in runs.items():
            keyframes = None
            if hint == "first-box":
                keyframes = tracking.Keyframes(boxes={frames[0]: tracking.box_of(gts[0] / 255.0)})
            row = score(plate, frames, gts, entry, options, args, keyframes)
            row["sequence"], row["hint"] = name, hint
            rows.append(row)
            _print_row(name if hint == "no hint" else f"  {hint}", row)
            if args.chunk:
                row["chunked"] = chunk_difference(
                    plate, entry, args, frames, row.pop("mattes"), row.pop("smoothed"), options, keyframes
                )
                _print_chunked(row["chunked"], args.chunk, entry)
            row.pop("mattes", None)
            row.pop("smoothed", None)
    means = {hint: _mean(rows) for hint, rows in runs.items()}
    _print_means(means, args.hint)
    mean = means["no hint"]
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "model": entry.name,
                    "temporal": options.describe(),
                    "sequences": [r for rows in runs.values() for r in rows],
                    "mean": mean,
                }
                | ({"mean_hinted": means[args.hint]} if args.hint else {}),
                indent=1,
            )
        )
    return 0


def _temporal_options(entry, args):
    """The model's temporal options (:func:`mattekit.roto.temporal.for_model`) with the bench's flags that were given
    (radius, flow side, preset, refinement) put in."""
    options = temporal.for_model(entry)
    for name in ("radius", "flow_side", "flow_preset", "flow_refinement"):
        if getattr(args, name) is not None:
            options = dataclasses.replace(options, **{name: getattr(args, name)})
    return options


def _print_means(means: dict, hint_kind: str | None) -> None:
    """Print the mean row of each hint kind (``means``: {"no hint" or the hint: mean row}), what temporal
    consistency did to flicker and J, and, with ``hint_kind``, what the hint changed."""
    for hint, mean in means.items():
        _print_row("mean" if hint == "no hint" else f"mean {hint}", mean)
    mean = means["no hint"]
    f, m = mean["flicker"], mean["flicker_mc"]
    print(
        f"flicker with temporal consistency: {f['temporal'] / max(f['frame'], 1e-12):.2f} x per-frame "
        f"(EMA baseline {f['ema'] / max(f['frame'], 1e-12):.2f} x); motion-compensated flicker "
        f"{m['temporal'] / max(m['frame'], 1e-12):.2f} x (EMA {m['ema'] / max(m['frame'], 1e-12):.2f} x); "
        f"J {mean['J']['temporal'] - mean['J']['frame']:+.4f} (EMA {mean['J']['ema'] - mean['J']['frame']:+.4f})"
    )
    if hint_kind:
        h = means[hint_kind]
        print(
            f"with {hint_kind}: J temporal {h['J']['temporal']:.4f} vs {mean['J']['temporal']:.4f} without a hint, "
            f"flicker {h['flicker']['temporal']:.5f} vs {f['temporal']:.5f}"
        )


def score(
    plate,
    frames: list[int],
    gts: list[np.ndarray],
    entry,
    options: temporal.TemporalOptions,
    args,
    keyframes: tracking.Keyframes | None,
) -> dict:
    """J, flicker and motion-compensated flicker of one sequence's per-frame, temporal and EMA mattes
    (``keyframes``: the user's hints, carried as roto carries them); "mattes" and "smoothed" hold the
    per-frame and temporal mattes."""
    smoothed: list[np.ndarray] = []
    stage = ordered.OrderedSmoother(options, plate.frames, frames, lambda frame, _, alpha, __: smoothed.append(alpha))
    memo: dict[int, np.ndarray] = {}  # per-frame mattes of the frames and the temporal warm-up
    greys: dict[int, np.ndarray] = {}

    def keep(frame, picture, alpha, _):
        memo[frame] = alpha
        if frame in stage.wanted_set:
            greys[frame] = temporal.prepare(picture.pixels, alpha, METRIC_FLOW).grey

    started = time.perf_counter()
    _source(plate, entry, args, keyframes, refine_above=options.refine_above).run(stage.frames, keep, pictures=True)
    seconds = (time.perf_counter() - started) / len(stage.frames)
    per_frame, greys = [memo[f] for f in frames], [greys[f] for f in frames]
    started = time.perf_counter()
    for frame in stage.frames:  # the plate is read again: only small copies of it are kept
        stage.push(frame, plate.read(frame).pixels, memo[frame])
    temporal_seconds = (time.perf_counter() - started) / len(frames)
    ema: list[np.ndarray] = []  # a plain exponential moving average (no motion compensation): the baseline to beat
    for alpha in per_frame:
        ema.append(alpha if not ema else (0.6 * ema[-1] + (1.0 - 0.6) * alpha).astype(np.float32))
    kinds = {"frame": per_frame, "temporal": smoothed, "ema": ema}
    return {
        "frames": len(frames),
        "J": {k: float(np.mean([region_j(a, g) for a, g in zip(made, gts)])) for k, made in kinds.items()},
        "flicker": {k: flicker(made, gts) for k, made in kinds.items()},
        "flicker_mc": {k: flicker(made, gts, greys) for k, made in kinds.items()},
        "seconds_per_frame": seconds,
        "temporal_seconds_per_frame": temporal_seconds,
        "mattes": per_frame,
        "smoothed": smoothed,
    }


def _source(plate, entry, args, keyframes: tracking.Keyframes | None, **more) -> MatteSource:
    """Roto's source of per-frame mattes of ``plate`` with catalog ``entry`` and the bench's weights, device and
    threads, the user's ``keyframes`` carried as roto carries them; ``more``: MatteSource's other options."""
    choice = ModelChoice(entry.name, entry)
    return MatteSource(
        plate, choice, weights=args.weights, device=args.device, threads=args.threads, keyframes=keyframes, **more
    )


def _mean(rows: list[dict]) -> dict:
    """The mean row over sequences."""
    return {
        "sequence": "mean",
        "frames": sum(r["frames"] for r in rows),
        **{m: {k: float(np.mean([r[m][k] for r in rows])) for k in rows[0][m]} for m in ("J", "flicker", "flicker_mc")},
        "seconds_per_frame": float(np.mean([r["seconds_per_frame"] for r in rows])),
        "temporal_seconds_per_frame": float(np.mean([r["temporal_seconds_per_frame"] for r in rows])),
    }


def chunk_difference(
    plate,
    entry,
    args,
    frames: list[int],
    per_frame: list[np.ndarray],
    smoothed: list[np.ndarray],
    options: temporal.TemporalOptions,
    keyframes: tracking.Keyframes | None = None,
) -> dict:
    """Run ``frames`` in chunks of ``args.chunk`` (each chunk alone, as a render-farm task or a resumed
    job runs it) with and without temporal consistency; {"frame"|"temporal": {"max", "mean", "per_frame",
    "mean_abs"}}: the largest |alpha difference| of each frame against the uninterrupted run's (their max,
    their mean, each), and the mean |alpha difference| over all pixels of all frames."""
    out = {}
    kinds = [("frame", per_frame, None)] + ([("temporal", smoothed, options)] if options.radius > 0 else [])
    for kind, reference, options_used in kinds:
        source = _source(plate, entry, args, keyframes, temporal_options=options_used)
        got: dict[int, np.ndarray] = {}
        for chunk in chunk_frames(frames, args.chunk):
            source.run(chunk, lambda frame, _, alpha, __: got.__setitem__(frame, alpha))
        worst = [float(np.abs(got[f] - r).max()) for f, r in zip(frames, reference)]
        typical = [float(np.abs(got[f] - r).mean()) for f, r in zip(frames, reference)]
        out[kind] = {
            "max": max(worst),
            "mean": float(np.mean(worst)),
            "per_frame": worst,
            "mean_abs": float(np.mean(typical)),
            "mean_abs_per_frame": typical,
            "chunk_starts": {
                chunk[0]: [worst[frames.index(chunk[0])], typical[frames.index(chunk[0])]]
                for chunk in chunk_frames(frames, args.chunk)[1:]
            },
        }
    return out


def _print_row(name: str, row: dict) -> None:
    j, f = row["J"], row["flicker"]
    m = row["flicker_mc"]
    print(
        f"{name:<14}{row['frames']:>7}  {j['frame']:>8.4f}{j['temporal']:>8.4f}{j['ema']:>8.4f}  "
        f"{f['frame']:>14.5f}{f['temporal']:>9.5f}{f['ema']:>9.5f}  {m['frame']:>17.5f}{m['temporal']:>9.5f}{m['ema']:>9.5f}"
        f"  {row['seconds_per_frame']:>8.3f}{row['temporal_seconds_per_frame']:>8.3f}",
        flush=True,
    )
