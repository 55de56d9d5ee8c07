"""The worker's life: the one-worker lock, binding, the state file, the idle watchdog, stopping.

:class:`WorkerServer` puts together the parts the package's docstring lists. Binds 127.0.0.1 on a random free port
by default.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from typing import Callable

from .. import __version__, runtime
from ..errors import MattekitError
from ..runtime import ModelCache, say_on_stderr
from . import connections, jobs, operations, routes, state
from .log import WorkerLog

DEFAULT_MAX_REQUEST = 1 << 30  # bytes: a 16k x 16k RGBA 8-bit image
DEFAULT_MAX_QUEUED = 2 << 30  # bytes of decoded pixels waiting in the queue
DEFAULT_IDLE_TIMEOUT = 900.0  # seconds


class WorkerServer:
    """The worker: an HTTP server, a job table and compute thread, a model cache, an idle watchdog.

    operations: {name: Operation} (default: every registered task and roto); allow_dirs: the folders
    roto may read and write (see :class:`mattekit.worker.operations.PathPolicy`); log: a callable
    taking one line (default: a rate-limited :class:`WorkerLog` on stderr). With a state file, the
    state file's lock is taken first (waiting up to ``lock_wait`` s): a second worker for the same
    state file fails with one sentence (MattekitError) before it binds a port.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        max_request: int = DEFAULT_MAX_REQUEST,
        max_queued: int = DEFAULT_MAX_QUEUED,
        state_file: str | None = None,
        operations_table: dict | None = None,
        allow_dirs: list[str] | None = None,
        threads: int | None = None,
        log: Callable[[str], None] | None = None,
        pool_size: int = connections.POOL_SIZE,
        max_connections: int = connections.MAX_CONNECTIONS,
        lock_wait: float = 0.0,
    ):
        self.token = token or secrets.token_urlsafe(32)
        self.idle_timeout = idle_timeout if idle_timeout and idle_timeout > 0 else None
        self.max_request = int(max_request)
        self.state_file = state_file
        self.log = log or WorkerLog()
        self.models = ModelCache(say=say_on_stderr)  # this worker's loaded models, reported by /v1/models
        self.operations = dict(
            operations_table if operations_table is not None else operations.build(operations.PathPolicy(allow_dirs))
        )
        self.torch_threads = threads
        self.started = time.time()
        self.last_activity = time.monotonic()
        self.active_requests = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.stopped = threading.Event()
        self.owner = state.OwnerLock(state_file).acquire(lock_wait) if state_file else None
        try:
            self.jobs = jobs.JobTable(max_queued, self.log, on_thread_start=self._set_threads)
            self.httpd = connections.Server(
                (host, port), routes.Routes, self, pool_size=pool_size, max_connections=max_connections
            )
        except BaseException:
            if self.owner:
                self.owner.release()
            raise
        self.host, self.port = self.httpd.server_address[:2]
        self.url = f"http://{f'[{self.host}]' if ':' in self.host else self.host}:{self.port}"

    # -- requests
    def enter_request(self) -> None:
        with self.lock:
            self.active_requests += 1

    def leave_request(self, activity: bool) -> None:
        with self.lock:
            self.active_requests -= 1
        if activity:
            self.last_activity = time.monotonic()

    def submit(
        self, op: operations.Operation, inputs: dict, options, output_dtype: str, booking: jobs.Booking, keep: bool
    ) -> jobs.Job:
        """Queue one run of ``op``, holding ``booking``; the job's result is (the answer's description, bytes)."""

        def work(progress):
            notes: list[str] = []  # the answer's warnings (a subject that came out empty), in the worker's words
            try:
                outputs, record = op.run(
                    self.models,
                    inputs,
                    options,
                    progress,
                    warn=lambda sentence: notes.append(operations.worker_words(op.name, sentence)),
                )
            except MattekitError as exc:  # its sentence names CLI flags: name the options as the API does
                raise MattekitError(operations.worker_words(op.name, str(exc))) from None
            return operations.encode_outputs(op, outputs, output_dtype, record, notes)

        return self.jobs.submit(op.name, work, booking, keep)

    # -- life cycle
    def _set_threads(self) -> None:
        if self.torch_threads:  # torch's thread setting is per calling thread: make it on the compute thread
            runtime.set_threads(self.torch_threads)

    def _start(self) -> None:
        self.jobs.start()
        if self.state_file:
            state.write(
                self.state_file, {"url": self.url, "token": self.token, "pid": os.getpid(), "version": __version__}
            )
        if self.idle_timeout:
            threading.Thread(target=self._watch_idle, name="mattekit-idle", daemon=True).start()

    def serve_forever(self, _started: bool = False) -> None:
        """Serve until shutdown (a request, a signal via :meth:`stop`, or the idle timeout)."""
        if not _started:
            self._start()
        try:
            self.httpd.serve_forever(poll_interval=0.2)
        finally:
            self._finish()

    def start_background(self) -> "WorkerServer":
        """Serve on a daemon thread (tests, embedding); the state file exists when this returns."""
        self._start()
        threading.Thread(target=self.serve_forever, args=(True,), name="mattekit-http", daemon=True).start()
        return self

    def stop(self, reason: str = "shutdown requested", wait: bool = False) -> None:
        """Stop accepting requests, cancel queued jobs, let the running one finish; safe from any thread."""
        if not self.stopping.is_set():
            self.stopping.set()
            self.log(f"stopping ({reason})")
            threading.Thread(target=self.httpd.shutdown, daemon=True).start()
        if wait:
            self.stopped.wait(60)

    def _finish(self) -> None:
        self.stopping.set()
        self.jobs.stop()
        self.httpd.server_close()
        if self.state_file:
            state.remove(self.state_file, self.token)
        if self.owner:
            self.owner.release()
        self.stopped.set()

    def _watch_idle(self) -> None:
        step = min(1.0, self.idle_timeout / 4)
        while not self.stopping.wait(step):
            with self.lock:
                busy = self.active_requests > 0
            if not busy and not self.jobs.busy() and time.monotonic() - self.last_activity > self.idle_timeout:
                self.stop(f"idle for {self.idle_timeout:g} s")
                return
