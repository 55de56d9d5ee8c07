"""``mattekit bench segment``: mask quality of segmentation models on images with ground-truth masks.

For each model: the plain model (its network output bilinearly upsampled), the default pipeline
(``mattekit remove --result alpha``: edge refinement and matting; for a matting model such as
modnet-portrait, ``mattekit matte --model NAME --result alpha``, its own alpha) and, when the model has an ONNX
file among its catalog sources and onnxruntime is installed, that ONNX file run by ONNX Runtime
with rembg's preprocessing. Images are split in sorted order: even-indexed ones are the tuning half
(where defaults may be chosen), odd-indexed ones the report half (figures to quote).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np

from mattekit import catalog, io, runtime, weights
from . import metrics
from mattekit.ops.pixels import unit_float
from mattekit.ops.resizing import lanczos
from mattekit.options import model_choice
from mattekit.errors import InputError, MattekitError, WeightsError
from mattekit.progress import shown
from mattekit.tasks import matte, remove

METRICS = (("IoU", metrics.iou), ("MAE", metrics.mae), ("boundary F", metrics.boundary_f))
HALVES = ("tuning", "report")
METHODS = ("plain model", "default pipeline", "onnxruntime (rembg)")


def add_parser(kinds) -> None:
    p = kinds.add_parser("segment", help="IoU, MAE and boundary F of segmentation models on a folder with im/ and gt/")
    p.add_argument(
        "--data",
        required=True,
        help="folder with im/ (images) and gt/ (masks named like the images, .png; 128 = ignore)",
    )
    p.add_argument(
        "--model",
        action="append",
        help="segmentation or matting model (repeatable); default: every "
        "segmentation model whose weights are available without a download",
    )
    p.add_argument("--weights", help="weights file instead of the catalog's (one --model only)")
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


def half_of(index: int) -> str:
    """The half image ``index`` (in sorted order) belongs to: even -> "tuning", odd -> "report"."""
    return HALVES[index % 2]


def scores(alpha: np.ndarray, gt: np.ndarray) -> list[float]:
    """[IoU, MAE, boundary F] of an alpha (H x W float [0,1]) against a 0/128/255 mask (H x W uint8)."""
    return [float(fn(alpha, gt)) for _, fn in METRICS]


class _KeepingOutput:
    """A predictor passed to the task that keeps its network output, so the plain model and the
    pipeline are scored on one inference."""

    def __init__(self, predictor):
        self.predictor = predictor
        self.output = None

    def __getattr__(self, name: str):
        return getattr(self.predictor, name)  # what the tasks ask of the model (its task, upsampling...)

    def __call__(self, x):
        self.output = self.predictor(x)
        return self.output


# rembg's sessions (rembg/sessions/*.py): (mean, std, input side) of the models it ships that the catalog has.
REMBG_PREPROCESSING = {
    "u2net": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 320),
    "u2netp": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 320),
    "u2net-human-seg": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 320),
    "isnet-general-use": ((0.485, 0.456, 0.406), (1.0, 1.0, 1.0), 1024),
}


class RembgReference:
    """An ONNX file of a model rembg ships, run by ONNX Runtime as rembg runs it: the 8-bit image
    resized (PIL Lanczos) to the session's square size, divided by its max, the session's mean/std; the
    first output min-max normalised, floored to 8 bits and resized back with PIL's Lanczos."""

    def __init__(self, name: str, path: Path):
        import onnxruntime as ort

        mean, std, self.side = REMBG_PREPROCESSING[name]
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def alpha(self, image: np.ndarray) -> np.ndarray:
        """sRGB H x W x 3 (uint8, or float [0,1] rounded to 8 bits first) -> alpha H x W float32 [0,1]."""
        eight = (
            image[..., :3] if image.dtype == np.uint8 else np.round(unit_float(image[..., :3]) * 255).astype(np.uint8)
        )
        x = lanczos(eight, self.side, self.side) * np.float32(255)
        x = x / max(float(x.max()), 1e-6)
        x = (x - self.mean) / self.std
        feed = {self.session.get_inputs()[0].name: x.transpose(2, 0, 1)[None].astype(np.float32)}
        low = self.session.run(None, feed)[0][0, 0]
        low = (low - low.min()) / max(float(low.max() - low.min()), 1e-12)
        eights = (low * 255).astype(np.uint8)
        return lanczos(eights, *image.shape[:2])


