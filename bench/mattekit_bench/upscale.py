"""``mattekit bench upscale``: PSNR/SSIM on Y against ground truth, seconds and peak memory per image.

Protocol (the SR literature's, so figures compare with published ones): the result is rounded
to 8 bits, both it and the ground truth are converted to Y of BT.601 YCbCr (16-235, as MATLAB's
rgb2ycbcr), ``scale`` pixels are cropped on each border, PSNR uses a peak of 255 and SSIM is
Wang et al.'s (11x11 Gaussian window, sigma 1.5, K = 0.01/0.03, valid region, mean). Grey
images go through the network as three equal channels, as the reference implementations do.
The bicubic baseline is Pillow's bicubic (a = -0.5, as MATLAB's imresize) of the 8-bit input.
``PSNR-RGB`` is over all three channels with no border cropped: the convention of RFDN's own test
code, in which the conformance golden's figures (32.41 / 29.12 dB on Set5 img_002 / img_005) are given.

Memory: the peak resident set size of this process while one image is processed, read from
VmHWM in /proc/self/status after resetting it (``/proc/self/clear_refs``) before each image,
so it includes the Python process, torch and the loaded model. Where that reset is not
available, it is the process-lifetime peak from resource.getrusage. On CUDA the peak of
torch's allocator (max_memory_allocated, reset per image) is printed as well.

``--size WxH`` skips the quality figures and upscales one large 8-bit picture (:func:`mattekit_bench.bokeh`'s
synthetic photo-like scene) as ``mattekit upscale`` does an 8-bit file (uint8 in, uint8 out), to report time and
peak memory, also as a multiple of the 8-bit result's size.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from mattekit import runtime
from mattekit.options import model_choice
from mattekit.errors import InputError, MattekitError
from mattekit.progress import shown
from mattekit.upscaling.superres import upscale
from . import wxh
from .memory import current_rss, peak_rss, reset_peak_rss


# ------------------------------------------------------------------------------ metrics


def y_channel(image: np.ndarray) -> np.ndarray:
    """BT.601 luma on the 16-235 scale (MATLAB rgb2ycbcr) of an 8-bit-valued image (H x W [x 3], 0..255)."""
    image = np.asarray(image, np.float64)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return 16.0 + (65.481 * image[..., 0] + 128.553 * image[..., 1] + 24.966 * image[..., 2]) / 255.0


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)


def ssim(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Mean SSIM of two single-channel images (Gaussian 11x11, sigma 1.5, valid region)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    g = cv2.getGaussianKernel(11, 1.5)
    window = g @ g.T

    def blur(x):
        return cv2.filter2D(x, -1, window)[5:-5, 5:-5]

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def to_255(x: np.ndarray) -> np.ndarray:
    """A [0,1] float image rounded to 8-bit values (float64 0..255); uint8 taken as it is."""
    x = np.asarray(x)
    return x.astype(np.float64) if x.dtype == np.uint8 else np.round(np.clip(x, 0, 1) * 255.0)


def bicubic_baseline(lr: np.ndarray, scale: int) -> np.ndarray:
    """Pillow bicubic upscaling of the 8-bit-rounded ``lr`` (H x W x 3 float [0,1]) -> uint8."""
    ints = to_255(lr).astype(np.uint8)
    size = (ints.shape[1] * scale, ints.shape[0] * scale)
    return np.asarray(Image.fromarray(ints).resize(size, Image.BICUBIC))


def sr_scores(result: np.ndarray, truth: np.ndarray, border: int) -> tuple[float, float]:
    """(PSNR, SSIM) on Y with ``border`` px cropped; both images float [0,1] or 0..255 uint8."""
    ya, yb = y_channel(to_255(result)), y_channel(to_255(truth))
    if ya.shape != yb.shape:
        raise InputError(
            f"A result of {ya.shape[1]}x{ya.shape[0]} cannot be compared with ground truth of {yb.shape[1]}x{yb.shape[0]}."
        )
    if border:
        ya, yb = ya[border:-border, border:-border], yb[border:-border, border:-border]
    return psnr(ya, yb), ssim(ya, yb)


# ------------------------------------------------------------------------------ memory


def _reset_peaks(device: torch.device) -> bool:
    """Start new peak windows for this process's RSS and (on CUDA) the GPU's allocations; False when
    the OS offers no RSS reset (peaks are then lifetime peaks)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    return reset_peak_rss()


