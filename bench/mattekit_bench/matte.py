"""``mattekit bench matte``: alpha matting quality and speed against closed-form matting.

On a folder laid out as ``im/NAME.*``, ``gt/NAME.png`` (ground-truth alpha) and trimaps in
``trimap/NAME.png`` or ``trimap/SET/NAME.png`` (the alphamatting.com layout: Trimap1,
Trimap2, ...), prints per trimap set one line per image (its half: even index in sorted order =
tuning, odd = report) and the means, over the trimaps' unknown regions:

- SAD: sum of absolute differences / 1000;
- MSE: mean squared error x 1e3;
- gradient error: sum of squared differences of Gaussian-derivative (sigma 1.4) gradient
  magnitudes / 1000 (the Deep Image Matting definition);
- seconds of the alpha estimation alone (files already read), and closed-form's over mattekit's,

for mattekit's matting and for closed-form matting (Levin et al.) as implemented by pymatting
(``estimate_alpha_cf``, run in the same process after a warm-up). ``--model`` adds a trimap-free
table (:func:`_trimap_free`): the plain path, the default pipeline and rembg's ``-a``.
"""

from __future__ import annotations

import contextlib
import io as io_module
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

from mattekit import io, runtime
from mattekit.options import model_choice
from mattekit.errors import InputError
from mattekit.finish.matte import MattingOptions, alpha_from_trimap
from mattekit.matting import trimap as trimaps
from mattekit.tasks import remove
from .segment import HALVES, half_of, pairs


def add_parser(kinds) -> None:
    p = kinds.add_parser(
        "matte", help="SAD, MSE, gradient error and s/image vs closed-form matting (im/, gt/, trimap/)"
    )
    p.add_argument("--data", required=True, help="folder with im/, gt/ (alpha) and trimap/ or trimap/SET/ (0/128/255)")
    p.add_argument(
        "--trimaps", nargs="*", metavar="SET", help="trimap sets under trimap/ (default: all, or trimap/ itself)"
    )
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--refine", type=int, default=0, help="extra full-resolution iterations for mattekit's matting")
    p.add_argument("--no-reference", action="store_true", help="skip closed-form matting (pymatting)")
    p.add_argument(
        "--model", help="also score trimap-free alpha of this segmentation model: plain, default and rembg -a"
    )
    p.add_argument("--weights", help="weights file for --model instead of the catalog's")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run)


def gradient_error(alpha: np.ndarray, gt: np.ndarray, region: np.ndarray, sigma: float = 1.4) -> float:
    """Sum over ``region`` of (|grad alpha| - |grad gt|)^2 / 1000, alphas in [0,1].

    Gradients as in the Deep Image Matting evaluation: a 2-D Gaussian-derivative kernel (the
    derivative along one axis, the Gaussian along the other, cut where the Gaussian falls
    below 1 % of its peak density), scaled to unit L2 norm, applied with replicated borders.
    """
    half = int(np.ceil(sigma * np.sqrt(-2.0 * np.log(np.sqrt(2 * np.pi) * sigma * 1e-2))))
    u = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-(u**2) / (2 * sigma**2)) / (sigma * np.sqrt(2 * np.pi))
    kx = np.outer(gauss, -u * gauss / sigma**2)  # rows: Gaussian, columns: its derivative
    kx /= np.sqrt((kx**2).sum())
    kx = kx[::-1, ::-1].copy()  # convolution, as the reference code

    def magnitude(a):
        a = a.astype(np.float64)
        gx = cv2.filter2D(a, cv2.CV_64F, kx, borderType=cv2.BORDER_REPLICATE)
        gy = cv2.filter2D(a, cv2.CV_64F, kx.T.copy(), borderType=cv2.BORDER_REPLICATE)
        return np.sqrt(gx**2 + gy**2)

    return float(((magnitude(alpha) - magnitude(gt))[region] ** 2).sum() / 1000.0)


def scores(alpha: np.ndarray, gt: np.ndarray, unknown: np.ndarray) -> tuple[float, float, float]:
    """(SAD / 1000, MSE x 1e3, gradient error / 1000) over the unknown region."""
    diff = alpha.astype(np.float64)[unknown] - gt.astype(np.float64)[unknown]
    mse = float((diff**2).mean() * 1e3) if diff.size else 0.0
    return float(np.abs(diff).sum() / 1000.0), mse, gradient_error(alpha, gt, unknown)


def _grey(path: Path) -> np.ndarray:
    return io.read_image(path).pixels[..., 0]


def layout(data: Path, sets: list[str] | None) -> tuple[list[tuple[str, Path]], dict[str, Path]]:
    """([(name, image)], {set name: trimap folder}) of a benchmark folder; InputError when malformed."""
    if not (data / "im").is_dir() or not (data / "gt").is_dir() or not (data / "trimap").is_dir():
        raise InputError(f"{data} must hold im/, gt/ and trimap/ folders.")
    images = [(image.stem, image) for image, _ in pairs(data)]
    found = {p.name: p for p in sorted((data / "trimap").iterdir()) if p.is_dir()}
    if not found:
        found = {"trimap": data / "trimap"}
    if sets:
        missing = [s for s in sets if s not in found]
        if missing:
            raise InputError(f"No trimap set {missing[0]} under {data / 'trimap'}; there are: {', '.join(found)}.")
        found = {s: found[s] for s in sets}
    return images, found


