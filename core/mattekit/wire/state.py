"""Where the local worker is written down, standard library only, Python 3.8 syntax (copied with :mod:`.client`).

The worker writes ``{"url", "token", "pid", "version"}`` to a per-user state file (mode 0600, :func:`state_path`).
On POSIX systems the client trusts a state file only if it belongs to the user, nobody else may read or write it,
and its folder is not writable by others (else it could send the user's pixels to another user's process):
:func:`read_state` refuses it in one sentence, a :class:`WorkerError` (the error every client call raises).
"""

import json
import os
import stat
import sys

STATE_ENV = "MATTEKIT_WORKER_STATE"


class WorkerError(Exception):
    """The worker could not be reached or refused a request; the message is one sentence for the user."""

    def __init__(self, message, status=None, code=None):
        Exception.__init__(self, message)
        self.status = status
        self.code = code


def state_path():
    """The per-user state file: $MATTEKIT_WORKER_STATE, else worker.json in :func:`state_folder`."""
    explicit = os.environ.get(STATE_ENV)
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    return os.path.join(state_folder(), "worker.json")


def state_folder():
    """The folder of the default state file: $MATTEKIT_HOME, else the platform's per-user state folder
    (XDG state on Linux, Application Support on macOS, LOCALAPPDATA on Windows) + mattekit."""
    home = os.environ.get("MATTEKIT_HOME")
    if home:
        return os.path.abspath(os.path.expanduser(home))
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser(os.path.join("~", "AppData", "Local"))
    elif sys.platform == "darwin":
        base = os.path.expanduser(os.path.join("~", "Library", "Application Support"))
    else:
        base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser(os.path.join("~", ".local", "state"))
    return os.path.join(base, "mattekit")


def read_state(path=None):
    """The worker's state record (dict) or None when there is none or it is unreadable; WorkerError
    when it is there but cannot be trusted (:func:`check_private`)."""
    path = path or state_path()
    try:
        with open(path, "r", encoding="utf-8") as f:
            check_private(path, os.fstat(f.fileno()))  # the very file read, not whatever the name points to later
            state = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not state.get("url") or not state.get("token"):
        return None
    return state


def check_private(path, info):
    """WorkerError unless the state file ``path`` (``info``: its os.stat) belongs to this user, nobody
    else may read or write it, and others cannot write its folder. Nothing to check on Windows."""
    if not hasattr(os, "getuid"):
        return
    if info.st_uid != os.getuid():
        raise WorkerError(
            "The worker state file %s belongs to another user, so it is not used; remove it "
            "(rm %s) if you do not know why it is there." % (path, path)
        )
    if info.st_mode & 0o066:
        raise WorkerError(
            "The worker state file %s can be read or written by other users, so it is not used; "
            "make it private with 'chmod 600 %s'." % (path, path)
        )
    folder = os.path.dirname(os.path.abspath(path))
    if os.stat(folder).st_mode & stat.S_IWOTH:
        raise WorkerError(
            "The folder %s of the worker state file can be written by other users, so the file is "
            "not used; make it private with 'chmod 700 %s' or choose another state file." % (folder, folder)
        )