def reference_for(entry, weights_path: str | None = None) -> RembgReference | None:
    """rembg's pipeline on ``entry``'s ONNX file (``weights_path`` when that is an .onnx file, else the
    catalog's ONNX source), or None: a model rembg does not ship, onnxruntime missing, or the ONNX file not
    to be had (e.g. offline: a warning says so)."""
    if entry.name not in REMBG_PREPROCESSING:
        return None
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    if weights_path and str(weights_path).endswith(".onnx"):
        return RembgReference(entry.name, Path(weights_path))
    source = next((wf for wf in entry.files if wf.name.endswith(".onnx")), None)  # its ONNX file, if any
    if source is None:
        return None
    try:
        return RembgReference(entry.name, weights.fetch_first([source], progress=False))
    except WeightsError as exc:
        warnings.warn(f"no onnxruntime (rembg) row for {entry.name}: {exc}")
        return None


def measure(model: str, rows: list[tuple[Path, Path]], device: str = "auto", weights_path: str | None = None) -> dict:
    """{(method, half): [[IoU, MAE, boundary F] per image]} of ``model`` on ``rows`` (see :data:`METHODS`)."""
    choice = model_choice(model, ("segment", "matte"))
    entry = choice.entry
    predictor = _KeepingOutput(runtime.ModelCache().get(choice, device, weights_path))
    reference = reference_for(entry, weights_path) if entry.task == "segment" else None
    task = (remove if entry.task == "segment" else matte).TASK  # a matting model's alpha is its plain output
    options = task.make_options({"model": entry.name, "result": "alpha"})
    found: dict = {}
    with shown(len(rows), "image") as report:  # on stderr: a bar on a terminal, a line per image elsewhere
        for index, (image_path, gt_path) in enumerate(rows):
            image = io.read_image(image_path, integers=task.inputs[0].integers).pixels[..., :3]  # as the CLI reads it
            gt = cv2.imread(str(gt_path), cv2.IMREAD_GRAYSCALE)
            alphas = {"default pipeline": task.run({"model": predictor}, {"image": image}, options)["result"]}
            if entry.task == "segment":
                alphas["plain model"] = predictor.to_image(predictor.output, *image.shape[:2])
            if reference is not None:
                alphas["onnxruntime (rembg)"] = reference.alpha(image)
            for method, alpha in alphas.items():
                found.setdefault((method, half_of(index)), []).append(scores(alpha, gt))
            report(image_path.name)
    return found


def run(args) -> int:
    models = args.model or [entry.name for entry, _ in catalog.load().available("segment")]  # weights here
    if not models:
        raise MattekitError("No segmentation model's weights are available offline; name one with --model.")
    if args.weights and len(models) != 1:
        raise MattekitError("--weights needs exactly one --model.")
    rows = pairs(Path(args.data))[: args.limit]
    count = {h: len(rows[i::2]) for i, h in enumerate(HALVES)}
    print(
        f"bench segment on {args.data}: {len(rows)} images in sorted order; tuning half = even-indexed "
        f"({count['tuning']}), report half = odd-indexed ({count['report']})"
    )
    print(f"{'model':22}{'method':22}{'half':8}{'images':>7}" + "".join(f"{name:>12}" for name, _ in METRICS))
    for model in models:
        found = measure(model, rows, args.device, args.weights)
        for method in METHODS:
            for half in HALVES:
                per_image = found.get((method, half))
                if per_image:
                    means = np.mean(per_image, axis=0)
                    print(f"{model:22}{method:22}{half:8}{len(per_image):7d}" + "".join(f"{m:12.4f}" for m in means))
    return 0
