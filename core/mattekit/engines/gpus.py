"""The GPUs this machine has, as torch and the NVIDIA driver see them (:func:`found`), and the one sentence a
process says when a model runs on the CPU although a GPU is there (:func:`idle_sentence`)."""

from __future__ import annotations

from dataclasses import dataclass

from importlib import metadata

from .. import machine
from .policy import gpu_possible, mps_available


@dataclass(frozen=True)
class GPUs:
    """``cuda``: (name, memory in GiB) of each CUDA device torch can use, in index order; ``mps``: Apple's MPS is
    usable; ``nvidia``: (name, driver version) of each GPU nvidia-smi lists; ``torch_cuda``: the CUDA version this
    torch was built for, None for a CPU-only build."""

    cuda: tuple[tuple[str, float], ...] = ()
    mps: bool = False
    nvidia: tuple[tuple[str, str], ...] = ()
    torch_cuda: str | None = None

    def name(self) -> str | None:
        """The GPU to name in a sentence ("NVIDIA GeForce RTX 4090", "Apple MPS"), None when there is none."""
        if self.cuda:
            return self.cuda[0][0]
        if self.nvidia:
            return self.nvidia[0][0]
        return "Apple MPS" if self.mps else None


def found(ask_torch: bool = True) -> GPUs:
    """This machine's GPUs, asked now (nvidia-smi is a subprocess: a few tens of milliseconds where it exists). torch
    is asked only where it may see one (:func:`mattekit.engines.policy.gpu_possible`): a CPU-only build sees none;
    ``ask_torch`` False: nvidia-smi's alone (torch not imported)."""
    cuda, mps, built = (), False, None
    if ask_torch and gpu_possible():
        import torch

        if torch.cuda.is_available():
            cuda = tuple(
                (p.name, p.total_memory / (1 << 30))
                for p in map(torch.cuda.get_device_properties, range(torch.cuda.device_count()))
            )
        mps, built = mps_available(), torch.version.cuda
    return GPUs(cuda, mps, tuple(machine.nvidia_gpus()), built)


def idle_reason(gpus: GPUs, asked: str, engine: str) -> str | None:
    """Why a model asked to run on device ``asked`` ("auto", "cpu", ...) runs on the CPU with ``engine`` (its plan's,
    "onnx" or "torch", or an engine's name, e.g. "onnx-cpu-fp32") although ``gpus`` holds a GPU, as the end of a
    sentence; None without one."""
    if gpus.name() is None:
        return None
    if asked.lower().startswith("cpu"):
        return "the device 'cpu' was asked for (--device cpu, or the job's device option)"
    if gpus.nvidia and not gpus.cuda and gpus.torch_cuda is None:
        return (
            f"this torch ({metadata.version('torch')}) is a CPU-only build; a fresh set-up (`python install/setup.py` "
            f"after removing .venv) installs the CUDA build the driver runs"
        )
    if gpus.nvidia and not gpus.cuda:
        return (
            f"torch, built for CUDA {gpus.torch_cuda}, cannot use it (driver {gpus.nvidia[0][1]} too old for "
            f"that build, or the device is busy or hidden by CUDA_VISIBLE_DEVICES)"
        )
    if engine.startswith("onnx"):
        return "its engine, ONNX Runtime, runs on the CPU only (the weights are an ONNX file, or the onnx backend was chosen)"
    return None


_SAID: list[str] = []  # the sentence, once said in this process
_ASKED: list[GPUs] = []  # :func:`found`'s answer, asked once in this process


def idle_sentence(model: str, asked: str, device_type: str, engine: str) -> str | None:
    """Once per process, the sentence saying why ``model`` runs on the CPU although this machine has a GPU (None
    when it runs on a GPU, there is none, or it was said). The GPUs are asked for once per process (:func:`found`),
    on the first CPU run."""
    if _SAID or device_type != "cpu":
        return None
    if not _ASKED:  # an explicit cpu needs only a GPU's name: nvidia-smi's, where it gives one, without torch's import
        named = found(ask_torch=False) if asked.lower().startswith("cpu") else None
        _ASKED.append(found() if named is None or (named.name() is None and gpu_possible()) else named)
    gpus = _ASKED[0]
    why = idle_reason(gpus, asked, engine)
    if why is None:
        return None
    _SAID.append(f"mattekit: {gpus.name()} is here but {model} runs on the CPU: {why}.")
    return _SAID[0]


def forget() -> None:
    """Ask for the GPUs and say the sentence again on the next CPU run (tests start from a clean process state)."""
    _SAID.clear()
    _ASKED.clear()
