"""How this process gets memory from the system and gives it back: glibc's ``malloc`` settings (Linux); elsewhere
(another C library, another system) each call does nothing.

- :func:`keep_freed_memory`: a pipeline's threads share the main heap and keep freed blocks up to 32 MiB for reuse;
- :func:`for_one_image`: a command-line run of one image keeps every freed block, however large, for reuse, in
  small pages;
- :func:`hand_back_freed_memory`: the free memory of every heap handed back to the system, now.

Imports no torch.
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -3, -4, -8
_settings: set[str] = set()  # the settings made so far in this process


def _mallopt(pairs: tuple[tuple[int, int], ...]) -> bool:
    """``mallopt(option, value)`` for each pair; False where there is no glibc (then nothing was set)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    for option, value in pairs:
        mallopt(option, value)
    return True


def keep_freed_memory() -> None:
    """Let glibc keep freed memory for reuse by every thread (once per process, for threads made later).

    Inference allocates and frees tens of megabytes of activations per image. By default glibc gives each
    thread an arena of its own (64 MiB heaps, handed back when empty) and returns large blocks to the
    kernel, so the next image faults them in again, zeroed: ~15,000 page faults and ~5% of a U^2-Net
    forward pass on the CPU, and several images' worth of activations resident with several workers.
    Here all threads share the main heap (M_ARENA_MAX 1), blocks up to 32 MiB (glibc's limit) come from
    it, and its top is trimmed only beyond 1 GiB. Measured on U^2-Net with two workers: page faults per
    image from thousands to none, peak RSS ~120 MB lower than with per-thread arenas. A command-line run's
    settings (:func:`for_one_image`) go further and stay.
    """
    if _settings & {"kept", "one image"}:
        return
    if _mallopt(((_M_ARENA_MAX, 1), (_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 1 << 30))):
        _settings.add("kept")


def for_one_image() -> None:
    """Settings for a process that makes one image and ends (a ``mattekit`` command with one input; never the
    worker, which lives on and must give memory back), made before its threads start and its large arrays are made:

    - every thread allocates from the main heap (M_ARENA_MAX 1), no block is mapped on its own (M_MMAP_MAX 0: glibc
      otherwise maps each block over 32 MiB and unmaps it when freed) and the heap is never trimmed, so a full-size
      array freed by one step is reused by the next instead of being faulted in again, zeroed, page by page (a 50 MP
      photo's cut-out makes and frees about twenty arrays of 150-200 MB);
    - numpy no longer asks for 2 MB pages for its arrays (``madvise(MADV_HUGEPAGE)``): where free memory is
      fragmented (a machine whose RAM the page cache fills), each such page is made by compacting memory first.

    Measured on the 50 MP photo (IS-Net, the 2-vCPU test machine, 4-5 pairs in turns): the heap settings took its
    system time from 3.05 to 1.96 s and its wall time to 0.91x (peak RSS 1368 -> 1436 MiB); numpy's small pages
    then 0.94-0.96x more (three runs; user time +1-2 %). Not for a folder: its images' blocks of other sizes pile up
    beside the freed ones (2-24 MP photos: peak RSS 2042 against 1704 MiB, for 0.98x the wall time; AVX2,
    2026-11-26). Process-wide and for good: the command line calls it only
    as the process's own command (``args.own_process``, set by :func:`mattekit.cli.main` called without arguments),
    never from ``main([...])`` called in a process that goes on (tests, scripts)."""
    if "one image" in _settings:
        return
    if _mallopt(((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1))):
        _settings.add("one image")
        import numpy

        advice = getattr(getattr(numpy, "_core", None) or numpy.core, "multiarray", None)
        set_hugepages = getattr(advice, "_set_madvise_hugepage", None)
        if set_hugepages is not None:
            set_hugepages(False)


def hand_back_freed_memory() -> None:
    """Give the system back the free memory of every glibc malloc arena (``malloc_trim``), whatever the settings. A
    graph loaded on a thread of its own frees its temporaries in that thread's arena, which the pipeline's later
    allocations do not reuse: without this the 2-24 MP folder's peak RSS was 100 MB higher. In a command-line run
    (:func:`for_one_image`) they are in the main heap, scattered among blocks in use: trimmed, the 50 MP photo's
    peak RSS was 1436 MiB against 1683 untrimmed (1368 before the run's settings), at the same speed."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
