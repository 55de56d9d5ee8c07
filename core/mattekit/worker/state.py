"""The worker's state file (address and token, 0600) and the lock that keeps one worker per state file.

The record is ``{"url", "token", "pid", "version", "api"}``; clients find it with
:func:`mattekit.wire.state.state_path` and read it with :func:`mattekit.wire.state.read_state`.
The lock is an exclusive ``flock`` on ``<state file>.worker-lock``, taken before the worker binds
its port and held until the process exits (the client's own ``<state file>.lock`` only orders
clients that start a worker, so the two never wait on each other).
"""

from __future__ import annotations

import json
import os
import time

from ..errors import MattekitError
from ..fsutil import atomic_write, try_lock
from ..wire import locks, protocol
from ..wire.state import WorkerError, read_state, state_folder


def write(path: str, record: dict) -> None:
    """Write the state record atomically, readable by its owner only (0600, folder 0700). The default folder
    ($MATTEKIT_HOME or the per-user one) is made private even if it existed; another folder only if new."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, mode=0o700, exist_ok=True)
    if os.path.normcase(folder) == os.path.normcase(state_folder()):
        os.chmod(folder, 0o700)
    atomic_write(path, json.dumps(dict(record, api=protocol.API_VERSION), indent=1), mode=0o600)


def remove(path: str, token: str) -> None:
    """Remove the state file if it still describes the worker holding ``token``."""
    try:
        record = read_state(path)
    except WorkerError:  # not ours any more: leave it
        return
    if record is not None and record.get("token") == token:
        try:
            os.remove(path)
        except OSError:
            pass


class OwnerLock:
    """The exclusive lock of one state file: :meth:`acquire` fails in one sentence while another worker holds it."""

    def __init__(self, state_path: str):
        self.state_path = state_path
        self.path = state_path + locks.OWNER_SUFFIX
        self.handle = None

    def acquire(self, wait: float = 0.0) -> "OwnerLock":
        """Take the lock, retrying for up to ``wait`` seconds; MattekitError if another worker keeps it."""
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), mode=0o700, exist_ok=True)
        handle = open(self.path, "a+")
        deadline = time.monotonic() + wait
        while not try_lock(handle):
            if time.monotonic() >= deadline:
                handle.close()
                raise MattekitError(
                    f"Another mattekit worker already serves the state file {self.state_path}; "
                    f"stop it first (or give this one its own --state-file)."
                )
            time.sleep(0.1)
        self.handle = handle
        return self

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()  # closing the file drops the lock
            self.handle = None