# ------------------------------------------------------------------------------ command


def add_parser(kinds) -> None:
    p = kinds.add_parser(
        "upscale",
        help="PSNR/SSIM-Y, time and peak memory of super-resolution",
        description="Upscale the LR images of a benchmark set and score them against the HR ones "
        "(PSNR/SSIM on Y, BT.601, border of `scale` cropped), next to bicubic.",
    )
    p.add_argument("--data", help="a set folder holding x<scale>/LR and x<scale>/HR (or LR and HR) with matching names")
    p.add_argument("--model", help="upscale model (default: the catalog's)")
    p.add_argument("--weights", help="use this weights file instead of the catalog's download")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--threads", type=int, help="CPU threads for inference")
    p.add_argument("--tile", type=int, help="tile side in input pixels (default: from free memory; 0 = whole image)")
    p.add_argument("--limit", type=int, help="score only the first N images")
    p.add_argument(
        "--size", metavar="WxH", help="instead of scoring, time one WxH picture (e.g. 4000x3000) and report peak memory"
    )
    p.add_argument("--output", help="with --size: also write the result to this file (counts the writer's memory too)")
    p.set_defaults(func=run)


def _pairs(data: Path, scale: int) -> list[tuple[Path, Path]]:
    """(LR, HR) files of a set folder, matched by name (``*_LR.*`` to ``*_HR.*``, or equal names)."""
    for base in (data / f"x{scale}", data):
        if (base / "LR").is_dir() and (base / "HR").is_dir():
            break
    else:
        raise InputError(f"{data} holds no x{scale}/LR and x{scale}/HR folders (nor LR and HR).")
    hr = {p.stem: p for p in (base / "HR").iterdir() if p.is_file()}
    pairs = []
    for lr in sorted(p for p in (base / "LR").iterdir() if p.is_file()):
        key = re.sub(r"_LR$", "_HR", lr.stem)
        if key in hr or lr.stem in hr:
            pairs.append((lr, hr.get(key, hr.get(lr.stem))))
    if not pairs:
        raise InputError(f"No LR image in {base / 'LR'} has a matching HR image in {base / 'HR'}.")
    return pairs


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f}"


def run(args) -> int:
    runtime.set_threads(args.threads)
    predictor = runtime.ModelCache().get(
        model_choice(args.model, "upscale"), device=args.device, weights_path=args.weights
    )

    def run_net(image, progress=None):  # the network at its own factor, tiles as asked
        return upscale(predictor, image, tile=args.tile, progress=progress)

    device = predictor.device
    precision = str(predictor.dtype).replace("torch.", "")
    print(
        f"model {predictor.name} (x{predictor.scale}, {precision}) on {device}, "
        f"{torch.get_num_threads() if device.type == 'cpu' else 1} thread(s), tile {args.tile if args.tile is not None else 'auto'}"
    )
    if args.size:
        return _run_large(args, run_net, device)
    if not args.data:
        raise MattekitError("Give --data DIR (a benchmark set) or --size WxH (a timing run).")
    pairs = _pairs(Path(args.data), predictor.scale)[: args.limit]
    run_net(np.zeros((16, 16, 3), np.float32))  # warm-up: first-call costs are not timed
    gpu = device.type == "cuda"
    header = (
        f"{'image':<18}{'LR size':>10}{'PSNR-Y':>9}{'SSIM-Y':>9}{'bic PSNR':>9}{'bic SSIM':>9}"
        f"{'PSNR-RGB':>9}{'seconds':>9}{'peak RSS MB':>13}"
    )
    print(header + (f"{'GPU MB':>9}" if gpu else ""))
    rows = []
    resettable = True
    for lr_path, hr_path in pairs:
        row, reset = _scored(lr_path, hr_path, run_net, predictor.scale, device)
        rows.append(row)
        resettable &= reset
    m = np.mean(np.array(rows), axis=0)
    print(
        f"{f'mean of {len(rows)}':<28}{m[0]:9.2f}{m[1]:9.4f}{m[2]:9.2f}{m[3]:9.4f}{m[4]:9.2f}{m[5]:9.2f}"
        f"{_mb(int(max(r[6] for r in rows))):>13}"
    )
    print(
        f"Y = BT.601 luma (16-235) of 8-bit results, {predictor.scale}-px border cropped; SSIM 11x11 Gaussian (sigma 1.5); "
        f"bic = Pillow bicubic; PSNR-RGB = all channels, no crop (RFDN test-code convention); peak RSS = "
        + (
            "process peak resident set per image (VmHWM, reset before each image)."
            if resettable
            else "process-lifetime peak resident set (getrusage; no per-image reset on this OS)."
        )
    )
    return 0


