"""Device, backend and precision choice, and how much memory a device has free.

Nothing here runs a net: these functions turn the user's ``auto``/named choices (and the
``$MATTEKIT_BACKEND`` / ``$MATTEKIT_PRECISION`` overrides) into a ``torch.device``, a backend name
("torch" or "onnx") and a ``torch.dtype``, or fail with one sentence saying why the choice cannot run here.
torch is imported by the functions that need it, not by this module: :func:`plain_cpu_onnx` answers without it
where the answer is ONNX Runtime on the CPU in fp32, so that such a run never imports torch (1.3-2 s).
"""
from __future__ import annotations

import functools
import importlib.util
import os
import platform
import re
from typing import TYPE_CHECKING

from ..errors import MattekitError
from ..machine import available_ram, cpu_info

BACKENDS = ("auto", "torch", "onnx")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")

if TYPE_CHECKING:
    import torch


def dtype_named(name: str) -> torch.dtype:
    """The torch dtype of a precision name ("fp32", "fp16", "bf16")."""
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def dtype_name(dtype) -> str:
    """The precision name ("fp32", "fp16", "bf16") of a torch dtype."""
    return {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}[str(dtype).replace("torch.", "")]


# ----------------------------------------------------------------------------------- devices

def mps_available() -> bool:
    import torch

    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def select_device(name: str | None = "auto", backend: str | None = None) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU (the CPU where the onnx ``backend`` is asked for: ONNX Runtime runs
    there only, :func:`backend_asked`); an explicit device that is missing is an error."""
    import torch

    name = (name or "auto").lower()
    if name == "auto":
        if backend_asked(backend) == "onnx":
            return torch.device("cpu")
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise MattekitError(f"'{name}' is not a device; use auto, cpu, cuda, cuda:N or mps.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise MattekitError(f"Device '{name}' was asked for but this machine has no usable CUDA GPU; use --device cpu or auto.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise MattekitError(f"Device '{name}' was asked for but only {torch.cuda.device_count()} CUDA GPU(s) exist.")
    elif device.type == "mps" and not mps_available():
        raise MattekitError(f"Device '{name}' was asked for but Apple MPS is not available here; use --device cpu or auto.")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise MattekitError(f"Device '{name}' is not supported; use auto, cpu, cuda, cuda:N or mps.")
    return device


def available_memory(device: torch.device | str) -> int:
    """Bytes free for work on ``device`` (a torch.device or a name): free CUDA memory, MPS's recommended budget
    left, or the machine's available RAM (Linux MemAvailable, else free physical pages; 4 GiB when unknown)."""
    kind = str(device).split(":")[0]
    if kind == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if kind == "mps":
        import torch

        if hasattr(torch.mps, "recommended_max_memory"):
            return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
    return available_ram()


# ----------------------------------------------------------------------------------- capabilities

def onnx_available() -> bool:
    """ONNX Runtime and the onnx package (which torch's exporter needs) are installed.

    Looked up without importing them: only ``mattekit.engines.onnx`` imports them, when it runs.
    """
    try:
        return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))
    except ValueError:  # a module blocked by a None entry in sys.modules
        return False


def nnpack_available() -> bool:
    """NNPACK (whose Winograd kernels the fp32 CPU engine uses) is compiled into this torch and
    initialises on this CPU (this also initialises it)."""
    import torch

    try:
        return bool(torch._nnpack_available())
    except (AttributeError, RuntimeError):
        return False


def native_cpu_bf16() -> bool:
    """The CPU computes bf16 dot products in hardware (AVX-512 BF16 or AMX): bf16 is then fast.

    ``$MATTEKIT_CPU_BF16`` = 1 / 0 says so instead (tests take the path of a CPU with native bf16 on any
    machine); otherwise read from /proc/cpuinfo on Linux, elsewhere oneDNN's own bf16 check (which also
    accepts AVX-512 CPUs that only emulate bf16).
    """
    claimed = os.environ.get("MATTEKIT_CPU_BF16", "").strip()
    return claimed == "1" if claimed in ("0", "1") else _detected_cpu_bf16()


@functools.lru_cache(maxsize=1)
def _detected_cpu_bf16() -> bool:
    info = cpu_info()
    if info is None:
        import torch

        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return "avx512_bf16" in info[1] or "amx_bf16" in info[1]


# ----------------------------------------------------------------------------------- backend, precision

def resolve_backend(backend: str | None, device: torch.device, model: str | None = None,
                    precision: str | None = None) -> str:
    """``auto`` (or ``$MATTEKIT_BACKEND``) -> "torch" or "onnx"; a backend that cannot run here is an error.

    ``auto`` on the CPU, with ONNX Runtime installed: the engine measured faster for catalog model ``model`` on this
    CPU class (:mod:`mattekit.engines.choice`); for a model not measured there, torch where NNPACK's Winograd
    kernels run, else ONNX Runtime (it beats oneDNN's direct convolutions). Elsewhere, or where ``precision``
    (or ``$MATTEKIT_PRECISION``) asks for fp16 or bf16, which ONNX Runtime does not run here, torch."""
    name = backend_asked(backend)
    if name not in BACKENDS:
        raise MattekitError(f"Backend '{name}' is unknown; use auto, torch or onnx.")
    if name == "auto":
        if device.type != "cpu" or not onnx_available() or _precision_name(precision) in ("fp16", "bf16"):
            return "torch"
        from .choice import winner

        return (winner(model) if model else None) or ("torch" if nnpack_available() else "onnx")
    if name == "onnx":
        if device.type != "cpu":
            raise MattekitError(f"The onnx backend runs on the CPU only, not on {device.type}; use --device cpu or the torch backend.")
        if not onnx_available():
            raise MattekitError("The onnx backend needs onnxruntime and onnx: pip install 'mattekit[onnx]'.")
    return name


