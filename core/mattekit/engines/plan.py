"""How a model runs here, decided once per load: :class:`Plan` (device, engine, precision, threads, workers, batch,
and the reason for each) and :func:`decide`, the one place that turns what the user asked (``auto`` or a name, and
``$MATTEKIT_BACKEND`` / ``$MATTEKIT_PRECISION``) into it, with the evidence it reads.

The engine on the CPU, for a model either engine runs (torch, mattekit's CPU engine, or ONNX Runtime on the export of
the same net): this machine's own measurement, else the table shipped with mattekit for this CPU class, else a short
measurement of both engines on first use (where the caller loads the model:
:func:`mattekit.engines.measure.measure_engines`), else ONNX Runtime, the engine that was faster in 15 of the 16 rows
ever measured. A plan is made without importing torch where it runs on the CPU. :func:`mattekit.engines.create`
builds what a plan says and decides nothing.

The tables (:func:`measured`): this machine's own, in the user's mattekit home under a fingerprint of the machine
(:func:`fingerprint`: CPU class and model, cores, torch and ONNX Runtime versions; a new fingerprint, e.g. after an
upgrade, has no measurements yet), then the one shipped with mattekit (``measured.json`` beside this module, per CPU
class, made by ``mattekit bench engines`` on the developers' machines), which ``$MATTEKIT_ENGINE_TABLE=hidden`` hides
(a machine nobody measured, for tests and benches). A table: ``{key: {model name: {"torch_s": s, "onnx_s": s, "ratio":
torch_s / onnx_s, "input": [h, w], "measured": date, "machine": CPU model}}}``, CPU seconds per call (fp32, one
thread each, turn by turn); the key is a CPU class (shipped) or a fingerprint.
"""
from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import MattekitError
from ..machine import cpu_count, cpu_info
from . import policy
from . import simulated as simulation

BACKENDS = ("auto", "torch", "onnx")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
COMPILE_MODES = ("auto", "off", "graphs", "inductor")  # how the torch engine runs a net on CUDA
EVIDENCE = "not measured here: ONNX Runtime, faster in 15 of the 16 rows measured on two CPU classes"
SHIPPED = Path(__file__).with_name("measured.json")
MARGIN = 1.05  # a measurement takes ONNX Runtime where torch takes at least 5 % more CPU time (below: noise, and no export)


def cpu_class() -> str:
    """The CPU's architecture and widest vector feature that the engines use: ``x86_64-avx512_bf16`` (AVX-512
    BF16 or AMX), ``x86_64-avx512``, ``x86_64-avx2``, ``x86_64``, or the architecture alone (``arm64``...).
    ``$MATTEKIT_CPU_CLASS`` names it instead (tests take other machines' paths with it)."""
    forced = os.environ.get("MATTEKIT_CPU_CLASS", "").strip()
    if forced:
        return forced
    arch = {"amd64": "x86_64", "aarch64": "arm64"}.get(platform.machine().lower(), platform.machine().lower())
    info = cpu_info()
    if arch != "x86_64" or info is None:
        return arch
    flags = info[1]
    for level, needs in (("avx512_bf16", ("avx512_bf16", "amx_bf16")), ("avx512", ("avx512f",)), ("avx2", ("avx2",))):
        if any(flag in flags for flag in needs):
            return f"{arch}-{level}"
    return arch


def fingerprint() -> str:
    """This machine as its measurements depend on it: 'x86_64-avx2 | AMD EPYC 7B13 | 2 cores | torch 2.13.0 |
    onnxruntime 1.23.2' (versions read without importing either)."""
    from importlib import metadata

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "none"

    info = cpu_info()
    return (f"{cpu_class()} | {info[0] if info else platform.processor() or 'unknown CPU'} | {cpu_count()} cores | "
            f"torch {version('torch')} | onnxruntime {version('onnxruntime')}")


def own_table_path() -> Path:
    """Where this machine's measurements are kept (beside the weights cache, in the user's mattekit home)."""
    from ..weights import cache_dir

    return cache_dir().parent / "engines.json"


