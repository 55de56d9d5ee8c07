"""``mattekit bench segment``: mask quality of a model on images with ground-truth masks,
for the plain bilinear upsampling and the edge-aware refinement, side by side."""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from .. import io, metrics, ops, runtime
from ..errors import InputError
from ..tasks import segment

METRICS = (("IoU", metrics.iou), ("MAE", metrics.mae), ("max F-beta", metrics.max_fbeta), ("boundary F (2px)", metrics.boundary_f))


def add_parser(kinds) -> None:
    p = kinds.add_parser("segment", help="IoU, MAE, max F-beta and boundary F on a folder with im/ and gt/")
    p.add_argument("--data", required=True, help="folder with im/ (images) and gt/ (masks named like the images, .png; 128 = ignore)")
    p.add_argument("--model", default="csnet-sod")
    p.add_argument("--weights", help="weights file instead of the catalog's")
    p.add_argument("--device", default="auto")
    p.add_argument("--limit", type=int, help="only the first N images")
    p.set_defaults(func=run)


def pairs(data: Path) -> list[tuple[Path, Path]]:
    """(image, ground truth) pairs of a folder laid out as im/NAME.* + gt/NAME.png."""
    found = []
    for image in sorted((data / "im").iterdir()) if (data / "im").is_dir() else []:
        gt = data / "gt" / (image.stem + ".png")
        if gt.is_file():
            found.append((image, gt))
    if not found:
        raise InputError(f"{data} has no im/NAME + gt/NAME.png pairs.")
    return found


def run(args) -> int:
    predictor = runtime.ModelCache().get(args.model, "segment", args.device, args.weights)
    rows = pairs(Path(args.data))[: args.limit]
    scores = {"plain": [], "refined": []}
    seconds = {"net": 0.0, "refine": 0.0}
    for image_path, gt_path in rows:
        image = io.read_image(image_path).pixels[..., :3]
        gt = cv2.imread(str(gt_path), cv2.IMREAD_GRAYSCALE)
        t0 = time.perf_counter()
        low = predictor.predict_map(image)
        t1 = time.perf_counter()
        refined = segment.refine_mask(image, low)
        t2 = time.perf_counter()
        seconds["net"] += t1 - t0
        seconds["refine"] += t2 - t1
        plain = np.clip(ops.resize(low, *image.shape[:2]), 0, 1)
        for name, pred in (("plain", plain), ("refined", refined)):
            scores[name].append([fn(pred, gt) for _, fn in METRICS])
    n = len(rows)
    print(f"model {args.model} on {args.data}: {n} images")
    print(f"{'':18}{'plain':>10}{'refined':>10}")
    means = {k: np.mean(v, axis=0) for k, v in scores.items()}
    for i, (name, _) in enumerate(METRICS):
        print(f"{name:18}{means['plain'][i]:10.4f}{means['refined'][i]:10.4f}")
    print(f"{'s/image':18}{seconds['net'] / n:10.4f}{(seconds['net'] + seconds['refine']) / n:10.4f}")
    return 0
