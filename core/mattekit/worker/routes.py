"""The worker's endpoints: what each request of the API does (:class:`Routes`), on the request plumbing
of :mod:`.request`, with what the routes need of the worker in the :class:`WorkerForRoutes` protocol.

API (JSON unless noted; errors as :func:`mattekit.wire.protocol.error_body` with a 4xx/5xx status):

    GET    /v1/health              {"ok", "version", "api", "pid", "uptime", "operations", "jobs", ...}: answered by
                                   a thread of its own, never behind a job or a full handler pool
    GET    /v1/operations          {"operations": [schema of each], "models": {catalog task: [model...]}}
    GET    /v1/models              the catalog, with which weights are cached / loaded
    POST   /v1/run/OP              synchronous job: raw pixels in, raw pixels out (the protocol module)
    POST   /v1/jobs/OP             asynchronous job -> 202 {"id", "state"}
    GET    /v1/jobs                every kept job's status
    GET    /v1/jobs/ID             {"id", "state", "progress", "message", "error"} (+ "ahead" while queued)
    GET    /v1/jobs/ID/result      raw pixels of a finished job (409 while it runs)
    DELETE /v1/jobs/ID             cancel
    POST   /v1/shutdown            finish the running job and exit
"""

from __future__ import annotations

import json
import os
import time
from typing import Protocol

from .. import __version__
from ..runtime import ModelCache
from ..options import OptionError
from ..wire import protocol
from . import jobs, operations
from .connections import App
from .request import Handler, RequestError

CLIENT_CHECK = 0.25  # seconds between checks that a synchronous job's client is still connected


class WorkerForRoutes(App, Protocol):
    """What the routes need of the worker (:class:`mattekit.worker.service.WorkerServer` is one)."""

    operations: dict[str, operations.Operation]
    models: ModelCache
    jobs: jobs.JobTable
    started: float  # time.time() at start
    idle_timeout: float | None

    def submit(
        self, op: operations.Operation, inputs: dict, options, output_dtype: str, booking: jobs.Booking, keep: bool
    ) -> jobs.Job: ...

    def stop(self, reason: str = ..., wait: bool = ...) -> None: ...


