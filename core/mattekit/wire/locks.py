"""The locks between a worker and its clients, standard library only (this package is copied beside each adapter):
the start lock two clients share so that one worker starts, and whether a worker process holds its own lock."""

import os
import sys
import time


def make_private_folder(folder):
    """Make ``folder`` (and its parents) readable by this user alone, or leave it as it is."""
    try:
        os.makedirs(folder, mode=0o700)
    except OSError:
        if not os.path.isdir(folder):
            raise


class StartLock(object):
    """An exclusive lock file next to the state file, so that two clients start one worker."""

    def __init__(self, path):
        self.path = path
        self.handle = None

    def __enter__(self):
        make_private_folder(os.path.dirname(self.path))
        self.handle = open(self.path, "a+")
        if sys.platform == "win32":
            import msvcrt

            while True:
                try:
                    msvcrt.locking(self.handle.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    time.sleep(0.2)
        else:
            import fcntl

            fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        try:
            if sys.platform == "win32":
                import msvcrt

                self.handle.seek(0)
                msvcrt.locking(self.handle.fileno(), msvcrt.LK_UNLCK, 1)
            else:
                import fcntl

                fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
        finally:
            self.handle.close()


def worker_alive(path):
    """Whether a worker process holds the lock of the state file ``path`` (it holds it until it exits), asked
    without waiting: taken and let go at once when free."""
    try:
        handle = open(path + ".worker-lock", "a+")
    except OSError:
        return False
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False
    except OSError:
        return True
    finally:
        handle.close()
