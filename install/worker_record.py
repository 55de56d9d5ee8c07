"""What every host installer (GIMP, Blender) puts beside its adapter, and how it learns it.

An adapter (the GIMP plug-in, the Blender add-on) runs in the host's own Python: it needs the
stdlib-only package :mod:`mattekit.wire` (the client and the wire format) copied next to it as
``mattekit_wire``, and a record saying which Python runs the worker, with which settings, and what
that worker offers:

    settings = worker_settings(os.environ)           MATTEKIT_MIRROR / _OFFLINE / _HOME set now
    info = query_worker(python, settings, tool)      ask the worker's interpreter (it must import mattekit)
    record = build_record(python, info, idle_timeout, settings)
    adapter_files(record) -> {file path: bytes}      mattekit_wire/*.py, mattekit_worker.json

The record (``mattekit_worker.json``): "python", "state_file", "mattekit_version", "environment"
(the settings above, which the adapter gives the worker it starts), "schema" (what the worker
answers to ``GET /v1/operations``: every operation's ports and options, and the models) and
"idle_timeout". Options keep the worker's order (GIMP passes arguments by position; Blender shows
them in that order). Standard library only, plus :mod:`mattekit.fsutil` (standard library only
too) from this checkout.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "core"))
from mattekit.fsutil import atomic_write, sha256_file  # noqa: E402,F401 - the installers' file writes and hashes

WIRE_SOURCE = REPO / "core" / "mattekit" / "wire"
WIRE = "mattekit_wire"  # the wire package's name beside an adapter
RECORD = "mattekit_worker.json"
ADAPTER_FILES = tuple(WIRE + "/" + path.name for path in sorted(WIRE_SOURCE.glob("*.py"))) + (RECORD,)
WORKER_SETTINGS = ("MATTEKIT_MIRROR", "MATTEKIT_OFFLINE", "MATTEKIT_HOME")  # recorded for the worker

# Asked of the worker's interpreter: can it import mattekit, and what does it offer? The schema is
# what the worker answers to GET /v1/operations, made from the task registry.
_QUERY = r"""
import json, mattekit
from mattekit.wire import client
from mattekit.runtime import ModelCache
from mattekit.worker import operations
schema = operations.schema(operations.build(operations.PathPolicy()), ModelCache())
print(json.dumps({"version": mattekit.__version__, "schema": schema, "state_file": client.state_path()}))
"""


def worker_settings(env):
    """{name: value} of the MATTEKIT_* settings set now that the worker needs (paths made absolute)."""
    settings = {}
    for name in WORKER_SETTINGS:
        value = env.get(name)
        if not value:
            continue
        if name == "MATTEKIT_HOME" or (name == "MATTEKIT_MIRROR" and "://" not in value):
            value = os.path.abspath(os.path.expanduser(value))
        settings[name] = value
    return settings


def query_worker(python, settings, tool):
    """What the worker run by ``python`` with ``settings`` offers: {"version", "schema", "state_file"}.

    SystemExit with one sentence (prefixed by ``tool``) when ``python`` cannot run or import mattekit.
    """
    try:
        out = subprocess.run(
            [python, "-c", _QUERY], capture_output=True, text=True, timeout=300, env=dict(os.environ, **settings)
        )
    except OSError as exc:
        raise SystemExit("%s: cannot run %s (%s)." % (tool, python, exc.strerror or exc))
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(
            "%s: %s cannot import mattekit (%s); install mattekit into it first "
            "(pip install -e .) or name another with --python." % (tool, python, last)
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def build_record(python, info, idle_timeout, settings):
    """The record an adapter reads (see the module docstring)."""
    return {
        "python": python,
        "state_file": info["state_file"],
        "mattekit_version": info["version"],
        "environment": settings,
        "schema": info["schema"],
        "idle_timeout": idle_timeout,
    }


def adapter_files(record):
    """{path relative to the adapter ("/"-separated): bytes} of :data:`ADAPTER_FILES`: the wire package's copy
    and the record."""
    files = {name: (WIRE_SOURCE / name.split("/")[1]).read_bytes() for name in ADAPTER_FILES if name != RECORD}
    # keys in their own order: options must stay in the worker's order (see the module docstring)
    files[RECORD] = (json.dumps(record, indent=2) + "\n").encode("utf-8")
    return files
