"""``mattekit doctor``: what this machine gives mattekit (CPU features, GPU, memory) and, per model, its plan (the
device, engine, precision and layout it will run with, and why: :func:`mattekit.engines.plan.decide`, the same
decision every load makes) and whether its weights are here. Loads no model."""

from __future__ import annotations

import platform

CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")  # shown when present


def add_parser(sub) -> None:
    p = sub.add_parser(
        "doctor",
        help="show the machine, the GPU and how each model will run (device, engine, precision)",
        description="Print the CPU's features, memory, torch and its GPU support, then one line per "
        "catalog model: its weights, and the device, engine and precision it runs with "
        "for the --device given. Loads no model.",
    )
    p.add_argument("--device", default="auto", help="the device to plan for: auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--task", help="only the models of this task (segment, matte, upscale, depth, prompt)")
    p.add_argument(
        "--model",
        help="the model whose whole plan is shown, field by field with its reason (default: "
        "the default segmentation model)",
    )
    p.set_defaults(func=run)


def cpu_summary() -> str:
    """'MODEL NAME, N cores; features: avx2 avx512f ...' from /proc/cpuinfo where there is one."""
    from .. import machine

    model, flags = machine.cpu_info() or ("", frozenset())
    model = model or platform.processor() or platform.machine()
    shown = " ".join(f for f in CPU_FLAGS if f in flags) or "none of " + ", ".join(CPU_FLAGS)
    return f"{model}, {machine.cpu_count()} cores; features: {shown}"


def run(args) -> int:
    from .. import catalog
    from ..engines import policy

    print_machine()
    policy.select_device(args.device)  # an absent device is one sentence here, as in every command
    cat = catalog.load()
    print_models(cat, args.task, args.device)
    print_plan(cat.get(args.model) if args.model else cat.default("segment"), args.device)
    print(default_on_cuda(cat))
    return 0


def print_machine() -> None:
    """The CPU (features, bf16, free memory), torch's build, ONNX Runtime and each GPU, as torch and the driver see it."""
    import torch

    from .. import machine
    from ..engines import gpus, policy

    print(f"CPU: {cpu_summary()}")
    print(
        f"  native bf16: {'yes' if policy.native_cpu_bf16() else 'no'}; memory available: "
        f"{machine.available_ram() / (1 << 30):.1f} GiB"
    )
    found = gpus.found()
    cuda = found.torch_cuda
    print(
        f"torch {torch.__version__} ({'CUDA ' + cuda if cuda else 'CPU-only build'}); "
        f"ONNX Runtime: {'yes' if policy.onnx_available() else 'no (pip install mattekit[onnx])'}"
    )
    for index, (name, gib) in enumerate(found.cuda):
        print(f"  cuda:{index}: {name}, {gib:.0f} GiB")
    if found.mps:
        print("  mps: Apple MPS")
    if found.nvidia and not found.cuda:
        name, driver = found.nvidia[0]
        print(
            f"  nvidia-smi lists {name} (driver {driver}) but torch cannot use it: "
            f"{gpus.idle_reason(found, 'auto', 'torch')}"
        )
    elif cuda and not found.cuda:
        print("  no usable CUDA GPU (driver or device missing)")


def print_models(cat, task: str | None, device: str) -> None:
    """This machine's engine tables, then one row per catalog model of ``task`` (all where None): its plan on
    ``device`` and why its engine."""
    from ..engines import plan

    shipped = (
        "hidden ($MATTEKIT_ENGINE_TABLE=hidden)" if plan.shipped_hidden() else f"read for CPU class {plan.cpu_class()}"
    )
    print(
        f"this machine: {plan.fingerprint()}\n  its measurements: {plan.own_table_path()}; the shipped table: "
        f"{shipped}; a model in neither runs on ONNX Runtime (`bench engines --save` measures)"
    )
    rows = [("model", "task", "weights", "device", "engine", "precision", "layout", "why this engine")]
    for entry in (entry for entry in cat.models.values() if task in (None, entry.task)):
        made = plan.decide(entry, device)
        layout = f"{made.workers}x{made.threads}"
        rows.append(
            (entry.name, entry.task, cat.availability(entry), made.device, made.engine, made.precision, layout)
            + (made.why("engine"),)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip())


def print_plan(shown, device: str) -> None:
    """The whole plan of the catalog model ``shown`` on ``device``, field by field with its why."""
    from ..engines import plan

    print(
        f"the plan of {shown.name} for --device {device} (mattekit.engines.plan.decide; the pipeline, the finish, "
        f"the temporal filter and the builder read it):"
    )
    for name, value, why in plan.decide(shown, device).lines():
        print(f"  {name:10s}{value}; why: {why}")


def default_on_cuda(cat) -> str:
    """The line saying which segmentation model runs by default on CUDA, and why."""
    return (
        f"default segmentation model on CUDA: {cat.default('segment').name}, as on the CPU (the catalog's "
        f"[defaults]); birefnet-general (fp16 on CUDA, its authors' published precision) takes over once a GPU row "
        f"shows it at 40 images/s or more beyond start-up on a folder of 200 photos or more; no such row yet"
    )