def _closed_form():
    """pymatting's closed-form matting, warmed up (its JIT compilation is not timed); None if missing."""
    try:
        from pymatting import estimate_alpha_cf
    except ImportError:
        return None
    image, tri = _warm_up()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io_module.StringIO()):
        warnings.simplefilter("ignore")
        estimate_alpha_cf(image.astype(np.float64), tri.astype(np.float64))

    def run(image, trimap):
        fg, bg, unknown = trimaps.split(trimap)
        if not (fg.any() and bg.any()):
            return fg.astype(np.float64)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io_module.StringIO()):
            warnings.simplefilter("ignore")  # pymatting prints (not warns) when its preconditioner struggles
            return np.clip(estimate_alpha_cf(image.astype(np.float64), trimap.astype(np.float64)), 0.0, 1.0)

    return run


def _table(title: str, columns: list[str], rows: list[tuple[str, list[float], str]]) -> None:
    widths = [max(14, len(c) + 2) for c in columns]
    print(title)
    print(f"{'':20}" + "".join(f"{c:>{w}}" for c, w in zip(columns, widths)))
    for name, values, fmt in rows:
        print(f"{name:20}" + "".join(f"{v:>{w}{fmt}}" for v, w in zip(values, widths)))


def run(args) -> int:
    data = Path(args.data)
    images, sets = layout(data, args.trimaps)
    images = images[: args.limit]
    reference = None if args.no_reference else _closed_form()
    options = MattingOptions(extra_iterations=args.refine)
    pictures = {
        name: (io.read_image(path).pixels[..., :3], _grey(data / "gt" / (name + ".png"))) for name, path in images
    }
    alpha_from_trimap(*_warm_up(), options)
    methods = {"mattekit": lambda im, t: alpha_from_trimap(im, t, options)}
    if reference is not None:
        methods["closed-form"] = reference
    halves = {name: half_of(i) for i, (name, _) in enumerate(images)}
    print(f"alpha matting on {data}: halves by index in sorted order, even = tuning, odd = report")
    for set_name, folder in sets.items():
        rows = []  # (name, {method: (sad, mse, grad, seconds)})
        _row_header(list(methods))
        for name, _ in images:
            path = next((p for p in sorted(folder.glob(name + ".*"))), None)
            if path is None:
                continue
            image, gt = pictures[name]
            trimap = trimaps.normalise(_grey(path))
            row = _scored(methods, image, trimap, gt)
            rows.append((name, row))
            _row(name, set_name, halves[name], row)
        if not rows:
            print(f"trimap set {set_name}: no trimaps named like the images, skipped")
            continue
        _summary(set_name, rows, list(methods), halves)
        print()
    if reference is None and not args.no_reference:
        print("closed-form reference skipped: pymatting is not installed (pip install pymatting)")
    if args.model:
        _trimap_free(args, images, pictures)
    return 0


def _scored(methods: dict, image: np.ndarray, trimap: np.ndarray, gt: np.ndarray) -> dict:
    """{method: (SAD, MSE, gradient, seconds)} of each of ``methods`` (name: fn(image, trimap) -> alpha) on one
    image, scored against ``gt`` in the trimap's unknown region; only the method's call is timed."""
    unknown = trimaps.split(trimap)[2]
    row = {}
    for method, fn in methods.items():
        t0 = time.perf_counter()
        alpha = fn(image, trimap)
        seconds = time.perf_counter() - t0  # before scoring: only the method is timed
        row[method] = (*scores(alpha, gt, unknown), seconds)
    return row


def _summary(set_name: str, rows: list, cols: list[str], halves: dict) -> None:
    """Print one trimap set's means per method (``rows``: (image name, {method: scores})) and, beside the
    closed-form reference, each half's SAD, the speed-up and the images where mattekit's SAD is higher."""
    means = {m: np.mean([r[m] for _, r in rows], axis=0) for m in cols}
    _table(
        f"trimaps {set_name}: {len(rows)} images, means",
        cols,
        [
            ("SAD (/1000)", [means[m][0] for m in cols], ".3f"),
            ("MSE (x1e3)", [means[m][1] for m in cols], ".3f"),
            ("gradient (/1000)", [means[m][2] for m in cols], ".3f"),
            ("s/image", [means[m][3] for m in cols], ".3f"),
        ],
    )
    if "closed-form" in cols:
        for half in HALVES:
            part = [r for n, r in rows if halves[n] == half]
            if part:
                sad = {m: np.mean([r[m][0] for r in part]) for m in cols}
                print(
                    f"  {half} half ({len(part)} images): SAD mattekit {sad['mattekit']:.3f} "
                    f"closed-form {sad['closed-form']:.3f}"
                )
        losses = [n for n, r in rows if r["mattekit"][0] > r["closed-form"][0]]
        print(
            f"mattekit is {means['closed-form'][3] / max(means['mattekit'][3], 1e-9):.1f}x faster than "
            f"closed-form matting; higher SAD on {len(losses)} of {len(rows)} images"
            + (f" ({', '.join(losses)})" if losses else "")
        )


