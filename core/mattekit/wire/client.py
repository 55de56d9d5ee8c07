"""Client of the local mattekit worker (``mattekit serve``): standard library only, Python 3.8+.

Host adapters (the GIMP plug-in, the Blender add-on) cannot load torch, so they send pixels
to one local worker process that keeps models warm. Installers copy this package (:mod:`mattekit.wire`)
next to each adapter as ``mattekit_wire``; so it imports nothing outside the standard library but
its wire format :mod:`.protocol`, and keeps to Python 3.8 syntax.

    worker = connect(python="/path/to/venv/bin/python")   # reuses a running worker or starts one
    alpha, = worker.run("remove", [Pixels(data, w, h, 4, "u8")], {"output": "mask"})

The worker writes its address and token to a per-user state file (:mod:`.state`); every request carries the token
in an ``Authorization: Bearer`` header. Pixels travel raw, as the protocol module describes.
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

from . import protocol
from .locks import StartLock, make_private_folder, worker_alive
from .protocol import Pixels  # the adapters' client.Pixels
from .state import STATE_ENV, WorkerError, read_state, state_path

# The worker is on loopback: never send its requests (and token) through a configured HTTP proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# ---------------------------------------------------------------- talking to a running worker


def _request(inputs, options):
    """(body, headers) of a run's request: a list of Pixels (in the operation's input order) or {input name: Pixels},
    and its ``options``."""
    if isinstance(inputs, dict):
        metas = [dict(p.meta(), name=name) for name, p in inputs.items()]
        pixels = list(inputs.values())
    else:
        pixels = list(inputs)
        metas = [p.meta() for p in pixels]
    head = {
        protocol.META_HEADER: json.dumps({"inputs": metas, "options": options or {}}),
        "Content-Type": "application/octet-stream",
    }
    return protocol.join_body(p.data for p in pixels), head


def _decode(head, body):
    """The output Pixels of an answer whose description (the meta header's JSON) is ``head``."""
    meta = head["outputs"]
    try:
        views = protocol.split_body(meta, body)
    except protocol.ProtocolError as exc:
        raise WorkerError("The worker's answer does not follow the protocol: %s" % exc)
    outputs = [
        Pixels(view.tobytes(), m["width"], m["height"], m["channels"], m["dtype"]) for m, view in zip(meta, views)
    ]
    for pixels in outputs:
        pixels.provenance = head.get("provenance")
        pixels.warnings = list(head.get("warnings", []))
    return outputs


class WorkerClient(object):
    """The HTTP client of a running worker at ``url`` that accepts ``token`` (its requests, jobs and results)."""

    def __init__(self, url, token, timeout=600.0):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    # -- plumbing
    def request(self, method, path, body=None, headers=None, timeout=None):
        """Send one request; returns (status, headers, body bytes). Raises WorkerError on HTTP errors."""
        all_headers = {"Authorization": "Bearer " + self.token}
        all_headers.update(headers or {})
        req = urllib.request.Request(
            self.url + "/" + protocol.API + "/" + path.lstrip("/"), data=body, headers=all_headers, method=method
        )
        try:
            with _OPENER.open(req, timeout=timeout or self.timeout) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as exc:
            code, message = protocol.read_error(exc.read())
            if message is None:
                message = "The worker answered HTTP %d." % exc.code
            raise WorkerError(message, status=exc.code, code=code)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise WorkerError("The mattekit worker at %s does not answer (%s)." % (self.url, reason))

    def get_json(self, path, timeout=None):
        return self.json_answer("GET", path, timeout=timeout)

    def json_answer(self, method, path, body=None, headers=None, timeout=None):
        """The JSON answer of a request (:meth:`request`)."""
        return json.loads(self.request(method, path, body, headers, timeout=timeout)[2].decode("utf-8"))

    # -- what the worker offers
    def health(self, timeout=None):
        """{"ok": true, "version": ..., "pid": ..., "operations": [...], "jobs": {"running", "queued"}} or WorkerError."""
        return self.get_json("health", timeout=timeout)

    def busy(self, timeout=None):
        """ "" when the worker has nothing to do, else a sentence: it is busy, with how many jobs queued."""
        jobs = self.health(timeout=timeout).get("jobs") or {}
        queued = int(jobs.get("queued", 0)) + int(jobs.get("running", 0))
        if not queued:
            return ""
        plural = "" if queued == 1 else "s"
        return "The mattekit worker is busy, %d job%s queued before this one; it waits its turn." % (queued, plural)

    def models(self):
        return self.get_json("models")["models"]

    def schema(self):
        """{"operations": [each operation's inputs, outputs and options], "models": {catalog task: [...]}}."""
        return self.get_json("operations")

    def operations(self):
        return self.schema()["operations"]

    # -- image jobs
    def run(self, operation, inputs, options=None, progress=None, cancelled=None, poll=0.2):
        """Run ``operation`` on ``inputs`` and return the list of output Pixels (in the operation's output order).

        ``inputs``: a list of Pixels in the operation's input order, or {input name: Pixels} (needed
        to give an optional input while leaving out one before it).

        Without ``progress`` the request is synchronous. With it, the job runs asynchronously and
        ``progress(fraction, message)`` is called as the worker reports; ``cancelled()`` returning
        true cancels the job: WorkerError with code "cancelled", the code the worker answers for a cancelled job.
        """
        if progress is None and cancelled is None:
            _, headers, data = self.request("POST", "run/" + operation, *_request(inputs, options))
            return _decode(json.loads(headers[protocol.META_HEADER]), data)
        busy = self.busy() if progress is not None else ""
        if busy:
            progress(0.0, busy)
        job = self.submit(operation, inputs, options)
        while True:
            if cancelled is not None and cancelled():
                self.cancel(job)
                raise WorkerError("The job was cancelled.", code="cancelled")
            status = self.job(job)
            if progress is not None:
                progress(float(status.get("progress", 0.0)), status.get("message", ""))
            if status["state"] in ("done", "failed", "cancelled"):
                break
            time.sleep(poll)
        if status["state"] == "cancelled":
            raise WorkerError("The job was cancelled.", code="cancelled")
        return self.result(job)

    def submit(self, operation, inputs, options=None):
        """Start an asynchronous job; returns its id."""
        return self.json_answer("POST", "jobs/" + operation, *_request(inputs, options))["id"]

    def job(self, job_id):
        """{"id", "state": queued|running|done|failed|cancelled, "progress": 0..1, "message", "error"}."""
        return self.get_json("jobs/" + job_id)

    def result(self, job_id):
        """The outputs of a finished job (WorkerError with the job's message if it failed)."""
        _, headers, data = self.request("GET", "jobs/" + job_id + "/result")
        return _decode(json.loads(headers[protocol.META_HEADER]), data)

    def cancel(self, job_id):
        """DELETE the job: a queued or running one is cancelled, an ended one forgotten by the worker."""
        return self.json_answer("DELETE", "jobs/" + job_id)

    def shutdown(self):
        """Ask the worker to finish what it is doing and exit."""
        return self.json_answer("POST", "shutdown", b"{}", {"Content-Type": "application/json"})


# ---------------------------------------------------------------- finding or starting the worker


def find_worker(path=None, timeout=2.0):
    """The worker recorded in the state file if it answers, else None."""
    state = read_state(path)
    if state is None:
        return None
    worker = WorkerClient(state["url"], state["token"])
    try:
        worker.health(timeout=timeout)
    except WorkerError:
        return None
    return worker


def start_worker(python, path=None, idle_timeout=None, wait=120.0):
    """Start the worker (``mattekit serve``) with ``python`` detached, wait until it answers, return a WorkerClient.

    Its output goes to ``worker.log`` next to the state file. Raises WorkerError with the log's
    last line when it exits early or does not answer within ``wait`` seconds.
    """
    path = path or state_path()
    if not python or not os.path.exists(python):
        raise WorkerError(
            "No Python interpreter for the mattekit worker was found (%s); run the mattekit "
            "installer again, or start the worker yourself with 'mattekit serve'." % (python or "none recorded")
        )
    folder = os.path.dirname(path)
    make_private_folder(folder)
    log_path = os.path.join(folder, "worker.log")
    # = mattekit serve, without the rest of the CLI; it rotates its own log (early errors still land there)
    args = [python, "-m", "mattekit.commands.serve", "--log-file", log_path]
    if idle_timeout is not None:
        args += ["--idle-timeout", str(idle_timeout)]
    env = dict(os.environ)
    env[STATE_ENV] = path
    for name in ("PYTHONHOME", "PYTHONPATH"):  # the host application's Python settings are not ours
        env.pop(name, None)
    kwargs = {}
    if sys.platform == "win32":
        kwargs["creationflags"] = 0x00000008 | 0x00000200  # DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP
    else:
        kwargs["start_new_session"] = True
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, close_fds=True, **kwargs
        )
    deadline = time.time() + wait
    while time.time() < deadline:
        worker = find_worker(path, timeout=1.0)
        if worker is not None:
            return worker
        code = proc.poll()
        if code is not None:
            worker = find_worker(path, timeout=10.0)  # another worker answered it: use that one
            if worker is not None:
                return worker
            raise WorkerError("The mattekit worker stopped at start (exit code %d): %s" % (code, _last_line(log_path)))
        time.sleep(0.2)
    raise WorkerError("The mattekit worker did not answer within %d s; see %s." % (wait, log_path))


