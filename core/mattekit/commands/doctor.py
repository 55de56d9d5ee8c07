"""``mattekit doctor``: what this machine gives mattekit (CPU features, GPU, memory) and, per model, the
device, engine and precision it will run with, and whether its weights are here. Loads no model."""
from __future__ import annotations

import platform

CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")  # shown when present


def add_parser(sub) -> None:
    p = sub.add_parser("doctor", help="show the machine, the GPU and how each model will run (device, engine, precision)",
                       description="Print the CPU's features, memory, torch and its GPU support, then one line per "
                                   "catalog model: its weights, and the device, engine and precision it runs with "
                                   "for the --device given. Loads no model.")
    p.add_argument("--device", default="auto", help="the device to plan for: auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--task", help="only the models of this task (segment, matte, upscale, depth, prompt)")
    p.set_defaults(func=run)


def cpu_summary() -> str:
    """'MODEL NAME, N cores; features: avx2 avx512f ...' from /proc/cpuinfo where there is one."""
    from .. import machine

    model, flags = machine.cpu_info() or ("", frozenset())
    model = model or platform.processor() or platform.machine()
    shown = " ".join(f for f in CPU_FLAGS if f in flags) or "none of " + ", ".join(CPU_FLAGS)
    return f"{model}, {machine.cpu_count()} cores; features: {shown}"


def run(args) -> int:
    import torch

    from .. import catalog, machine
    from ..engines import choice, gpus, policy
    from ..runtime import engine_plan

    print(f"CPU: {cpu_summary()}")
    print(f"  native bf16: {'yes' if policy.native_cpu_bf16() else 'no'}; memory available: "
          f"{machine.available_ram() / (1 << 30):.1f} GiB")
    found = gpus.found()
    cuda = found.torch_cuda
    print(f"torch {torch.__version__} ({'CUDA ' + cuda if cuda else 'CPU-only build'}); "
          f"ONNX Runtime: {'yes' if policy.onnx_available() else 'no (pip install mattekit[onnx])'}")
    for index, (name, gib) in enumerate(found.cuda):
        print(f"  cuda:{index}: {name}, {gib:.0f} GiB")
    if found.mps:
        print("  mps: Apple MPS")
    if found.nvidia and not found.cuda:
        name, driver = found.nvidia[0]
        print(f"  nvidia-smi lists {name} (driver {driver}) but torch cannot use it: "
              f"{gpus.idle_reason(found, 'auto', 'torch')}")
    elif cuda and not found.cuda:
        print("  no usable CUDA GPU (driver or device missing)")
    device = policy.select_device(args.device)  # an absent device is one sentence here, as in every command
    cat = catalog.load()
    print(f"CPU class {choice.cpu_class()}: the CPU engine of a model measured on it (`mattekit bench engines`) is the "
          f"faster one; the others follow the rule (torch with NNPACK, else ONNX Runtime)")
    rows = [("model", "task", "weights", "device", "engine", "precision", "why this engine")]
    for entry in cat.models.values():
        if args.task not in (None, entry.task):
            continue
        dev, backend, dtype = engine_plan(entry, device)
        rows.append((entry.name, entry.task, cat.availability(entry), str(dev), backend, str(dtype).replace("torch.", ""),
                     _why(entry, dev, dtype)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip())
    return 0


def _why(entry, device, dtype) -> str:
    """Why ``entry`` runs on the engine doctor shows: the net family's one backend (shown as "catalog"), the catalog's measured bf16, a measurement (its
    ratio), or the rule."""
    import os

    import torch

    from .. import runtime
    from ..engines import choice

    if runtime.pinned_backend(entry):  # the net family runs on one backend only
        return "catalog"
    if os.environ.get("MATTEKIT_BACKEND", "auto").lower() not in ("", "auto"):
        return "$MATTEKIT_BACKEND"
    if device.type != "cpu":
        return "not a CPU"
    if dtype is torch.bfloat16:  # ONNX Runtime runs fp32 only
        asked = os.environ.get("MATTEKIT_PRECISION", "auto").lower() not in ("", "auto")
        return "$MATTEKIT_PRECISION" if asked else "bf16 (catalog, native here)"
    found = choice.measured(entry.name)
    if found is None:
        return "rule"
    return f"measured ({found[1]}): torch/onnx {found[0]['ratio']:.2f}x"

