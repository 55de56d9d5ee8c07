"""How a model runs here, decided once per load: :class:`Plan` (the network's device, engine, precision, compile mode
and weights; the pipeline's layout; where the finish and the temporal filter run; the reason for each) and
:func:`decide`, the one place that turns what the user asked (``auto`` or a name, and ``$MATTEKIT_BACKEND`` /
``$MATTEKIT_PRECISION``) into it, with the evidence it reads. Everything else only reads a plan:
:func:`mattekit.engines.build` (the engine, or an ONNX release as it is), :func:`mattekit.running.layout.plan` (the
layout), :func:`mattekit.finish.device.device_of` (the finish), :func:`mattekit.roto.temporal_device.device_for` (the
temporal filter); ``mattekit doctor`` prints it.

The engine on the CPU, for a model either engine runs (torch, mattekit's CPU engine, or ONNX Runtime on the export of
the same net; :mod:`mattekit.engines.tables`): ONNX Runtime, unless a measurement (this machine's own, from ``mattekit
bench engines --save``, else the row shipped for this CPU class) has torch faster per call by the margin. ONNX Runtime
was faster per call in 15 of the 16 rows ever measured and starts from its cached export, where torch builds the net
from the weights at each start (seconds for IS-Net's ONNX file: the whole command, start-up included, is what the
rule weighs). A plan is made without importing torch where it runs on the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from ..errors import MattekitError
from . import policy
from .files import Recipe, recipe_for
from .layout import device_work, layout
from .tables import EVIDENCE, covers, own_row, shipped_row, winner

# Re-exported: doctor, the benches and the tests read the tables through the plan.
from .tables import MARGIN, SHIPPED, cpu_class, fingerprint, measured, own_table_path, shipped_hidden  # noqa: F401

BACKENDS = ("auto", "torch", "onnx")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
COMPILE_MODES = ("auto", "off", "graphs", "inductor")  # how the torch engine runs a net on CUDA


@dataclass(frozen=True)
class Plan:
    """How one model runs, every field decided once by :func:`decide` with its reason; the rest only read it.

    The network: ``device`` ("cpu", "cuda", "cuda:1", "mps"), ``engine`` ("torch" | "onnx"), ``precision`` ("fp32" |
    "fp16" | "bf16"), ``compile`` (how the torch engine runs the net on CUDA: :data:`COMPILE_MODES`, "off" elsewhere),
    ``as_is`` (the weights are an ONNX release run as it is: :func:`release_as_is`), ``weights`` (the weights file
    asked for, "" for the catalog's), ``recipe`` (a load's plan only: the weights file found and what shapes its
    ONNX export, :class:`mattekit.engines.files.Recipe`, which the engine is built from; None otherwise).
    The pipeline's layout (:class:`mattekit.engines.layout.Layout`): ``threads`` (CPU threads a network call uses),
    ``workers`` (calls at once), ``batch`` (images a call), ``readers``, ``writers``, ``pad`` (one batch shape: batches
    filled by the readers, padded with zero inputs where a new input size cuts one short). Work that follows the
    model: ``finish`` and ``temporal``, the torch device where the finish of a large photo and roto's temporal filter
    run (the model's GPU; "" where they run on the CPU cores' own path; a finish may also be a device value of its own
    with the finish's device steps, as :class:`mattekit.finish.device.OnDevice` has them).
    ``reasons``: (what, why) pairs for device, engine, precision, compile, release, layout, finish and temporal. Plans
    that differ only in their reasons run the same engine."""

    model: str
    device: str
    engine: str
    precision: str
    threads: int
    workers: int
    batch: int
    weights: str = ""
    compile: str = "off"
    as_is: bool = False
    readers: int = 1
    writers: int = 1
    pad: bool = False
    finish: object = ""
    temporal: str = ""
    reasons: tuple[tuple[str, str], ...] = ()
    recipe: Recipe | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple:
        """What makes a loaded model: the model cache's key."""
        return (self.model, self.device, self.engine, self.precision, self.weights, self.as_is, self.compile)

    def why(self, what: str) -> str:
        """The reason for ``what`` (:data:`FIELDS`' names)."""
        return dict(self.reasons).get(what, "")

    def describe(self) -> str:
        """One line: 'u2netp: cpu, onnx, fp32, 4 worker(s) x 1 thread(s), batch 1 (engine: measured ...)'."""
        compiled = f", compile {self.compile}" if self.compile != "off" else ""
        compiled += ", the ONNX release as it is" if self.as_is else ""
        return (
            f"{self.model}: {self.device}, {self.engine}, {self.precision}{compiled}, {self.workers} worker(s) x "
            f"{self.threads} thread(s), batch {self.batch} (engine: {self.why('engine')})"
        )

    def lines(self) -> list[tuple[str, str, str]]:
        """(field, value, why) for each decision, in :data:`FIELDS`' order (``doctor`` prints them)."""
        values = {
            "device": self.device,
            "engine": self.engine,
            "precision": self.precision,
            "compile": self.compile,
            "release": "as it is" if self.as_is else "loaded into the net",
            "layout": f"{self.workers} worker(s) x {self.threads or 'torch default'} thread(s), batch {self.batch}"
            f"{' of one shape' if self.pad else ''}, {self.readers} reader(s), {self.writers} writer(s)",
            "finish": self.finish or "CPU cores",
            "temporal": self.temporal or "CPU cores",
        }
        return [(name, values[name], self.why(name)) for name in FIELDS]


FIELDS = ("device", "engine", "precision", "compile", "release", "layout", "finish", "temporal")


def asked(value: str | None, variable: str, allowed: tuple[str, ...], what: str) -> str:
    """``value`` lower case, or for ``auto`` (None) ``$variable`` where set; one sentence when not in ``allowed``."""
    name = (value or "auto").lower()
    if name == "auto":
        name = os.environ.get(variable, "auto").lower() or "auto"
    if name not in allowed:
        raise MattekitError(f"{what} '{name}' is unknown; use {', '.join(allowed[:-1])} or {allowed[-1]}.")
    return name


def decide(
    entry,
    device: str | None = "auto",
    backend: str | None = "auto",
    precision: str | None = "auto",
    weights_path: str | None = None,
    loading: bool = False,
) -> Plan:
    """The plan for catalog ``entry`` as asked (names or ``auto``/None; ``device`` may be a torch.device). An asked
    device that is absent, an engine or precision that cannot run here: one sentence. ``loading``: the caller loads the
    model now: its memory is checked (:func:`check_memory`), then its weights file is looked for, once, into the
    plan's :attr:`Plan.recipe` (what the engine is built from). Every field is decided here, with its reason:
    :data:`FIELDS`."""
    pinned = pinned_backend(entry)
    if pinned and (backend or "auto").lower() not in ("auto", pinned):  # asked by name, not by $MATTEKIT_BACKEND
        raise MattekitError(
            f"{entry.name} runs on {pinned} only (it cannot be exported for another engine at every "
            f"photo size); leave the backend at auto or {pinned}."
        )
    engine_asked = pinned or asked(backend, "MATTEKIT_BACKEND", BACKENDS, "Backend")
    precision_asked = asked(precision, "MATTEKIT_PRECISION", PRECISIONS, "Precision")
    dev, device_why = _device(None if device is None else str(device), engine_asked)
    kind = dev.split(":")[0]
    if loading:
        check_memory(entry, kind)
    wanted, precision_why = _precision(entry, kind, precision_asked)
    if pinned:
        engine, engine_why = pinned, "the catalog: this model runs on torch only"
    else:
        engine, engine_why = _engine(entry, kind, engine_asked, wanted)
    if engine == "onnx" and wanted != "fp32":
        if precision_asked != "auto":
            raise MattekitError("The onnx backend runs in fp32 only; leave --precision at auto or fp32.")
        wanted, precision_why = "fp32", "ONNX Runtime runs fp32 only"
    compiled, compile_why = _compile(kind, engine)
    files = recipe_for(entry, weights_path) if loading else None
    as_is, release_why = _release(entry, engine, files)
    made = Plan(
        entry.name,
        dev,
        engine,
        wanted,
        0,
        0,
        0,
        str(weights_path or ""),
        compiled,
        False,
        reasons=(
            ("device", device_why),
            ("engine", engine_why),
            ("precision", precision_why),
            ("compile", compile_why),
            ("release", release_why),
        ),
        recipe=files,
    )
    return release_as_is(made, entry) if as_is else placed(made, entry)


def placed(plan: Plan, entry) -> Plan:
    """``plan`` with its layout and the device of the work that follows the model (:mod:`mattekit.engines.layout`)
    for its device and engine, and their reasons."""
    kind = plan.device.split(":")[0]
    laid = layout(entry, kind, plan.engine)
    finish, finish_why, temporal, temporal_why = device_work(plan.device)
    reasons = dict(plan.reasons, layout=laid.why, finish=finish_why, temporal=temporal_why)
    return replace(
        plan,
        threads=laid.threads,
        workers=laid.workers,
        batch=laid.batch,
        readers=laid.readers,
        writers=laid.writers,
        pad=laid.pad,
        finish=finish,
        temporal=temporal,
        reasons=tuple((name, reasons[name]) for name in FIELDS),
    )


def _release(entry, engine: str, made: Recipe | None) -> tuple[bool, str]:
    """(whether the weights run as an ONNX release as it is, why): only for a model whose net cannot take its .onnx
    release's layers (the catalog's ``onnx_as_is``: rembg's BiRefNet files) and weights that are such a file, with no
    ONNX export of them cached for ``engine``. ``made``: a load's recipe, with the weights file found (None: a plan
    made without loading, which looks for no file)."""
    if not entry.onnx_as_is:
        return False, "the weights load into the net"
    if made is None:
        return False, "its .pth loads into the net; rembg's .onnx release, where that is the file found, runs as it is"
    path = made.weights
    if path.suffix.lower() != ".onnx":
        return False, f"{path.name} loads into the net"
    if engine == "onnx" and made.export_path().is_file():
        return False, f"{path.name}'s ONNX export is cached"
    return True, f"{path.name} is an ONNX release whose layers the net does not take"


def release_as_is(plan: Plan, entry) -> Plan:
    """``plan`` for weights that are an ONNX release whose layers the net family cannot take (rembg's BiRefNet
    files): the file runs as it is, on ONNX Runtime on the CPU."""
    reasons = dict(
        plan.reasons,
        device="the weights are an ONNX release run as it is, on the CPU",
        engine="an ONNX release whose layers the net does not take",
        precision="the release's own",
        compile="compiled only on CUDA",
    )
    return placed(
        replace(
            plan,
            device="cpu",
            engine="onnx",
            precision="fp32",
            compile="off",
            as_is=True,
            reasons=tuple(reasons.items()),
        ),
        entry,
    )


def check_memory(entry, kind: str) -> None:
    """MattekitError (one sentence) when ``entry`` runs on the CPU (``kind`` "cpu") and this machine has less memory
    free than the catalog's ``memory_gb`` for it (the peak of a whole ``remove`` of a 50 MP photo, measured: the
    big-photo BiRefNets take 13-13.5 GiB), rather than a machine that swaps or a process the kernel kills."""
    need = entry.memory_gb
    if need is None or kind != "cpu":
        return
    free = policy.available_memory("cpu") / 2**30
    if free < need:
        raise MattekitError(
            f"Model '{entry.name}' needs about {need:g} GiB of memory on the CPU and {free:.1f} GiB is "
            f"free; close other programs, or use a model that runs at 1024 px (birefnet-general, "
            f"birefnet-matting)."
        )


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


def _device(name: str | None, engine: str) -> tuple[str, str]:
    """(device name, why): ``auto`` is the first GPU torch can use, else the CPU (the CPU without asking torch where
    its build has no GPU support, or where the onnx backend is asked for); a named device is checked."""
    name = (name or "auto").lower()
    if name == "cpu":
        return "cpu", "asked"
    if name == "auto" and engine == "onnx":
        return "cpu", "the onnx backend runs on the CPU only"
    if name == "auto" and not policy.gpu_possible():
        return "cpu", "this torch has no GPU support"
    found = str(policy.select_device(name))
    if name == "auto":
        return found, "auto: a GPU torch can use" if found != "cpu" else "auto: no GPU torch can use"
    if engine == "onnx" and found != "cpu":
        raise MattekitError(
            f"The onnx backend runs on the CPU only, not on {found.split(':')[0]}; "
            f"use --device cpu or the torch backend."
        )
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
        return (
            ("fp16", "the catalog: fp16 keeps this model's answer")
            if entry.half
            else ("fp32", "the catalog: fp32 only")
        )
    if kind == "cpu" and entry.cpu_bf16 and policy.native_cpu_bf16():
        return "bf16", "native bf16 here, and the catalog: bf16 keeps this model's answer"
    return "fp32", "the reference precision"


def _engine(entry, kind: str, name: str, precision: str) -> tuple[str, str]:
    """(engine, why): an asked engine checked; ``auto`` is torch off the CPU and for fp16/bf16, else ONNX Runtime
    unless a measurement (this machine's own row, else the row shipped for its CPU class) has torch faster by the
    margin (:func:`mattekit.engines.tables.winner`); a model pinned to one engine is not asked here."""
    if name == "onnx":
        if kind != "cpu":
            raise MattekitError(
                f"The onnx backend runs on the CPU only, not on {kind}; use --device cpu or the torch backend."
            )
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
    found = own_row(entry.name) or shipped_row(entry.name)
    if found is None:
        return "onnx", EVIDENCE
    row, source = found
    return winner(row), f"measured ({source}): torch {row['ratio']:.2f}x ONNX Runtime's time"
