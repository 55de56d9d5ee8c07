"""The worker's log: rate-limited lines, and a size-capped file that rotates (``worker.log``, ``.1``).

A flood of failures (a port scanner, a broken client retrying) writes at most ``burst`` lines at
once and ``rate`` lines per second after that; what is dropped is counted in the next line that
gets through. Without a file, lines go to stderr. With one, when it outgrows ``max_bytes`` it
becomes ``<file>.1`` (one older file kept) and a new file is started; ``capture_std`` (the
``mattekit serve`` process) points stdout and stderr at it too, so that a stray print or a
dying thread's traceback lands there.
"""

from __future__ import annotations

import os
import sys
import threading
import time

DEFAULT_MAX_BYTES = 1 << 20  # 1 MiB per file, two files
DEFAULT_RATE = 2.0  # lines per second, after a burst
DEFAULT_BURST = 10


class WorkerLog:
    """``log(text)``: one timestamped line (or block), subject to the rate limit; thread-safe."""

    def __init__(
        self,
        path: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        rate: float = DEFAULT_RATE,
        burst: int = DEFAULT_BURST,
        capture_std: bool = False,
    ):
        self.path = path
        self.capture_std = capture_std
        self.fd = 2
        self.max_bytes = int(max_bytes)
        self.rate, self.burst = float(rate), float(burst)
        self.allowance = float(burst)
        self.checked = time.monotonic()
        self.dropped = 0
        self.lock = threading.Lock()
        if path:
            self._open()

    def _open(self) -> None:
        """(Re)open the log file for appending; with ``capture_std``, fds 1 and 2 become it."""
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if self.capture_std:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
            fd = 2
        elif self.fd != 2:
            os.close(self.fd)
        self.fd = fd

    def _rotate_if_full(self) -> None:
        try:
            if os.path.getsize(self.path) < self.max_bytes:
                return
            os.replace(self.path, self.path + ".1")
        except OSError:
            return
        self._open()

    def __call__(self, text: str) -> None:
        with self.lock:
            now = time.monotonic()
            self.allowance = min(self.burst, self.allowance + (now - self.checked) * self.rate)
            self.checked = now
            if self.allowance < 1.0:
                self.dropped += 1
                return
            self.allowance -= 1.0
            note = f" ({self.dropped} earlier lines dropped by the rate limit)" if self.dropped else ""
            self.dropped = 0
            line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} mattekit worker: {text}{note}\n"
            if self.path:
                self._rotate_if_full()
            else:
                sys.stderr.flush()
            try:
                os.write(self.fd, line.encode("utf-8", "replace"))
            except OSError:
                return
