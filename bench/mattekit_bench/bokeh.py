"""``mattekit bench bokeh``: seconds and peak memory of depth of field (and enhance) on a large picture.

The picture is a synthetic photo-like scene of ``--size`` (default 4000x3000, 12 MP), and so is its depth map (a
receding background, a subject at the focal plane, a foreground bar in front of it), so every path of the renderer
runs: layers behind the focal plane, the focal plane, and a blurred foreground over a hole-filled background.
No network runs: this measures the lens-blur renderer and the enhance steps themselves.

Each figure is printed next to a reference run in the same process: a plain Gaussian blur of
the same picture with the same blur size (``cv2.GaussianBlur``, sigma = radius / 2), so the
ratio can be compared across machines. Memory is the peak resident set size of the process
while one run lasts (VmHWM reset before each run, see ``mattekit bench upscale``), and the
growth over the resident size before the run.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from mattekit import io, lens
from mattekit.ops import retouch
from mattekit.errors import MattekitError
from . import wxh
from .memory import current_rss, peak_rss, reset_peak_rss


def add_parser(kinds) -> None:
    p = kinds.add_parser(
        "bokeh",
        help="seconds and peak memory of depth of field and enhance on a 12 MP picture",
        description="Time the lens-blur renderer (depth mode and mask mode) and the enhance steps "
        "on one large picture, next to a plain Gaussian blur of the same picture.",
    )
    p.add_argument("--size", default="4000x3000", metavar="WxH", help="picture size (default 4000x3000, 12 MP)")
    p.add_argument("--strength", type=float, default=1.0, help="blur strength (default 1)")
    p.add_argument("--blades", type=int, default=0, help="aperture blades (0 = round)")
    p.add_argument("--output", help="also write the depth-mode result to this file")
    p.set_defaults(func=run)


def synthetic_scene(height: int, width: int, seed: int = 0):
    """A photo-like picture with highlights, its disparity map (1 = nearest) and a subject mask."""
    rng = np.random.default_rng(seed)
    yy = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    xx = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    noise = np.zeros((height, width), np.float32)
    for cells in (8, 32, 128):  # a few octaves of value noise
        grid = rng.random((cells * height // width + 2, cells + 2)).astype(np.float32)
        noise += cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC) / 3.0
    image = np.stack([0.25 + 0.4 * noise * (1 - yy), 0.3 + 0.3 * noise, 0.2 + 0.5 * yy * noise], -1)
    image = np.broadcast_to(image, (height, width, 3)).copy()
    r = max(2, width // 800)
    for _ in range(300):  # small lights for bokeh balls
        y, x = int(rng.integers(0, max(1, height // 2))), int(rng.integers(0, width))
        cv2.circle(image, (x, y), int(rng.integers(r, 3 * r)), tuple(float(v) for v in 0.7 + 0.3 * rng.random(3)), -1)
    mask = np.zeros((height, width), np.float32)
    cv2.ellipse(mask, (width // 2, int(height * 0.6)), (width // 7, int(height * 0.38)), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 1.0)
    image = image * (1 - mask[..., None]) + mask[..., None] * np.array([0.8, 0.55, 0.45], np.float32) * (
        0.8 + 0.2 * noise[..., None]
    )
    depth = (0.05 + 0.35 * yy + 0.05 * xx).astype(np.float32) * np.ones_like(xx)
    depth = depth * (1 - mask) + 0.7 * mask
    bar = np.zeros_like(mask)
    bar[int(height * 0.7) :, : width // 8] = 1.0
    image = image * (1 - bar[..., None]) + bar[..., None] * np.array([0.15, 0.12, 0.1], np.float32)
    depth = np.where(bar > 0, 0.95, depth).astype(np.float32)
    return np.clip(image, 0, 1).astype(np.float32), depth, mask


def _measure(label: str, fn, reference: float | None = None) -> tuple[float, object]:
    reset_peak_rss()
    before = current_rss()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    peak = peak_rss()
    ratio = f"{seconds / reference:8.1f}x" if reference else f"{'1.0x':>9}"
    print(
        f"{label:<34} {seconds:8.2f} s {ratio}   peak {peak / 2**30:6.2f} GiB   (+{max(0, peak - before) / 2**30:.2f} GiB)"
    )
    return seconds, result


def run(args) -> int:
    width, height = wxh(args.size, "--size")
    if width < 16 or height < 16:
        raise MattekitError(f"--size {args.size} is too small; give at least 16x16.")
    image, depth, mask = synthetic_scene(height, width)
    radius = lens.blur_radius(height, width, args.strength)
    print(
        f"bokeh benchmark: {width}x{height} ({width * height / 1e6:.1f} MP), blur radius {radius:.0f} px, "
        f"cv2 threads {cv2.getNumThreads()}, a synthetic scene"
    )
    print(f"{'run':<34} {'time':>10} {'vs ref':>9}   memory")
    sigma = radius / 2
    ref, _ = _measure("reference: Gaussian blur", lambda: cv2.GaussianBlur(image, (0, 0), sigma))
    common = dict(highlight_gain=2.0, blades=args.blades)
    _, out = _measure("bokeh, depth mode (focus 0.7)", lambda: lens.render(image, depth, 0.7, radius, **common), ref)
    _measure("bokeh, depth + subject mask", lambda: lens.render(image, depth, 0.7, radius, subject=mask, **common), ref)
    zeros = np.zeros_like(depth)
    _measure("bokeh, mask mode", lambda: lens.render(image, zeros, 1.0, radius, subject=mask, **common), ref)
    _measure("enhance (wb + contrast + denoise)", lambda: retouch.enhance(image), ref)
    if args.output:
        io.write_image(args.output, out)
    return 0
