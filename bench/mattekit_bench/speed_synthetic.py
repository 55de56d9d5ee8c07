"""``mattekit bench speed --synthetic N``: generated frames (a moving subject over a textured background) through
the mattekit pipeline, writing masks, with this process's RSS at the start, while it runs and at the end: memory must
stay flat however long the sequence."""

from __future__ import annotations

import sys
from pathlib import Path

from . import wxh
from .speed_setup import _Child, machine_line


def synthetic(args, cfg: dict, work: Path) -> dict:
    w, h = wxh(args.size, "--size")
    frames = work / "frames"
    print(f"bench speed: writing {args.synthetic} synthetic {w}x{h} frames to {frames}...", file=sys.stderr)
    paths = [str(p) for p in make_frames(frames, args.synthetic, w, h)]
    out = work / "masks"
    out.mkdir(exist_ok=True)
    child = _Child("mattekit", dict(cfg, out=str(out), masks=True, sample=True), work)
    try:
        run = child.run(paths)
        result = dict(child.finish(), **run)
    finally:
        child.close()
    figures = {
        "frames": args.synthetic,
        "size": [w, h],
        "model": args.model,
        "machine": machine_line(args),
        "result": result,
    }
    samples = result["rss_samples"]
    start_mb, end_mb = samples[0][1], samples[-1][1]
    warm = min(100, args.synthetic)
    steady = next((mb for n, mb in samples if n >= warm), start_mb)
    print(
        f"bench speed --synthetic: {args.synthetic} frames {w}x{h}, model {args.model}, "
        f"{result['engine']} ({result['plan']})"
    )
    print(
        f"  {result['images'] / result['loop_s']:.2f} frames/s, loop {result['loop_s']:.1f} s, "
        f"{len(result.get('failed', []))} failed"
    )
    print("  RSS MB by frames done: " + ", ".join(f"{n}: {mb:.0f}" for n, mb in samples))
    print(
        f"  RSS at start {start_mb:.0f} MB (model loaded, before the first frame; after frame {warm}: {steady:.0f} MB), "
        f"at end {end_mb:.0f} MB, peak {result['maxrss_mb']:.0f} MB; change after frame {warm}: {end_mb - steady:+.0f} MB"
    )
    figures["ok"] = end_mb - steady <= max(50.0, 0.1 * steady)
    return figures


def make_frames(folder: Path, n: int, w: int, h: int) -> list[Path]:
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
