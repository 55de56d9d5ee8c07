"""What ``mattekit bench speed`` prints of its comparison: the tools' figures side by side, per stage, and the
masks of the two tools compared per image against a stated tolerance."""

from __future__ import annotations

import statistics
from pathlib import Path

from .speed_tools import STAGES

TOLERANCE = {"mad": 0.02, "iou": 0.90}  # means over the images; see _tolerance_note


def _alpha(path: Path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGBA"), np.float32)[..., 3] / 255.0


def agreement(files: list[Path], work: Path) -> dict:
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
    return {
        "compared": len(mads),
        "mad_mean": float(np.mean(mads)),
        "mad_max": float(np.max(mads)),
        "iou_mean": float(np.mean(ious)),
        "iou_min": float(np.min(ious)),
        "ok": bool(np.mean(mads) <= TOLERANCE["mad"] and np.mean(ious) >= TOLERANCE["iou"]),
    }


def _tolerance_note() -> str:
    return (
        f"tolerance: mean MAD <= {TOLERANCE['mad']} and mean IoU >= {TOLERANCE['iou']}; mattekit's network output "
        "matches eager PyTorch (above); the two tools' masks differ where the model's catalog entry does not copy "
        "rembg's resampling (Lanczos on 8-bit values), and stand-in weights give soft masks, where IoU at 0.5 is "
        "touchiest"
    )


def print_comparison(f: dict) -> bool:
    """Print the comparison's figures (``f``: :func:`mattekit_bench.speed._compare`'s); False where the masks are
    outside the tolerance."""
    s = f["summary"]
    load = " -> ".join(f"{x:.1f}" for x in f["load_average"])
    print(f"bench speed: {f['images']} images from {f['folder']}, model {f['model']} ({Path(f['weights']).name})")
    print(f"{f['machine']}; load average {load}")
    print(f"the tools take turns every {f['chunk']} images (ABBA), {f['repeat']} pass(es) over the folder")
    print(
        f"{'':30s}{'images/s':>9s}{'loop s':>9s}{'start s':>9s}{'e2e img/s':>10s}{'CPU s/img':>10s}{'peak RSS MB':>12s}"
    )
    for tool, r in s.items():
        print(
            f"{tool:30s}{r['images_per_s']:9.3f}{r['loop_s']:9.2f}{r['startup_s']:9.2f}"
            f"{r['end_to_end_per_s']:10.3f}{r['cpu_s'] / r['images']:10.3f}{r['maxrss_mb']:12.0f}"
        )
    for tool, r in s.items():
        what = (
            f"rembg {r.get('version', '')}, onnxruntime {r.get('onnxruntime', '')}, `rembg p` defaults"
            if tool == "rembg"
            else f"{r.get('engine', '?')}, {r.get('plan', '')}, {r.get('device_name', '')}"
        )
        print(f"  {tool}: {what}")
        if "cuda_peak_mb" in r:
            print(f"    peak CUDA memory {r['cuda_peak_mb']:.0f} MB; the network per shape: {r['compiled']}")
    if "rembg" in s:
        mk, rb = s["mattekit"], s["rembg"]
        pairs = [b / a for a, b in zip(mk["chunk_s"], rb["chunk_s"]) if a > 0]
        print(
            f"mattekit / rembg: {mk['images_per_s'] / rb['images_per_s']:.2f}x images/s "
            f"(per turn: median {statistics.median(pairs):.2f}x, {min(pairs):.2f}x to {max(pairs):.2f}x), "
            f"{mk['end_to_end_per_s'] / rb['end_to_end_per_s']:.2f}x end to end, "
            f"{(rb['cpu_s'] / rb['images']) / (mk['cpu_s'] / mk['images']):.2f}x less CPU time per image, "
            f"peak RSS {mk['maxrss_mb'] / rb['maxrss_mb']:.2f}x"
        )
    print("per-stage ms/image (summed over threads): " + "".join(f"{k:>12s}" for k in STAGES))
    for tool, r in s.items():
        print(f"  {tool:39s}" + "".join(f"{r['stages_ms'].get(k, 0.0):12.1f}" for k in STAGES))
    return _print_checks(f)


def _print_checks(f: dict) -> bool:
    """Print the simulated device's share of the loop, mattekit's engine against eager PyTorch and the masks against
    rembg's where measured; False where the masks are outside the tolerance."""
    s = f["summary"]
    ok = True
    held = s.get("mattekit", {}).get("simulated")
    if held:
        print(
            f"simulated device ({held['ms']:g} ms an image): held {held['held_s']:.2f} s of the {s['mattekit']['loop_s']:.2f} s "
            f"loop, busy {100 * held['held_s'] / s['mattekit']['loop_s']:.0f} %, {held['batches']} batches of "
            f"{held['images'] / max(1, held['batches']):.1f} images (padding included)"
        )
    check = s.get("mattekit", {}).get("check")
    if check:
        print(
            f"mattekit engine vs eager PyTorch (raw prediction, first {check['images']} images): "
            f"max abs diff {check['max_abs']:.2e}"
        )
    masks = f.get("masks")
    if masks and masks.get("compared"):
        print(
            f"masks vs rembg ({masks['compared']} images): mean |diff| {masks['mad_mean']:.4f} "
            f"(worst image {masks['mad_max']:.4f}), IoU@0.5 mean {masks['iou_mean']:.4f} (worst {masks['iou_min']:.4f}) "
            f"-> {'within' if masks['ok'] else 'OUTSIDE'} tolerance"
        )
        print("  " + _tolerance_note())
        ok = masks["ok"]
    return ok