def backend_asked(backend: str | None) -> str:
    """The backend asked for, lower case: ``backend``, or for ``auto`` (None) ``$MATTEKIT_BACKEND`` where set."""
    name = (backend or "auto").lower()
    if name == "auto":
        name = os.environ.get("MATTEKIT_BACKEND", "auto").lower() or "auto"
    return name


def _precision_name(precision: str | None) -> str:
    """``precision`` (``auto``: ``$MATTEKIT_PRECISION`` when set) checked against PRECISIONS."""
    name = (precision or "auto").lower()
    if name == "auto":
        name = os.environ.get("MATTEKIT_PRECISION", "auto").lower() or "auto"
    if name not in PRECISIONS:
        raise MattekitError(f"Precision '{name}' is unknown; use auto, fp32, fp16 or bf16.")
    return name


def resolve_precision(precision: str | None, device: torch.device, half_ok: bool = True,
                      cpu_bf16_ok: bool = False) -> torch.dtype:
    """``auto`` (or ``$MATTEKIT_PRECISION``): on CUDA fp16 where the catalog says it keeps the answer
    (``half_ok``), on CPUs with native bf16 bf16 where the catalog says so (``cpu_bf16_ok``), else fp32.
    The catalog says so only where real weights on real photos kept IoU within 0.002 and mean |delta alpha|
    within 2e-3 of fp32 (tests/test_fidelity.py measures it).

    An explicit bf16 runs on any CPU: emulated (slow) where the CPU has no native bf16, so that every
    machine can check the path that CPUs with native bf16 take.
    """
    import torch

    name = _precision_name(precision)
    if name == "auto":
        if device.type == "cuda":
            return torch.float16 if half_ok else torch.float32
        return torch.bfloat16 if device.type == "cpu" and cpu_bf16_ok and native_cpu_bf16() else torch.float32
    dtype = dtype_named(name)
    if device.type == "cpu" and dtype is torch.float16:
        raise MattekitError("fp16 is not supported on the CPU; use fp32 or bf16.")
    if device.type == "cuda" and dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise MattekitError("This GPU has no bf16 support; use fp16 or fp32.")
    return dtype


def engine_precision(backend: str, precision: str | None, device: torch.device, half_ok: bool = True,
                     cpu_bf16_ok: bool = False) -> torch.dtype:
    """The dtype a resolved ``backend`` runs in: :func:`resolve_precision`'s, except that the onnx
    backend runs in fp32 only (``auto`` gives fp32 there, an explicit fp16/bf16 is an error)."""
    if backend != "onnx":
        return resolve_precision(precision, device, half_ok, cpu_bf16_ok)
    if _precision_name(precision) not in ("auto", "fp32"):
        raise MattekitError("The onnx backend runs in fp32 only; leave --precision at auto or fp32.")
    return dtype_named("fp32")


# ----------------------------------------------------------------------------------- without torch

def plain_cpu_onnx(device: str | None, backend: str | None, precision: str | None, model: str | None,
                   cpu_bf16_ok: bool = False) -> bool:
    """Whether a model runs on ONNX Runtime on the CPU in fp32 (what :func:`resolve_backend` and
    :func:`engine_precision` would answer), decided without importing torch; False where only torch can tell
    (a GPU may be there, the model was not measured on this CPU class, bf16 may be native) or the answer differs.
    ``device``/``backend``/``precision``: as the user gave them (names, ``auto`` or None); ``model``: the catalog
    name, of a net family that either backend may run; ``cpu_bf16_ok``: the catalog's flag."""
    name, chosen = (device or "auto").lower(), backend_asked(backend)
    if name not in ("auto", "cpu") or (name == "auto" and chosen != "onnx" and gpu_possible()):
        return False  # (the onnx backend asked for: ``auto`` is the CPU, GPU or none)
    try:
        wanted = _precision_name(precision)
    except MattekitError:
        return False  # the torch path says why, in its own words
    if wanted not in ("auto", "fp32") or (wanted == "auto" and cpu_bf16_ok and native_cpu_bf16()):
        return False
    if chosen not in ("auto", "onnx") or not onnx_available():
        return False
    if chosen == "auto":
        from .choice import winner

        return bool(model) and winner(model) == "onnx"
    return True


@functools.lru_cache(maxsize=1)
def gpu_possible() -> bool:
    """Whether ``auto`` might pick a GPU here, known without importing torch: a torch build for CUDA or ROCm (its
    ``torch/version.py``), or macOS (MPS). A CPU-only build elsewhere answers no; anything unreadable, yes."""
    if platform.system() == "Darwin":
        return True
    try:
        spec = importlib.util.find_spec("torch")
        folder = next(iter(spec.submodule_search_locations or ()))
        with open(os.path.join(folder, "version.py"), encoding="utf-8") as version:
            text = version.read()
    except (ImportError, ValueError, AttributeError, StopIteration, OSError):
        return True
    built = dict(re.findall(r"^(cuda|hip)\s*(?::[^=]*)?=\s*(.+?)\s*$", text, re.MULTILINE))
    return set(built) != {"cuda", "hip"} or any(value != "None" for value in built.values())
