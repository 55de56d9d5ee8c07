"""mattekit.heap: a command-line run of one image reuses the large blocks it frees instead of faulting them in
again."""

import subprocess
import sys

import pytest

LARGE = """
import resource, sys
import numpy as np
from mattekit import heap
if sys.argv[1] == "one image":
    heap.for_one_image()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step(mb):  # a full-size array made, written and freed, as each step of a big photo's finish does
    a = np.empty(mb << 20, np.uint8)
    a[::4096] = 1
    del a
step(64), step(48)  # the heap grows to its largest block once
before = faults()
for _ in range(5):
    step(64), step(48)
advice = (getattr(np, '_core', None) or np.core).multiarray  # numpy 2 / numpy 1
print(advice._set_madvise_hugepage(False), faults() - before)
"""


def _faults(mode: str) -> int:
    run = subprocess.run([sys.executable, "-c", LARGE, mode], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    advised, faults = run.stdout.split()[-2:]
    assert advised == str(mode == "default")  # numpy's 2 MB page advice: left as it is, or off
    return int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator settings")
def test_a_command_line_run_of_one_image_reuses_freed_large_blocks():
    """Ten 48-64 MB arrays made and freed after a first pair: glibc maps each one afresh by default (a fault per
    4 KiB page written, ~16,000 per 64 MB array; one per 2 MB where the kernel gives huge pages: 300 or more either
    way) and reuses the heap's blocks after :func:`mattekit.heap.for_one_image` (measured here: 5,900 against 0),
    which also turns numpy's 2 MB page advice off."""
    default, one_image = _faults("default"), _faults("one image")
    print(f"minor page faults over 10 large arrays: glibc default {default}, one image {one_image}")
    assert default >= 300 and one_image * 10 <= default
