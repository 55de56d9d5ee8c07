"""This process's resident memory, for the benchmarks. Standard library only (the rembg child of
``bench speed`` uses it without importing torch).

On Linux the figures come from /proc/self/status: VmRSS now, and VmHWM, the peak, which starts afresh
at exec and can be reset (:func:`reset_peak_rss`); ``getrusage``'s ru_maxrss, the fallback elsewhere,
is a process-lifetime peak that a spawned child inherits from its parent.
"""

from __future__ import annotations

import sys


def _status_bytes(field: str) -> int | None:
    """``field`` (e.g. "VmHWM") of /proc/self/status in bytes; None where there is no such file or field."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss() -> int:
    """This process's peak resident set size in bytes (VmHWM, else getrusage's ru_maxrss)."""
    peak = _status_bytes("VmHWM")
    if peak is not None:
        return peak
    import resource

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # macOS counts bytes, Linux KiB


def current_rss() -> int:
    """This process's resident set size now in bytes (VmRSS); its peak so far where that is unknown."""
    rss = _status_bytes("VmRSS")
    return peak_rss() if rss is None else rss


def reset_peak_rss() -> bool:
    """Start a new peak window for :func:`peak_rss`; False when the OS offers no reset (peaks are then
    lifetime peaks)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