def _last_line(path):
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4096))
            lines = [line.strip() for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
        return " / ".join(lines[-3:]) if lines else "no output"
    except OSError:
        return "no log"


def connect(python=None, path=None, start=True, idle_timeout=None, wait=120.0):
    """A WorkerClient: the running one if it answers, else (``start``) a new one run by ``python``. A worker that does
    not answer but is alive (it holds its lock) is busy, not dead: it is waited for (up to ``wait`` s), never doubled."""
    path = path or state_path()
    worker = find_worker(path)
    if worker is not None:
        return worker
    if not start:
        worker = _wait_for_worker(path, wait)
        if worker is None:
            raise WorkerError("No mattekit worker is running; start one with 'mattekit serve'.")
        return worker
    with StartLock(path + ".lock"):
        worker = find_worker(path, timeout=10.0) or _wait_for_worker(path, wait)  # started meanwhile, or busy
        if worker is not None:
            return worker
        return start_worker(python, path, idle_timeout=idle_timeout, wait=wait)


def _wait_for_worker(path, wait):
    """The worker of ``path`` once it answers, while it is alive (:func:`worker_alive`; up to ``wait`` s); None when
    none is alive; WorkerError when it lives but never answers."""
    deadline = time.time() + wait
    while worker_alive(path):
        worker = find_worker(path, timeout=2.0)
        if worker is not None:
            return worker
        if time.time() >= deadline:
            break
        time.sleep(0.5)
    else:
        return None
    state = read_state(path) or {}
    raise WorkerError(
        "The mattekit worker (process %s) is running but has not answered for %d s; it may be stuck: "
        "see its log %s, or end that process."
        % (state.get("pid", "?"), wait, os.path.join(os.path.dirname(path), "worker.log"))
    )


def read_record(folder):
    """The installer's record next to an adapter (``mattekit_worker.json``): {"python", ...} or {}."""
    try:
        with open(os.path.join(folder, "mattekit_worker.json"), "r", encoding="utf-8") as f:
            record = json.load(f)
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


def recorded_state_file(record):
    """Where an adapter looks for its worker: $MATTEKIT_WORKER_STATE, the installer's ``record``, or the default."""
    return os.environ.get(STATE_ENV) or record.get("state_file") or state_path()


def connect_recorded(record, python=None):
    """connect() as the installer's ``record`` says: its settings (MATTEKIT_MIRROR, _OFFLINE, _HOME, unless
    set already), interpreter (``python``, else $MATTEKIT_PYTHON, else the record's), state file and idle timeout."""
    for name, value in record.get("environment", {}).items():
        os.environ.setdefault(name, value)
    python = python or os.environ.get("MATTEKIT_PYTHON") or record.get("python")
    return connect(python=python, path=recorded_state_file(record), idle_timeout=record.get("idle_timeout"))