def read_table(path: Path) -> dict:
    """The table at ``path`` ({} where it is missing or damaged)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def shipped_hidden() -> bool:
    """``$MATTEKIT_ENGINE_TABLE=hidden``: the shipped table is not read (this machine stands for one nobody measured)."""
    return os.environ.get("MATTEKIT_ENGINE_TABLE", "").strip().lower() == "hidden"


def measured(model: str) -> tuple[dict, str] | None:
    """(the measurement of ``model`` here, "this machine" | "shipped for CPU class C"), or None where no table has it."""
    tables = [(own_table_path(), fingerprint(), "this machine")]
    if not shipped_hidden():
        tables.append((SHIPPED, cpu_class(), f"shipped for {cpu_class()}"))
    for path, key, source in tables:
        row = read_table(path).get(key, {}).get(model)
        if isinstance(row, dict) and isinstance(row.get("ratio"), (int, float)) and row["ratio"] > 0:
            return row, source
    return None


def covers(entry) -> bool:
    """Whether the shipped measurements cover ``entry``'s net family (u2net, isnet, csnet, modnet, sinet...: the
    convolutional segment and matte nets): only there do measurement and the evidence choose ONNX Runtime."""
    from .. import catalog

    cat, measured_nets = catalog.load(), set()
    for rows in read_table(SHIPPED).values():
        measured_nets.update(cat.models[name].net.split(":")[0] for name in rows if name in cat.models)
    return entry.net.split(":")[0] in measured_nets


def winner(row: dict) -> str:
    """"onnx" where a measurement's torch took at least MARGIN times ONNX Runtime's time, else "torch"."""
    return "onnx" if row["ratio"] >= MARGIN else "torch"


@dataclass(frozen=True)
class Plan:
    """How one model runs: ``device`` ("cpu", "cuda", "cuda:1", "mps"), ``engine`` ("torch" | "onnx"), ``precision``
    ("fp32" | "fp16" | "bf16"), ``threads`` (CPU threads a network call uses), ``workers`` (calls at once), ``batch``
    (images a call), ``weights`` (the weights file asked for, "" for the catalog's), ``compile`` (how the torch engine
    runs the net on CUDA: :data:`COMPILE_MODES`, "off" elsewhere), ``finish`` and ``temporal`` (the torch device where
    the finish of a large photo and roto's temporal filter run: the model's GPU; "" where they run on the CPU cores'
    own path), ``simulated`` (milliseconds an image of a simulated GPU, :mod:`mattekit.engines.simulated`; None for a
    real device) and ``reasons`` ((what, why) pairs for device, engine, precision, compile, layout, finish and
    temporal). Plans that differ only in their reasons run the same engine."""
    model: str
    device: str
    engine: str
    precision: str
    threads: int
    workers: int
    batch: int
    weights: str = ""
    compile: str = "off"
    finish: str = ""
    temporal: str = ""
    simulated: float | None = None
    reasons: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> tuple:
        """What makes a loaded model: the model cache's key."""
        return self.model, self.device, self.engine, self.precision, self.weights, self.compile, self.simulated

    def why(self, what: str) -> str:
        """The reason for ``what`` ("device", "engine", "precision", "compile", "layout")."""
        return dict(self.reasons).get(what, "")

    def describe(self) -> str:
        """One line: 'u2netp: cpu, onnx, fp32, 4 workers x 1 thread (engine: measured ...)'."""
        compiled = f", compile {self.compile}" if self.compile != "off" else ""
        compiled += f", simulated {self.simulated:g} ms an image" if self.simulated is not None else ""
        return (f"{self.model}: {self.device}, {self.engine}, {self.precision}{compiled}, {self.workers} worker(s) x "
                f"{self.threads} thread(s), batch {self.batch} (engine: {self.why('engine')})")


def asked(value: str | None, variable: str, allowed: tuple[str, ...], what: str) -> str:
    """``value`` lower case, or for ``auto`` (None) ``$variable`` where set; one sentence when not in ``allowed``."""
    name = (value or "auto").lower()
    if name == "auto":
        name = os.environ.get(variable, "auto").lower() or "auto"
    if name not in allowed:
        raise MattekitError(f"{what} '{name}' is unknown; use {', '.join(allowed[:-1])} or {allowed[-1]}.")
    return name