class Routes(Handler):
    """The API's endpoints (``ep_*``), found through :data:`ROUTES`."""

    worker: WorkerForRoutes  # (the handler's property, typed for the routes)

    def ep_health(self, _args):
        w = self.worker
        running, queued = w.jobs.counts()  # + requests that wait for a handler thread: jobs to be
        self._json(
            200,
            {
                "ok": True,
                "version": __version__,
                "api": protocol.API_VERSION,
                "pid": os.getpid(),
                "uptime": round(time.time() - w.started, 3),
                "operations": sorted(w.operations),
                "idle_timeout": w.idle_timeout,
                "max_request": w.max_request,
                "jobs": {"running": running, "queued": queued + self.server.ready.qsize()},
            },
        )

    def ep_operations(self, _args):
        self._json(200, operations.schema(self.worker.operations, self.worker.models))

    def ep_models(self, _args):
        menus = operations.model_menus(self.worker.models)
        self._json(200, {"models": [dict(m, task=task) for task, models in menus.items() for m in models]})

    def _parse_job(self, args) -> tuple[operations.Operation, dict, object, str, int, int]:
        """(operation, meta, checked options, output dtype, body length, float32 bytes its pixels will take)
        of a job request, all checked before its body is read."""
        if len(args) != 1:
            raise RequestError(404, "not_found", f"Name one operation, as in /{protocol.API}/run/remove.")
        op = self.worker.operations.get(args[0])
        if op is None:
            raise RequestError(
                404,
                "unknown_operation",
                f"Unknown operation '{args[0]}'; this worker offers: {', '.join(sorted(self.worker.operations))}.",
            )
        length = self._length()
        raw = self.headers.get(protocol.META_HEADER)
        if raw is None:
            raise RequestError(400, "bad_meta", f"The {protocol.META_HEADER} header describing the pixels is missing.")
        try:
            meta = protocol.decode_meta(raw)
        except protocol.ProtocolError as exc:
            raise RequestError(400, exc.code, str(exc)) from None
        options = meta.get("options") or {}
        if not isinstance(options, dict):
            raise RequestError(400, "bad_option", "Options must be a JSON object.")
        try:
            checked = op.make_options(options)
        except OptionError as exc:
            raise RequestError(400, "bad_option", str(exc)) from None
        except (TypeError, ValueError) as exc:  # a combination the options' own checks refuse
            raise RequestError(400, "bad_option", str(exc).strip().splitlines()[0][:300] or "Bad options.") from None
        try:
            expected, size = operations.pixel_sizes(op, meta.get("inputs", []))
        except protocol.ProtocolError as exc:
            if exc.code == "too_many_pixels":  # a real image's body, well past what an error skims: read it
                self._discard(length)
            raise RequestError(400, exc.code, str(exc)) from None
        if expected != length:
            raise RequestError(
                400, "bad_body", f"The body holds {length} bytes but the pixels described take {expected}."
            )
        first = meta["inputs"][0]["dtype"] if meta.get("inputs") else "f32"  # "roto" takes no pixels
        output_dtype = meta.get("output_dtype") or first
        if not isinstance(output_dtype, str) or output_dtype not in protocol.DTYPES:
            raise RequestError(
                400, "bad_meta", f"output_dtype {output_dtype!r} is not one of {', '.join(protocol.DTYPES)}."
            )
        return op, meta, checked, output_dtype, length, size

    def _submit(self, args, keep: bool) -> jobs.Job:
        op, meta, options, output_dtype, length, size = self._parse_job(args)
        try:
            booking = self.worker.jobs.reserve(size)  # before the body is read: concurrent requests count too
        except jobs.Refused as exc:
            self._discard(length)
            raise refused(exc) from None
        with booking:
            body = self._body(length)
            try:
                inputs = operations.decode_inputs(op, meta.get("inputs", []), body)
            except protocol.ProtocolError as exc:
                raise RequestError(400, exc.code, str(exc)) from None
            del body
            try:
                return self.worker.submit(op, inputs, options, output_dtype, booking, keep)
            except jobs.Refused as exc:
                raise refused(exc) from None

    def _send_result(self, job: jobs.Job, kept: bool = False) -> None:
        """The answer holding ``job``'s result, sent whole. A client that leaves part-way (or stops reading for
        :data:`.connections.CONNECTION_TIMEOUT` s) is logged as not delivered and the error raised on: the job,
        ``kept``, is forgotten only after a whole answer, so it can be fetched again."""
        head, data = job.result
        try:
            self._send(200, data, "application/octet-stream", {protocol.META_HEADER: json.dumps(head)})
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.worker.log(
                f"the {job.name} result of job {job.id} was not delivered: its client left before the answer's end"
                + ("; the job is kept to be fetched again" if kept else " (a synchronous answer: the result is lost)")
            )
            raise

    def _raise_unless_done(self, job: jobs.Job, finished: bool = True) -> None:
        """Refuse unless the job is done: ``finished``, whether it had ended (its done event set) when asked."""
        if not finished:
            raise RequestError(409, "not_finished", f"Job {job.id} is {job.state} ({job.progress:.0%}).")
        if job.state == "cancelled":
            raise RequestError(409, "cancelled", "The job was cancelled.")
        if job.state == "failed":
            raise RequestError(
                422 if job.error["code"] == "task_failed" else 500, job.error["code"], job.error["message"]
            )

    def ep_run(self, args):
        """A synchronous job: the answer waits for it; a client that hangs up meanwhile cancels it (a running
        job stops at its next progress step) and frees this handler thread at once."""
        job = self._submit(args, keep=False)
        while not job.done_event.wait(CLIENT_CHECK):
            if self._client_gone():
                self.worker.jobs.cancel(job)
                self.worker.log(f"cancelled a {job.name} job: its client hung up before the answer")
                self.close_connection = True
                return
        self._raise_unless_done(job)
        self._send_result(job)

    def ep_submit_job(self, args):
        job = self._submit(args, keep=True)
        self._json(202, job.status(), {"Location": f"/{protocol.API}/jobs/{job.id}"})

    def _job(self, job_id: str) -> jobs.Job:
        job = self.worker.jobs.get(job_id)
        if job is None:
            raise RequestError(
                404, "unknown_job", f"There is no job {job_id!r} (finished jobs are kept until fetched)."
            )
        return job

    def ep_list_jobs(self, _args):
        self._json(200, {"jobs": self.worker.jobs.statuses()})

    def ep_job_status(self, args):
        self._json(200, self.worker.jobs.status(self._job(args[0])))

    def ep_job_result(self, args):
        if len(args) != 2 or args[1] != "result":
            raise RequestError(404, "not_found", f"Use /{protocol.API}/jobs/ID or /{protocol.API}/jobs/ID/result.")
        job = self._job(args[0])
        finished = job.done_event.is_set()  # read once: the job may end while we answer
        if finished and job.state != "done":
            self.worker.jobs.forget(job)  # this answer hands over its error: forget the job
        self._raise_unless_done(job, finished)
        self._send_result(job, kept=True)
        self.worker.jobs.forget(job)  # its result is sent whole: forget it

    def ep_cancel_job(self, args):
        job = self._job(args[0])
        self.worker.jobs.cancel(job)
        self._json(200, job.status())

    def ep_shutdown(self, _args):
        self._json(200, {"ok": True, "message": "The worker is shutting down."})
        self.worker.stop("asked by a client")


def refused(exc: jobs.Refused) -> RequestError:
    """The HTTP answer to a job the table cannot take."""
    status = {"too_many_jobs": 429}.get(exc.code, 503)
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return RequestError(status, exc.code, exc.message, headers)


ROUTES = {
    ("GET", "health", 2): Routes.ep_health,
    ("GET", "operations", 2): Routes.ep_operations,
    ("GET", "models", 2): Routes.ep_models,
    ("POST", "run", 3): Routes.ep_run,
    ("POST", "jobs", 3): Routes.ep_submit_job,
    ("GET", "jobs", 2): Routes.ep_list_jobs,
    ("GET", "jobs", 3): Routes.ep_job_status,
    ("GET", "jobs", 4): Routes.ep_job_result,
    ("DELETE", "jobs", 3): Routes.ep_cancel_job,
    ("POST", "shutdown", 2): Routes.ep_shutdown,
}

Routes.routes = ROUTES
