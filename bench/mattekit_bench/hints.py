"""``mattekit bench hints``: how much a user's hint (a box, a point) lifts background removal.

Hints are derived from the ground truth as a user would give them: a box = the subject's bounding
box grown on each side by a random margin, uniform in 0-15 % of its width (left/right) or height
(top/bottom), seeded by the image's name so runs repeat; one include point = the subject's pixel
farthest from its boundary. For grabcut50 the GrabCut paper's own rectangle (``rect/NAME.png``:
the bounding box of its nonzero area) is a further box. Every alpha comes from
``mattekit.tasks.remove.TASK.run`` (``remove --result alpha --hint-model none``: what users get from the
segmentation model; a hint's default, SAM 2.1, is not measured here).

Layouts: ``im/NAME.* + gt/NAME.png`` (grabcut50; 128 = ignore band), or DAVIS (``im/SEQ/*.jpg`` +
``gt/SEQ/*.png``), of which each sequence's first frame is taken (``--every N``: every Nth frame, the first
included). Images are split in sorted order: even-indexed ones are the tuning half (where defaults may be chosen),
odd-indexed ones the report half; DAVIS frames by their sequence's index, so a sequence's frames share a half.
``--composites`` makes two-subject photos of a set (:func:`composite_pairs`: never across the halves), on which the
whole photo's answer often picks the other subject than the one hinted.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np

from mattekit import io, runtime
from . import metrics
from mattekit.ops.pixels import unit_float
from mattekit.ops.regions import bounding_box
from mattekit.options import model_choice
from mattekit.errors import InputError, MattekitError
from mattekit.progress import shown
from mattekit.tasks import remove
from .segment import HALVES, half_of, pairs

MAX_MARGIN = 0.15  # a derived box's margin: uniform in [0, MAX_MARGIN] of the subject's size per side
MISS, HIT = 0.3, 0.7  # IoU below MISS is a miss, above HIT a hit
HINTS = ("none", "none clipped", "box", "box focus", "box + point", "paper rect", "point")  # "none clipped": no hint,
# alpha zeroed outside the box (what a box alone gives where the model's subject lies in the box); "box focus": remove
# --box --box-focus; "point": an include point alone (composites)


def add_parser(kinds) -> None:
    p = kinds.add_parser(
        "hints",
        help="IoU of remove without a hint (also clipped to the box), with a box (also "
        "focused: --box-focus) and with a box and a point "
        "derived from the ground truth (grabcut50 or DAVIS first frames), or on two-subject "
        "composites of them",
    )
    p.add_argument(
        "--data",
        required=True,
        help="folder with im/NAME.* + gt/NAME.png (grabcut50; rect/ used when "
        "present), or DAVIS's im/SEQ/ + gt/SEQ/ (each sequence's first frame)",
    )
    p.add_argument("--model", action="append", help="segmentation model (repeatable); default: csnet-sod")
    p.add_argument("--device", default="auto")
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument(
        "--every",
        type=int,
        metavar="N",
        help="DAVIS: every Nth frame of each sequence (the first "
        "included) instead of its first frame alone; a sequence's frames share its half",
    )
    p.add_argument(
        "--no-matting",
        action="store_true",
        help="score remove --no-matting (several times faster; the IoU at 0.5 moves little)",
    )
    p.add_argument(
        "--composites",
        action="store_true",
        help="score two-subject photos made of the set's own: each "
        "photo beside the next of its half, a box, a focused box and a point on each subject in turn",
    )
    p.set_defaults(func=run)


def sequence_frames(data: Path, every: int | None = None) -> list[tuple[Path, Path, str]]:
    """(frame, its mask, half) of a DAVIS folder (im/SEQ/*.jpg + gt/SEQ/*.png): each sequence's first frame, or
    with ``every`` each ``every``-th frame from the first (those with a mask); sequences sorted by SEQ, the half
    by the sequence's index (:func:`mattekit_bench.segment.half_of`)."""
    found = []
    for index, sequence in enumerate(sorted(p for p in (data / "im").iterdir() if p.is_dir())):
        frames = sorted(sequence.iterdir())
        for frame in frames[::every] if every else frames[:1]:
            gt = data / "gt" / sequence.name / (frame.stem + ".png")
            if gt.is_file():
                found.append((frame, gt, half_of(index)))
    if not found:
        raise InputError(f"{data} has no im/SEQ/FRAME + gt/SEQ/FRAME.png sequences.")
    return found


def rows_of(data: Path, every: int | None = None) -> list[tuple[Path, Path, str]]:
    """(image, ground truth, half) of either layout (DAVIS when im/ holds folders: :func:`sequence_frames`);
    ``every`` is for DAVIS only (InputError otherwise)."""
    if not (data / "im").is_dir():
        raise InputError(f"{data} has no im/ folder.")
    if any(p.is_dir() for p in (data / "im").iterdir()):
        return sequence_frames(data, every)
    if every:
        raise InputError(f"--every takes frames of sequences, and {data}/im holds no sequence folders.")
    return [(image, gt, half_of(index)) for index, (image, gt) in enumerate(pairs(data))]


def gt_box(gt: np.ndarray, seed: str) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), x1/y1 exclusive: the bounding box of ``gt`` (H x W uint8, subject >= 128)
    grown per side by a margin uniform in [0, MAX_MARGIN] of its size, drawn from a generator seeded by
    ``seed``, clipped to the image."""
    y0, x0, y1, x1 = bounding_box(gt, threshold=127)
    left, top, right, bottom = np.random.default_rng(zlib.crc32(seed.encode())).uniform(0, MAX_MARGIN, 4)
    width, height = x1 - x0, y1 - y0
    height_px, width_px = gt.shape
    return (
        max(0, int(x0 - left * width)),
        max(0, int(y0 - top * height)),
        min(width_px, int(np.ceil(x1 + right * width))),
        min(height_px, int(np.ceil(y1 + bottom * height))),
    )


def gt_point(gt: np.ndarray) -> tuple[int, int]:
    """(x, y) of the subject's pixel (``gt`` == 255) farthest from its boundary."""
    inside = np.pad((gt == 255).astype(np.uint8), 1)
    distance = cv2.distanceTransform(inside, cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return int(x), int(y)


def rect_box(path: Path) -> tuple[int, int, int, int] | None:
    """The bounding box (x0, y0, x1, y1) of the nonzero area of a GrabCut rectangle file, or None."""
    rect = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    found = None if rect is None else bounding_box(rect, threshold=0)
    if found is None:
        return None
    top, left, bottom, right = found
    return int(left), int(top), int(right), int(bottom)


def side_by_side(left: np.ndarray, right: np.ndarray, left_gt: np.ndarray, right_gt: np.ndarray):
    """Two photos as one, the right one scaled to the left one's height (area filter; its mask by nearest
    neighbour): (H x (W1 + W2) x 3 image, the left subject's mask, the right subject's mask), each mask H x
    (W1 + W2) uint8 0/128/255 with 0 over the other photo. Its two subjects compete for the model's attention:
    the photo a user boxes one of them in."""
    height = left.shape[0]
    width = max(1, int(round(right.shape[1] * height / right.shape[0])))
    image = np.concatenate(
        [left[..., :3], cv2.resize(right[..., :3], (width, height), interpolation=cv2.INTER_AREA)], 1
    )
    scaled = cv2.resize(right_gt, (width, height), interpolation=cv2.INTER_NEAREST)
    return (
        image,
        np.concatenate([left_gt, np.zeros_like(scaled)], 1),
        np.concatenate([np.zeros_like(left_gt), scaled], 1),
    )


def composite_pairs(rows: list[tuple[Path, Path, str]]) -> list[tuple[tuple[Path, Path], tuple[Path, Path], str]]:
    """Pairs of ``rows`` (image, mask, half) from one half each: in sorted order, each photo with the next of its
    half (the last with the first), so each photo is once on the left and once on the right and no composite mixes
    the halves. ((left image, left mask), (right image, right mask), half)."""
    out = []
    for half in HALVES:
        mine = [(image, gt) for image, gt, h in rows if h == half]
        out += [(mine[i], mine[(i + 1) % len(mine)], half) for i in range(len(mine)) if len(mine) > 1]
    return out


def hints_for(
    gt: np.ndarray, seed: str, paper: tuple[int, int, int, int] | None = None, point_alone: bool = False
) -> dict[str, dict]:
    """{hint name: remove's options for it} of one subject (``gt``: its mask; ``seed``: its box's margins, see
    :func:`gt_box`): none, a box, a focused box, and a box with a point or with ``point_alone`` a point alone;
    "paper rect" for a ``paper`` box (x0, y0, x1, y1). See :data:`HINTS`."""
    box = ",".join(map(str, gt_box(gt, seed)))
    point = "{},{}".format(*gt_point(gt))
    found = {"none": {}, "box": {"box": box}, "box focus": {"box": box, "box_focus": True}}
    found.update({"point": {"point": point}} if point_alone else {"box + point": {"box": box, "point": point}})
    if paper is not None:
        found["paper rect"] = {"box": ",".join(map(str, paper))}
    return found


def cases(rows: list[tuple[Path, Path, str]], data: Path, composites: bool = False):
    """(name, half, image H x W x 3, ground truth H x W uint8, box seed, {hint name: remove's options}) of each
    image of ``rows``, or with ``composites`` of each subject of each :func:`composite_pairs` photo
    (:func:`side_by_side`; its hints: none, a box and a focused box on that subject, a point on it alone)."""

    def read(path):
        return io.read_image(path).pixels[..., :3]

    if not composites:
        for image_path, gt_path, half in rows:
            gt = cv2.imread(str(gt_path), cv2.IMREAD_GRAYSCALE)
            yield (
                f"{image_path.parent.name}/{image_path.name}",
                half,
                read(image_path),
                gt,
                image_path.stem,
                hints_for(gt, image_path.stem, rect_box(data / "rect" / (image_path.stem + ".png"))),
            )
        return
    for (left, left_gt), (right, right_gt), half in composite_pairs(rows):
        image, *subjects = side_by_side(
            unit_float(read(left)),
            unit_float(read(right)),
            *(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in (left_gt, right_gt)),
        )
        for side, gt in zip(("left", "right"), subjects):
            seed = f"{left.stem}+{right.stem}:{side}"
            yield seed, half, image, gt, seed, hints_for(gt, seed, point_alone=True)


def measure(
    model: str,
    rows: list[tuple[Path, Path, str]],
    data: Path,
    device: str = "auto",
    matting: bool = True,
    composites: bool = False,
) -> dict:
    """{case name: (half, {hint name: IoU})} of remove --result alpha (``matting``: its default) with ``model`` on
    :func:`cases`."""
    predictor = runtime.ModelCache().get(model_choice(model, "segment"), device)
    found = {}
    count = len(rows) * (2 if composites else 1)
    # a bar on a terminal, a line per image elsewhere
    with shown(count, "subject" if composites else "image") as report:
        for name, half, image, gt, seed, hinted in cases(rows, data, composites):
            scores = {}
            for hint_name, hint in hinted.items():
                hinted_by = {"result": "alpha", "matting": matting, "hint_model": "none", **hint}  # the model's rule
                options = remove.TASK.make_options({"model": model, **hinted_by})
                alpha = remove.TASK.run({"model": predictor}, {"image": image}, options)["result"]
                scores[hint_name] = metrics.iou(alpha, gt)
                # what a box must beat: the plain answer with everything outside the box cut away
                if hint_name == "none":
                    scores["none clipped"] = metrics.iou(clipped(alpha, gt_box(gt, seed)), gt)
            found[name] = (half, scores)
            report(name)
    return found


def clipped(alpha: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """``alpha`` (H x W) with 0 outside ``box`` (x0, y0, x1, y1; x1, y1 exclusive)."""
    x0, y0, x1, y1 = box
    out = np.zeros_like(alpha)
    out[y0:y1, x0:x1] = alpha[y0:y1, x0:x1]
    return out


def summary(per_image: list[dict]) -> dict[str, tuple[float, float | None]]:
    """{hint name: (mean IoU, share of images where the hint turned a miss into a hit, None for "none")}."""
    out = {}
    for name in HINTS:
        values = [s for s in per_image if name in s]
        if not values:
            continue
        mean = float(np.mean([s[name] for s in values]))
        turned = (
            None
            if name in ("none", "none clipped")
            else float(np.mean([s["none"] < MISS and s[name] > HIT for s in values]))
        )
        out[name] = (mean, turned)
    return out


def run(args) -> int:
    data = Path(args.data)
    if args.every is not None and args.every < 1:
        raise InputError(f"--every must be a whole number of frames from 1 up, not {args.every}.")
    rows = rows_of(data, args.every)[: args.limit]
    models = args.model or ["csnet-sod"]
    if not rows:
        raise MattekitError(f"{data} has no images to measure.")
    count = {h: sum(half == h for *_, half in rows) for h in HALVES}
    unit = " sequences' frames" if rows[0][0].parent != data / "im" else ""
    made = (
        "; composites: each photo beside the next of its half (the right one scaled to the left one's height), "
        "each of the two subjects in turn the one hinted and scored"
        if args.composites
        else ""
    )
    print(
        f"bench hints on {data}: {len(rows)} images in sorted order; tuning half = even-indexed{unit} "
        f"({count['tuning']}), report half = odd-indexed{unit} ({count['report']}){made}; box = ground-truth box + "
        f"0-{MAX_MARGIN:.0%} margin per side, point = the subject pixel farthest from its boundary; miss = IoU < "
        f"{MISS}, hit = IoU > {HIT}; remove --result alpha{' --no-matting' if args.no_matting else ''}"
    )
    width = max(14, *(len(m) + 1 for m in models))  # the model column: a name and a space
    print(f"{'model':{width}}{'hint':14}{'half':8}{'images':>7}{'IoU':>9}{'miss->hit':>11}")
    for model in models:
        found = measure(model, rows, data, args.device, not args.no_matting, args.composites)
        for half in HALVES:
            per_image = [scores for mine, scores in found.values() if mine == half]
            for hint, (mean, turned) in summary(per_image).items():
                shown = "-" if turned is None else f"{turned:.3f}"
                images = sum(hint in s for s in per_image)
                print(f"{model:{width}}{hint:14}{half:8}{images:7d}{mean:9.4f}{shown:>11}")
    return 0