def decide(entry, device: str | None = "auto", backend: str | None = "auto", precision: str | None = "auto",
           weights_path: str | None = None, loading: bool = False, measure=None) -> Plan:
    """The plan for catalog ``entry`` as asked (names or ``auto``/None; ``device`` may be a torch.device). An asked
    device that is absent, an engine or precision that cannot run here: one sentence. ``loading``: the caller loads the
    model now: its memory is checked (:func:`check_memory`, before its weights are looked for). ``measure(entry,
    weights_path) -> row``: where no table has the model, how the caller times both CPU engines now
    (:func:`mattekit.engines.measure.measure_engines`, which loads the model); None: the evidence decides."""
    engine_asked = pinned_backend(entry) or asked(backend, "MATTEKIT_BACKEND", BACKENDS, "Backend")
    precision_asked = asked(precision, "MATTEKIT_PRECISION", PRECISIONS, "Precision")
    simulated = simulation.asked()
    dev, device_why = _device(None if device is None else str(device), engine_asked, simulated)
    kind = dev.split(":")[0]
    simulated = simulated if kind == "cuda" else None
    if loading:
        check_memory(entry, kind)
    wanted, precision_why = _precision(entry, kind, precision_asked)
    engine, engine_why = _engine(entry, kind, engine_asked, wanted, weights_path, measure)
    if engine == "onnx" and wanted != "fp32":
        if precision_asked != "auto":
            raise MattekitError("The onnx backend runs in fp32 only; leave --precision at auto or fp32.")
        wanted, precision_why = "fp32", "ONNX Runtime runs fp32 only"
    threads, workers, batch, layout_why = layout(entry, kind, engine)
    compiled, compile_why = _compile(kind, engine)
    finish, finish_why, temporal, temporal_why = _model_device_work(dev, simulated)
    return Plan(entry.name, dev, engine, wanted, threads, workers, batch, str(weights_path or ""), compiled, finish,
                temporal, simulated, (("device", device_why), ("engine", engine_why), ("precision", precision_why),
                                      ("compile", compile_why), ("layout", layout_why), ("finish", finish_why),
                                      ("temporal", temporal_why)))


def _model_device_work(device: str, simulated: float | None) -> tuple[str, str, str, str]:
    """(finish device, why, temporal filter device, why) for a model on ``device``: the model's GPU for both (the
    finish only for photos of 1 MP and up: :func:`mattekit.subject.masks.device_of`), "" (the CPU cores' own
    path) elsewhere; a simulated GPU's torch work runs on torch's CPU device, computing what the GPU would."""
    if device.split(":")[0] != "cuda":
        where = "the CPU cores' own path: the model is not on a CUDA GPU"
        return "", where, "", where
    if simulated is not None:
        where = "the model's device, simulated: its torch work runs on torch's CPU device"
        return "cpu", where, "cpu", where
    return (device, "the model's GPU for photos of 1 MP and up (H200: 50 MP in 2.15 s against 3.50 s on 16 cores)",
            device, "the model's GPU at any size (the CPU's filter: 90-130 ms a 854x480 frame on 2 cores)")


def release_as_is(plan: Plan, entry) -> Plan:
    """``plan`` for weights that are an ONNX release whose layers the net family cannot take (rembg's BiRefNet
    files): the file runs as it is, on ONNX Runtime on the CPU (the weights decide, so the builder says it)."""
    threads, workers, batch, why = layout(entry, "cpu", "onnx")
    reasons = dict(plan.reasons, device="the weights are an ONNX release run as it is, on the CPU",
                   engine="an ONNX release whose layers the net does not take", precision="the release's own",
                   layout=why)
    reasons["compile"] = "compiled only on CUDA"
    reasons["finish"] = reasons["temporal"] = "the CPU cores' own path: the release runs on the CPU"
    return replace(plan, device="cpu", engine="onnx", precision="fp32", threads=threads, workers=workers, batch=batch,
                   compile="off", finish="", temporal="", simulated=None, reasons=tuple(reasons.items()))