def _scored(lr_path: Path, hr_path: Path, run_net, scale: int, device) -> tuple:
    """One pair upscaled by ``run_net`` and its printed row: ((PSNR-Y, SSIM-Y, bicubic's PSNR-Y and SSIM-Y, PSNR-RGB,
    seconds, peak RSS in bytes), whether the peaks were reset after reading the pair), the GPU's peak MB printed on
    CUDA."""
    from mattekit import io

    lr = io.read_image(lr_path).pixels[..., :3]
    hr = io.read_image(hr_path).pixels[..., :3]
    reset = _reset_peaks(device)
    start = time.perf_counter()
    sr = run_net(lr)
    seconds = time.perf_counter() - start
    peak = peak_rss()
    p, s = sr_scores(sr, hr, scale)
    bp, bs = sr_scores(bicubic_baseline(lr, scale), hr, scale)
    prgb = psnr(to_255(sr), to_255(hr))
    line = (
        f"{lr_path.stem:<18}{f'{lr.shape[1]}x{lr.shape[0]}':>10}{p:9.2f}{s:9.4f}{bp:9.2f}{bs:9.4f}"
        f"{prgb:9.2f}{seconds:9.2f}{_mb(peak):>13}"
    )
    gpu = device.type == "cuda"
    print(line + (f"{_mb(torch.cuda.max_memory_allocated(device)):>9}" if gpu else ""), flush=True)
    return (p, s, bp, bs, prgb, seconds, peak), reset


def _run_large(args, run_net, device: torch.device) -> int:
    from mattekit.ops.pixels import quantise
    from .bokeh import synthetic_scene

    width, height = wxh(args.size, "--size")
    image, what = quantise(synthetic_scene(height, width)[0]), f"synthetic {width}x{height} 8-bit picture"
    run_net(np.zeros((16, 16, 3), np.uint8))  # warm-up
    baseline = current_rss()
    resettable = _reset_peaks(device)
    start = time.perf_counter()
    with shown(0, "tile", lines=False) as tiles:  # a bar on a terminal, no lines elsewhere
        result = run_net(image, progress=tiles.steps)
    seconds = time.perf_counter() - start
    peak = peak_rss()
    line = (
        f"{what} -> {result.shape[1]}x{result.shape[0]} in {tiles.total} tiles: {seconds:.1f} s, "
        f"{width * height / seconds / 1e6:.3f} MP/s in; peak RSS {_mb(peak)} MB = {peak / result.nbytes:.2f} x the "
        f"8-bit result (input {_mb(image.nbytes)} MB, result {_mb(result.nbytes)} MB, before the call {_mb(baseline)} MB)"
    )
    if device.type == "cuda":
        line += f"; GPU peak {_mb(torch.cuda.max_memory_allocated(device))} MB"
    print(line, flush=True)
    if args.output:
        from mattekit import io

        start = time.perf_counter()
        io.write_image(args.output, result, bit_depth=8)
        print(
            f"wrote {args.output} in {time.perf_counter() - start:.1f} s; peak RSS including the write {_mb(peak_rss())} MB"
        )
    print(
        "peak RSS = "
        + (
            "process peak resident set during the call (VmHWM, reset before it)."
            if resettable
            else "process-lifetime peak resident set (getrusage)."
        )
    )
    return 0