_SHORT = {"mattekit": "mk", "closed-form": "cf"}


def _row_header(methods: list[str]) -> None:
    head = f"{'image':10}{'set':10}{'half':8}"
    for m in methods:
        head += "".join(f"{_SHORT[m] + ' ' + c:>10}" for c in ("SAD", "MSE", "grad", "s"))
    print(head + (f"{'cf s/mk s':>11}" if len(methods) > 1 else ""))


def _row(name: str, set_name: str, half: str, row: dict[str, tuple]) -> None:
    """One image: each method's SAD / MSE / gradient error and seconds, and the speed ratio."""
    line = f"{name:10}{set_name:10}{half:8}" + "".join(f"{v:>10.3f}" for m in row for v in row[m])
    if len(row) > 1:
        line += f"{row['closed-form'][3] / max(row['mattekit'][3], 1e-9):>11.1f}"
    print(line, flush=True)


def _warm_up() -> tuple[np.ndarray, np.ndarray]:
    """What a matting method is warmed up on: a random 64 x 64 photo (float32) and a trimap of it (0 / 0.5 / 1)."""
    image = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    tri = np.full((64, 64), 0.5, np.float32)
    tri[:16], tri[-16:] = 0.0, 1.0
    return image, tri


REMBG_ALPHA = (240, 10, 10)  # rembg -a's defaults: foreground threshold, background threshold, erode size


def rembg_trimap(mask: np.ndarray) -> np.ndarray:
    """rembg's ``-a`` trimap from a mask (H x W float [0,1], made 8-bit as rembg's mask is): above the
    foreground threshold / below the background threshold, each eroded by a square of the erode size
    (the image border counts as background for the subject, as subject for the background); the rest
    unknown. H x W float32 0 / 0.5 / 1."""
    fg_at, bg_at, size = REMBG_ALPHA
    eight = np.round(np.clip(mask, 0, 1) * 255).astype(np.uint8)
    kernel = np.ones((size, size), np.uint8)
    fg = cv2.erode((eight > fg_at).astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    bg = cv2.erode((eight < bg_at).astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=1)
    trimap = np.full(mask.shape, 0.5, np.float32)
    trimap[fg > 0], trimap[bg > 0] = 1.0, 0.0
    return trimap


def _trimap_free(args, images, pictures) -> None:
    """Trimap-free alpha of a segmentation model, per image: whole-image SAD (sum |alpha - gt| / 1000) and
    the mean |alpha - gt| over the ground truth's partial pixels (0 < gt < 1), with seconds per image (the
    network included), for the plain path (``mask-preview``), the default pipeline (``remove --result
    alpha``) and rembg's ``-a`` (closed-form matting by pymatting on rembg's trimap of the plain mask)."""
    from mattekit.tasks import mask_preview

    predictor = runtime.ModelCache().get(
        model_choice(args.model, "segment"), args.device, getattr(args, "weights", None)
    )
    cutout = remove.TASK.make_options({"result": "alpha"})
    methods = {
        "plain": lambda image: mask_preview.TASK.run(
            {"model": predictor}, {"image": image}, mask_preview.TASK.make_options({})
        )["mask"],
        "default": lambda image: remove.TASK.run({"model": predictor}, {"image": image}, cutout)["result"],
    }
    closed_form = _closed_form()
    if closed_form is not None:
        methods["rembg -a"] = lambda image: closed_form(image, rembg_trimap(methods["plain"](image)))
    found = {}  # (method, half) -> [(sad, partial error, seconds)]
    for index, (name, _) in enumerate(images):
        image, gt = pictures[name]
        partial = (gt > 0) & (gt < 1)
        for method, fn in methods.items():
            t0 = time.perf_counter()
            alpha = np.clip(np.asarray(fn(image), np.float32), 0, 1)
            seconds = time.perf_counter() - t0
            error = np.abs(alpha - gt)
            found.setdefault((method, half_of(index)), []).append(
                (float(error.sum()) / 1000, float(error[partial].mean()) if partial.any() else 0.0, seconds)
            )
    print(f"trimap-free alpha, {args.model}: whole-image SAD (/1000), mean |error| on partial pixels, s/image")
    print(f"{'method':12}{'half':8}{'images':>7}{'SAD':>10}{'partial':>10}{'s/image':>10}")
    for method in methods:
        for half in HALVES:
            rows = found.get((method, half))
            if rows:
                sad, part, sec = np.mean(rows, axis=0)
                print(f"{method:12}{half:8}{len(rows):7d}{sad:10.3f}{part:10.4f}{sec:10.3f}")
    if closed_form is None:
        print("rembg -a skipped: pymatting is not installed (pip install pymatting)")