def check_memory(entry, kind: str) -> None:
    """MattekitError (one sentence) when ``entry`` runs on the CPU (``kind`` "cpu") and this machine has less memory
    free than the catalog's ``memory_gb`` for it (the peak of a whole ``remove`` of a 50 MP photo, measured: the
    big-photo BiRefNets take 13-13.5 GiB), rather than a machine that swaps or a process the kernel kills."""
    need = entry.memory_gb
    if need is None or kind != "cpu":
        return
    free = policy.available_memory("cpu") / 2 ** 30
    if free < need:
        raise MattekitError(f"Model '{entry.name}' needs about {need:g} GiB of memory on the CPU and {free:.1f} GiB is "
                            f"free; close other programs, or use a model that runs at 1024 px (birefnet-general, "
                            f"birefnet-matting).")


def pinned_backend(entry) -> str | None:
    """The one backend catalog ``entry`` runs on (its ``backends``: "torch" for SAM 2.1), or None where it runs on
    either."""
    return entry.backends[0] if len(entry.backends) == 1 else None


def compile_mode(asked: str | None, device_type: str) -> str:
    """How the torch engine runs a net on ``device_type`` (:class:`mattekit.engines.torch_engine.Compiled`): ``asked``, else ``$MATTEKIT_COMPILE``, else ``auto``; ``off``
    anywhere but CUDA. A name not in :data:`COMPILE_MODES` is refused in one sentence."""
    mode = (asked or os.environ.get("MATTEKIT_COMPILE") or "auto").strip().lower()
    if mode not in COMPILE_MODES:
        raise MattekitError(f"'{mode}' is not a compile mode (MATTEKIT_COMPILE): use auto, off, graphs or inductor.")
    return mode if device_type == "cuda" else "off"


def _compile(kind: str, engine: str) -> tuple[str, str]:
    """(compile mode, why) for the torch engine on a device of ``kind``: ``$MATTEKIT_COMPILE`` where set, else auto
    (:class:`mattekit.engines.torch_engine.Compiled`), on CUDA only. An unknown mode: one sentence."""
    mode = compile_mode(None, kind if engine == "torch" else "cpu")
    if mode == "off":
        return mode, "compiled only on CUDA" if kind != "cuda" or engine != "torch" else "asked (MATTEKIT_COMPILE)"
    if os.environ.get("MATTEKIT_COMPILE"):
        return mode, "asked (MATTEKIT_COMPILE)"
    return mode, "auto: each input shape timed at its second call, eager against a CUDA-graph replay"


def _device(name: str | None, engine: str, simulated: float | None = None) -> tuple[str, str]:
    """(device name, why): ``auto`` is the first GPU torch can use, else the CPU (the CPU without asking torch where
    its build has no GPU support, or where the onnx backend is asked for); a named device is checked. ``simulated``
    (ms an image): ``auto`` and ``cuda`` are a simulated GPU, "cuda" (:mod:`mattekit.engines.simulated`)."""
    name = (name or "auto").lower()
    if name == "cpu":
        return "cpu", "asked"
    if name == "auto" and engine == "onnx":
        return "cpu", "the onnx backend runs on the CPU only"
    if simulated is not None and name in ("auto", "cuda"):
        return "cuda", f"simulated: {simulated:g} ms an image, on the CPU ({simulation.VARIABLE})"
    if name == "auto" and not policy.gpu_possible():
        return "cpu", "this torch has no GPU support"
    found = str(policy.select_device(name))
    if name == "auto":
        return found, "auto: a GPU torch can use" if found != "cpu" else "auto: no GPU torch can use"
    if engine == "onnx" and found != "cpu":
        raise MattekitError(f"The onnx backend runs on the CPU only, not on {found.split(':')[0]}; "
                            f"use --device cpu or the torch backend.")
    return found, "asked"


