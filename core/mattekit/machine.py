"""Facts about this machine: what decides how much work fits (free memory, address space, CPU cores), its NVIDIA GPUs.

Standard library only, so that reading a file can ask how large an image may be without loading torch.
"""

from __future__ import annotations

import os
import re
import subprocess

try:
    import resource
except ImportError:  # Windows: no address-space limits to honour
    resource = None

FALLBACK_MEMORY = 4 << 30  # bytes assumed free when the OS does not say


def _kib_line(path: str, key: str) -> int | None:
    """Bytes of the ``key`` line (in kB) of the /proc file ``path`` ("MemAvailable:"), None when it is not there."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_ram() -> int:
    """Bytes of RAM available for work: Linux MemAvailable, else free physical pages; 4 GiB when unknown."""
    found = _kib_line("/proc/meminfo", "MemAvailable:")
    if found is not None:
        return found
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return FALLBACK_MEMORY


def usable_ram() -> int:
    """Bytes this process can still use: :func:`available_ram`, and no more than the room left under an
    address-space limit (such as ``ulimit -v``)."""
    free = available_ram()
    limit = resource.getrlimit(resource.RLIMIT_AS)[0] if resource is not None else None
    if limit is not None and limit != resource.RLIM_INFINITY:
        free = min(free, max(0, limit - address_space_used()))
    return free


def address_space_used() -> int:
    """Bytes of address space this process maps now (VmSize), 0 when unknown."""
    return _kib_line("/proc/self/status", "VmSize:") or 0


def cpu_count() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def physical_cores() -> int | None:
    """The machine's physical CPU cores (distinct core ids of each package in /proc/cpuinfo, all of the machine's,
    not this process's affinity), or None where they are not listed (not Linux)."""
    cores, package = set(), "0"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "physical id":
                    package = value.strip()
                elif key.strip() == "core id":
                    cores.add((package, value.strip()))
    except OSError:
        return None
    return len(cores) or None


DEVICES = re.compile(r"auto|cpu|mps|cuda(:[0-9]{1,3})?", re.IGNORECASE)


def check_device(name: str) -> str:
    """``name`` as a device's name (auto, cpu, cuda, cuda:N or mps; spaces around it dropped), or a ValueError (one
    sentence); whether this machine has it is known only once torch loads
    (:func:`mattekit.engines.policy.select_device`)."""
    if not DEVICES.fullmatch(name.strip()):
        raise ValueError(f"'{name}' is not a device; use auto, cpu, cuda, cuda:N or mps.")
    return name.strip()


def cpu_info() -> tuple[str, frozenset[str]] | None:
    """(the CPU's model name, its feature flags such as "avx2", "avx512_bf16") from /proc/cpuinfo, or None where
    there is none (not Linux). The first processor's entry stands for all."""
    model, flags = "", frozenset()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not model:
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = frozenset(value.split())
                    break
    except OSError:
        return None
    return model, flags


NVIDIA_SMI_QUERY = ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"]


def parse_nvidia_smi(text: str) -> list[tuple[str, str]]:
    """[(GPU name, driver version such as "575.51.03")] from the lines of :data:`NVIDIA_SMI_QUERY`'s output
    ("NVIDIA GeForce RTX 4090, 575.51.03"); lines that are not "name, version" are skipped."""
    found = []
    for line in text.splitlines():
        name, _, driver = line.strip().rpartition(",")
        if name.strip() and re.fullmatch(r"[0-9]+(\.[0-9]+)*", driver.strip()):
            found.append((name.strip(), driver.strip()))
    return found


def nvidia_gpus() -> list[tuple[str, str]]:
    """[(name, driver version)] of the NVIDIA GPUs the driver's nvidia-smi lists; [] without nvidia-smi, when it
    fails or lists none (whether torch can use them is another question: :mod:`mattekit.engines.gpus`)."""
    try:
        done = subprocess.run(NVIDIA_SMI_QUERY, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_nvidia_smi(done.stdout) if done.returncode == 0 else []
