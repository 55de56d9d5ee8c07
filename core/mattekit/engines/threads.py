"""How many CPU threads a network call made from a thread uses, without importing torch for it.

A thread's count is what :func:`set_count` gave it; else torch's intra-op count where torch is loaded; else
torch's default, worked out as torch does (:func:`default_count`). ONNX Runtime's sessions are made with
:func:`count` threads, so a run on ONNX Runtime alone never imports torch (1.3-2 s of a command's start);
:func:`set_count` sets torch's count too where torch is loaded (its setting is the calling thread's OpenMP
one, and the default of threads started after it).
"""

from __future__ import annotations

import os
import sys
import threading

from ..machine import physical_cores

_OWN = threading.local()


def loaded_torch():
    """torch where its import has finished, else None: not imported, or still being imported by another thread (a
    lazy import in a reader thread: its half-made module is already in ``sys.modules``)."""
    torch = sys.modules.get("torch")
    if torch is None or getattr(getattr(torch, "__spec__", None), "_initializing", False):
        return None
    return torch


def count() -> int:
    """This thread's CPU thread count for network calls (>= 1)."""
    own = getattr(_OWN, "count", None)
    if own:
        return own
    torch = loaded_torch()
    return int(torch.get_num_threads()) if torch is not None else default_count()


def set_count(count: int) -> None:
    """Make ``count`` (>= 1) this thread's count, and torch's where torch is loaded."""
    _OWN.count = max(1, int(count))
    torch = loaded_torch()
    if torch is not None:
        torch.set_num_threads(_OWN.count)


def default_count() -> int:
    """torch's default intra-op thread count, known without importing it: the physical cores where fewer than the
    logical ones, else the logical ones (the machine's, as torch counts them: not this process's affinity), at
    most ``$MKL_NUM_THREADS``, else at most ``$OMP_NUM_THREADS`` (where a positive integer; measured on torch 2.13)."""
    logical = os.cpu_count() or 1
    cores = physical_cores()
    hardware = cores if cores and cores < logical else logical
    for name in ("MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return min(int(value), hardware)
    return hardware