def _precision(entry, kind: str, name: str) -> tuple[str, str]:
    """(precision, why) on a device of ``kind``: ``auto`` is fp16 on CUDA where the catalog says it keeps the answer,
    bf16 on a CPU with native bf16 where the catalog says so (real weights on real photos kept IoU within 0.002 and
    mean |delta alpha| within 2e-3 of fp32: tests/conformance/test_fidelity.py), else fp32. An explicit bf16 runs on
    any CPU (emulated where not native: every machine can check the path native-bf16 CPUs take)."""
    if name != "auto":
        if kind == "cpu" and name == "fp16":
            raise MattekitError("fp16 is not supported on the CPU; use fp32 or bf16.")
        if kind == "cuda" and name == "bf16":
            import torch

            if not torch.cuda.is_bf16_supported():
                raise MattekitError("This GPU has no bf16 support; use fp16 or fp32.")
        return name, "asked"
    if kind == "cuda":
        return ("fp16", "the catalog: fp16 keeps this model's answer") if entry.half else ("fp32", "the catalog: fp32 only")
    if kind == "cpu" and entry.cpu_bf16 and policy.native_cpu_bf16():
        return "bf16", "native bf16 here, and the catalog: bf16 keeps this model's answer"
    return "fp32", "the reference precision"


def _engine(entry, kind: str, name: str, precision: str, weights_path, measure) -> tuple[str, str]:
    """(engine, why): an asked engine checked; ``auto`` is torch off the CPU and for fp16/bf16, else the CPU engine
    measured faster for this model here (:func:`measured`), else ONNX Runtime (the evidence)."""
    if pinned_backend(entry):
        return name, "the catalog: this model runs on torch only"
    if name == "onnx":
        if kind != "cpu":
            raise MattekitError(f"The onnx backend runs on the CPU only, not on {kind}; use --device cpu or the torch backend.")
        if not policy.onnx_available():
            raise MattekitError("The onnx backend needs onnxruntime and onnx: pip install 'mattekit[onnx]'.")
        return name, "asked"
    if name == "torch":
        return name, "asked"
    if kind != "cpu":
        return "torch", "ONNX Runtime runs on the CPU only here"
    if precision != "fp32":
        return "torch", f"{precision} runs on torch only"
    if not policy.onnx_available():
        return "torch", "ONNX Runtime is not installed"
    if entry.recurrent or not covers(entry):
        return "torch", "no engine measurement covers this kind of net: torch"

    found = measured(entry.name)
    if found is None and measure is not None:
        found = measure(entry, weights_path), "on first use here"
    if found is None:
        return "onnx", EVIDENCE
    row, source = found
    return winner(row), f"measured ({source}): torch {row['ratio']:.2f}x ONNX Runtime's time"


def layout(entry, kind: str, engine: str) -> tuple[int, int, int, str]:
    """(threads per call, workers, batch, why) for the cores this process may use (:func:`mattekit.machine.cpu_count`).
    CPU: a net on a small fixed input (at most :data:`mattekit.engines.onnx.SHRINK_ABOVE` pixels), or any net on torch,
    runs up to 4 calls at once with the cores shared out (one thread per call on up to 4 cores, where torch's CPU
    engine uses its Winograd kernels; u2netp at 320² on 2 cores: two one-thread calls gave 1.12-1.22x the frames/s of
    one two-thread call); a larger input on ONNX Runtime calls of torch's default thread count (the physical cores,
    :func:`mattekit.engines.threads.default_count`), as many at once as the cores hold. GPU: two workers (streams),
    batches of 8 for fixed-size models."""
    from .onnx import SHRINK_ABOVE
    from .threads import default_count

    size = entry.input.size
    if kind != "cpu":
        return 0, 2, 8 if size is not None else 1, "a GPU: two streams"
    cores = cpu_count()
    small = size is not None and size[0] * size[1] <= SHRINK_ABOVE
    if engine == "onnx" and not small:
        threads = default_count()
        workers = max(1, cores // threads)
        return threads, workers, 1, f"{cores} cores: {workers} call(s) of {threads} threads (a large input on ONNX Runtime)"
    workers = min(cores, 4)
    return max(1, cores // workers), workers, 1, f"{cores} cores: {workers} calls at once"
