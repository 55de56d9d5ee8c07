"""The benchmarks' process-memory figures: peak and current RSS in bytes, a resettable peak on Linux,
read without importing torch (the rembg child of `bench speed` relies on that)."""

from __future__ import annotations

import mmap
import subprocess
import sys

import numpy as np
import pytest

from mattekit_bench import memory


def touched_block(size: int) -> mmap.mmap:
    """``size`` bytes of fresh anonymous memory with every page written: resident until closed, whatever
    the allocator keeps (mattekit's pipeline lets glibc keep up to 1 GiB freed in its heap, which an
    ``np.ones`` of this size may reuse without the RSS growing)."""
    block = mmap.mmap(-1, size)
    np.frombuffer(block, np.uint8)[:] = 1
    return block


def test_peak_is_at_least_current_and_grows_with_a_touched_allocation():
    now, peak = memory.current_rss(), memory.peak_rss()
    assert 0 < now <= peak
    resettable = memory.reset_peak_rss()
    block = touched_block(64 << 20)
    assert memory.current_rss() >= now + (48 << 20)
    assert memory.peak_rss() >= memory.current_rss()
    block.close()
    if resettable:  # the reset window saw the block come and go
        assert memory.peak_rss() >= now + (48 << 20)


@pytest.mark.skipif(sys.platform != "linux", reason="the peak reset is /proc/self/clear_refs (Linux)")
def test_reset_starts_a_new_peak_window():
    touched_block(96 << 20).close()
    high = memory.peak_rss()
    assert memory.reset_peak_rss()
    assert memory.peak_rss() < high - (48 << 20)


def test_reading_memory_imports_no_torch():
    code = "import sys; from mattekit_bench import memory; memory.peak_rss(); memory.current_rss(); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
