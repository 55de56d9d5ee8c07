"""The plainest PyTorch loop next to mattekit's engine, one photo at a time (batch 1), in one process:
``python -m mattekit_bench.plain_loop --model birefnet-general --weights FILE --device cuda FOLDER``.

Both loops read each photo (OpenCV), prepare it as the catalog says (:func:`mattekit.engines.inputs.prepare`), run the
net and bring the mask (sigmoid, at the photo's size) to the host; nothing is encoded. ``eager``: the net in
``--precision`` on the device, eval mode, nothing else (what a ComfyUI node does); ``mattekit``: the engine
mattekit's commands make (:func:`mattekit.engines.build_torch`: channels-last, and on CUDA the measured choice of
:class:`mattekit.engines.compiled.Compiled`). Printed: images/s of each after one warm-up photo, the ratio, the device's
peak memory of each (CUDA), and the engine's choices.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _loop(run, entry, files, device) -> dict:
    """{"images_per_s", "peak_mb"} of ``run`` (1x3xhxw float32 CPU tensor -> logits on the device) over ``files``,
    the first one a warm-up outside the timing."""
    import cv2
    import torch
    import torch.nn.functional as F

    from mattekit.engines import inputs

    def one(path):
        image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        logits = run(inputs.prepare(entry, image))
        mask = F.interpolate(torch.sigmoid(logits.float()), size=image.shape[:2], mode="bilinear")
        return mask.mul(255).round().to(torch.uint8).cpu()

    cuda = device.type == "cuda"
    one(files[0])
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for path in files[1:]:
        one(path)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else float("nan")
    return {"images_per_s": (len(files) - 1) / seconds, "peak_mb": peak}


def main(argv: list[str] | None = None) -> int:
    import torch

    from mattekit import catalog, engines
    from mattekit.engines import select_output
    from mattekit.engines.torch_engine import dtype_named
    from .speed_setup import IMAGE_SUFFIXES

    p = argparse.ArgumentParser(prog="python -m mattekit_bench.plain_loop", description=__doc__.split("\n")[0])
    p.add_argument("folder")
    p.add_argument("--model", default="birefnet-general")
    p.add_argument("--weights", required=True, help="a weights file (e.g. bench speed's stand-in)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--precision", default="fp16", help="fp32, fp16 or bf16, for both loops")
    p.add_argument("--limit", type=int, default=41, help="photos (the first a warm-up; default 41)")
    args = p.parse_args(argv)
    entry = catalog.load().get(args.model, "segment")
    files = sorted(f for f in Path(args.folder).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)[: args.limit]
    if len(files) < 2:
        print(f"plain_loop: {args.folder} holds fewer than 2 photos.", file=sys.stderr)
        return 1
    device, dtype = engines.select_device(args.device), dtype_named(args.precision)

    net = engines.load_net(entry, Path(args.weights)).to(device=device, dtype=dtype)

    @torch.inference_mode()
    def eager(x):
        return select_output(net(x.to(device, dtype)), entry.output.index)

    figures = {"eager": _loop(eager, entry, files, device)}
    net = None  # eager's too (it reads this name): the weights are freed before the compiled copy loads
    if device.type == "cuda":
        torch.cuda.empty_cache()
    engine = engines.build_torch(
        engines.load_net(entry, Path(args.weights)),
        str(device),
        args.precision,
        entry.output.index,
        compile=engines.plan.compile_mode(None, device.type),
        label=entry.name,
        recipe={"net": entry.net, "kwargs": entry.kwargs},
    )
    figures["mattekit"] = _loop(engine, entry, files, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(
        f"plain loop: {args.model} {args.precision} batch 1 on {name}, {len(files) - 1} photos from {args.folder} "
        f"(read, prepare, net, mask to the host; no encoding)"
    )
    for key, what in (("eager", "eager PyTorch"), ("mattekit", f"mattekit's engine {engine.name}")):
        f = figures[key]
        print(f"  {what:40s}{f['images_per_s']:8.2f} images/s, peak device memory {f['peak_mb']:8.0f} MB")
    print(f"  mattekit / eager: {figures['mattekit']['images_per_s'] / figures['eager']['images_per_s']:.2f}x")
    compiled = getattr(engine, "compiled", None)
    print(f"  engine's choice: {compiled.describe() if compiled is not None else 'eager (not on CUDA)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
