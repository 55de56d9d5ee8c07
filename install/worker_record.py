"""What every host installer (GIMP, Blender) puts beside its adapter, and how it learns it.

An adapter (the GIMP plug-in, the Blender add-on) runs in the host's own Python: it needs the
stdlib-only client and wire-format modules copied next to it, and a record saying which Python
runs the worker and what that worker offers. This module makes those files:

    query_worker(python, tool) -> info       ask the worker's interpreter (it must import mattekit)
    build_record(python, info, idle_timeout) -> dict
    adapter_files(record) -> {file name: bytes}   mattekit_client.py, mattekit_protocol.py, mattekit_worker.json

The record (``mattekit_worker.json``) is the worker's ``GET /v1/operations`` answer at install
time ({"operations": [schema of each], "models": {catalog task: [model...]}}) plus "python",
"state_file", "mattekit_version", "idle_timeout" and "environment" (the MATTEKIT_MIRROR /
MATTEKIT_OFFLINE / MATTEKIT_HOME settings the worker it starts must see). Standard library only,
plus :mod:`mattekit.fsutil` (itself standard library only) from this checkout.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIENT_SOURCE = REPO / "core" / "mattekit" / "client.py"
PROTOCOL_SOURCE = REPO / "core" / "mattekit" / "worker" / "protocol.py"
RECORD = "mattekit_worker.json"
ADAPTER_FILES = ("mattekit_client.py", "mattekit_protocol.py", RECORD)
WORKER_ENVIRONMENT = ("MATTEKIT_MIRROR", "MATTEKIT_OFFLINE", "MATTEKIT_HOME")

try:
    from mattekit import fsutil
except ImportError:  # an installer run by a Python without mattekit (the worker's is named with --python)
    sys.path.insert(0, str(REPO / "core"))
    from mattekit import fsutil

# Run by the worker's interpreter: the same answer as its GET /v1/operations, and where its state file is.
_QUERY = r"""
import json, mattekit
from mattekit import client
from mattekit.runtime import ModelCache
from mattekit.worker import operations
table = operations.build(operations.PathPolicy())
print(json.dumps({"version": mattekit.__version__, "state_file": client.state_path(),
                  "operations": [op.describe() for op in table.values()],
                  "models": operations.model_menus(ModelCache())}))
"""


def query_worker(python, tool):
    """What the worker run by ``python`` offers: {"version", "state_file", "operations", "models"}.

    SystemExit with one sentence (prefixed by ``tool``) when ``python`` cannot run or import mattekit.
    """
    try:
        out = subprocess.run([python, "-c", _QUERY], capture_output=True, text=True, timeout=300)
    except OSError as exc:
        raise SystemExit("%s: cannot run %s (%s)." % (tool, python, exc.strerror or exc))
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit("%s: %s cannot import mattekit (%s); install mattekit into it first "
                         "(bash install/setup.sh) or name another with --python." % (tool, python, last))
    return json.loads(out.stdout.strip().splitlines()[-1])


def build_record(python, info, idle_timeout, env=None):
    """The record an adapter reads (module docstring); ``env``: the environment to take settings from."""
    env = os.environ if env is None else env
    return {"python": python, "state_file": info["state_file"], "mattekit_version": info["version"],
            "idle_timeout": idle_timeout, "operations": info["operations"], "models": info["models"],
            "environment": {name: env[name] for name in WORKER_ENVIRONMENT if env.get(name)}}


def record_bytes(record):
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8")


def adapter_files(record):
    """{file name: bytes}: the client and protocol copies and the record, as an adapter folder holds them."""
    return {"mattekit_client.py": CLIENT_SOURCE.read_bytes(),
            "mattekit_protocol.py": PROTOCOL_SOURCE.read_bytes(),
            RECORD: record_bytes(record)}


def write_file(path, data, mode=0o644):
    """Write ``data`` to ``path`` atomically with permission bits ``mode``."""
    fsutil.atomic_write(path, data, mode=mode)
