"""What this machine can run: its devices (a named one checked), free memory, ONNX Runtime, NNPACK, native bf16,
whether torch may see a GPU. Facts only: :mod:`mattekit.engines.plan` decides from them. torch is imported by the
functions that need it, not by this module (a run on ONNX Runtime never imports torch: 1.3-2 s)."""

from __future__ import annotations

import functools
import importlib.util
import os
import platform
import re
from typing import TYPE_CHECKING

from ..errors import MattekitError
from ..machine import available_ram, cpu_info

if TYPE_CHECKING:
    import torch


# ----------------------------------------------------------------------------------- devices


def mps_available() -> bool:
    import torch

    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def select_device(name: str | None = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; an explicit device that is missing is an error."""
    import torch

    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise MattekitError(f"'{name}' is not a device; use auto, cpu, cuda, cuda:N or mps.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise MattekitError(
                f"Device '{name}' was asked for but this machine has no usable CUDA GPU; use --device cpu or auto."
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise MattekitError(
                f"Device '{name}' was asked for but only {torch.cuda.device_count()} CUDA GPU(s) exist."
            )
    elif device.type == "mps" and not mps_available():
        raise MattekitError(
            f"Device '{name}' was asked for but Apple MPS is not available here; use --device cpu or auto."
        )
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


# ----------------------------------------------------------------------------------- without torch


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
