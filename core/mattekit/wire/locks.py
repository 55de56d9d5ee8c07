"""The locks between a worker and its clients, standard library only (this package is copied beside each adapter):
the start lock two clients share so that one worker starts, and whether a worker process holds its own lock.
:func:`lock` and :func:`unlock` are the platform's file lock, which :mod:`mattekit.fsutil` uses too."""

import os
import sys
import time

OWNER_SUFFIX = ".worker-lock"  # <state file> + this: the lock a worker holds until it exits


def make_private_folder(folder):
    """Make ``folder`` (and its parents) readable by this user alone, or leave it as it is."""
    try:
        os.makedirs(folder, mode=0o700)
    except OSError:
        if not os.path.isdir(folder):
            raise


def lock(handle, wait):
    """Lock the open file ``handle`` exclusively (its first byte on Windows); with ``wait``, until it is free, else
    OSError while another process holds it. Closing the handle (or the process ending) releases it."""
    if sys.platform == "win32":
        import msvcrt

        while True:
            try:
                msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK if wait else msvcrt.LK_NBLCK, 1)
                return
            except OSError:
                if not wait:
                    raise
                time.sleep(0.2)
    import fcntl

    fcntl.flock(handle.fileno(), fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)


def unlock(handle):
    """Let go of :func:`lock`'s lock on ``handle``, which stays open."""
    if sys.platform == "win32":
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class StartLock(object):
    """An exclusive lock file next to the state file, so that two clients start one worker."""

    def __init__(self, path):
        self.path = path
        self.handle = None

    def __enter__(self):
        make_private_folder(os.path.dirname(self.path))
        self.handle = open(self.path, "a+")
        lock(self.handle, wait=True)
        return self

    def __exit__(self, *exc):
        try:
            unlock(self.handle)
        finally:
            self.handle.close()


def worker_alive(path):
    """Whether a worker process holds the lock of the state file ``path`` (it holds it until it exits), asked
    without waiting: taken and let go at once when free."""
    try:
        handle = open(path + OWNER_SUFFIX, "a+")
    except OSError:
        return False
    try:
        lock(handle, wait=False)
        unlock(handle)
        return False
    except OSError:
        return True
    finally:
        handle.close()
