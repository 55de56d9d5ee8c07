"""The worker's job table: a queue, the compute thread, progress and cancellation, a cap on queued bytes.

The cap counts reservations: a request reserves the float32 bytes its pixels will take (:meth:`JobTable.reserve`)
before its body is read; the reservation passes to its job and ends with it. While anything is reserved,
the reservations together stay within the cap; a request larger than the cap is taken only alone.

A :class:`Job` wraps ``work(progress)``, a function that does the whole computation and returns the
encoded result; it knows nothing of HTTP or of operations. Jobs run one at a time on the compute
thread, so a model is loaded once however many clients ask. ``progress(fraction, message)`` is
also where a cancel takes effect: it raises :class:`mattekit.errors.Cancelled` once the job has been cancelled.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import Cancelled, MattekitError

KEEP_FINISHED = 600.0  # seconds a finished asynchronous job's result is kept if nobody fetches it
MAX_JOBS = 64  # asynchronous jobs held at once (queued, running and finished)
RETRY_AFTER = 5  # seconds a client is asked to wait when the queue is full
STOP_GRACE = 30.0  # seconds a stopping worker waits for the running job

Progress = Callable[[float, str], None]


class Refused(Exception):
    """The table cannot take a job now: ``code`` (stopping, queue_full, too_many_jobs) and one sentence."""

    def __init__(self, code: str, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.code, self.message, self.retry_after = code, message, retry_after


@dataclass
class Booking:
    """Bytes reserved in the queue for one request; a ``with`` block releases them unless a job took them over."""

    table: "JobTable"
    size: int
    held: bool = True

    def __enter__(self) -> "Booking":
        return self

    def __exit__(self, *exc) -> None:
        self.table.release(self)


@dataclass
class Job:
    """One request, run on the compute thread. ``size``: bytes of pixels it holds until it ends."""

    name: str
    work: Callable[[Progress], Any] | None
    size: int = 0
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: str = "queued"  # queued | running | done | failed | cancelled
    progress: float = 0.0
    message: str = "Waiting"
    error: dict | None = None
    result: Any = None
    finished_at: float | None = None
    forgotten: bool = False  # fetched or cancelled by its client: leaves the table as soon as it has ended
    cancel_event: threading.Event = field(default_factory=threading.Event)
    done_event: threading.Event = field(default_factory=threading.Event)

    def report(self, fraction: float, message: str = "") -> None:
        """The progress callback handed to the work: also the place where a cancel takes effect."""
        if self.cancel_event.is_set():
            raise Cancelled("The job was cancelled.")
        self.progress = float(min(max(fraction, 0.0), 1.0))
        if message:
            self.message = message

    def status(self) -> dict:
        return {
            "id": self.id,
            "operation": self.name,
            "state": self.state,
            "progress": round(self.progress, 4),
            "message": self.message,
            "error": self.error,
        }


class JobTable:
    """Queued, running and kept jobs; ``max_queued_bytes`` caps the pixels reserved for requests and jobs."""

    def __init__(
        self, max_queued_bytes: int, log: Callable[[str], None], on_thread_start: Callable[[], None] | None = None
    ):
        self.max_queued_bytes = int(max_queued_bytes)
        self.log = log
        self.on_thread_start = on_thread_start  # called first on the compute thread
        self.lock = threading.Lock()
        self.jobs: dict[str, Job] = {}  # asynchronous jobs, kept until fetched
        self.queued_bytes = 0  # reserved: pixels of requests being read and of jobs not yet ended
        self.active: dict[str, Job] = {}  # jobs queued or running, synchronous ones included, in the order taken
        self.stopping = False
        self.queue: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._compute, name="mattekit-compute", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Cancel queued jobs, let the running one finish (up to :data:`STOP_GRACE` seconds), end the thread."""
        with self.lock:
            self.stopping = True
            for job in self.jobs.values():
                if job.state == "queued":
                    self._end(job, "cancelled", message="The worker is shutting down")
        self.queue.put(None)
        if self.thread.is_alive():
            self.thread.join(STOP_GRACE)

    def busy(self) -> bool:
        with self.lock:
            return bool(self.active)

    def counts(self) -> tuple[int, int]:
        """(jobs running, jobs queued), synchronous ones included."""
        with self.lock:
            running = sum(job.state == "running" for job in self.active.values())
            return running, len(self.active) - running

    def status(self, job: Job) -> dict:
        """``job``'s status; a queued one's message says how many jobs are before it."""
        with self.lock:
            found = job.status()
            if job.state == "queued" and job.id in self.active:
                ahead = list(self.active).index(job.id)
                found["ahead"] = ahead
                found["message"] = f"Waiting: the worker is busy, {ahead} job{'s' * (ahead != 1)} before this one"
            return found

    def reserve(self, size: int) -> Booking:
        """Reserve ``size`` bytes of the queue for a request (before its body is read), or Refused."""
        with self.lock:
            self._refuse_if_stopping()
            if self.queued_bytes and self.queued_bytes + size > self.max_queued_bytes:
                raise Refused(
                    "queue_full",
                    f"This request's pixels take {size / 2**20:.1f} MiB and the worker's queue "
                    f"already holds {self.queued_bytes / 2**20:.1f} of its {self.max_queued_bytes / 2**20:.1f} "
                    f"MiB (mattekit serve --max-queued-mb); try again shortly.",
                    RETRY_AFTER,
                )
            self.queued_bytes += size
        return Booking(self, size)

    def release(self, booking: Booking) -> None:
        """End a reservation that no job took over (the request failed or was refused)."""
        with self.lock:
            if booking.held:
                booking.held = False
                self.queued_bytes -= booking.size

    def _refuse_if_stopping(self) -> None:
        if self.stopping:
            raise Refused("stopping", "The worker is shutting down.")

    def submit(self, name: str, work: Callable[[Progress], Any], booking: Booking, keep: bool) -> Job:
        """Queue ``work``, which takes over ``booking`` (released when the job ends); ``keep``: an
        asynchronous job, held in the table until fetched."""
        job = Job(name, work, booking.size)
        with self.lock:
            self._refuse_if_stopping()
            if keep:
                self._prune()
                if len(self.jobs) >= MAX_JOBS:
                    raise Refused(
                        "too_many_jobs", f"The worker already holds {MAX_JOBS} jobs; fetch or cancel some first."
                    )
                self.jobs[job.id] = job
            booking.held = False  # the job's now: _end gives the bytes back
            self.active[job.id] = job
        self.queue.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self.lock:
            return self.jobs.get(job_id)

    def statuses(self) -> list[dict]:
        return [self.status(job) for job in list(self.jobs.values())]

    def forget(self, job: Job) -> None:
        """Drop a job from the table: at once when it has ended, else as soon as it ends."""
        with self.lock:
            self._forget(job)

    def cancel(self, job: Job) -> None:
        """Cancel a job (a running one stops at its next progress step) and forget it."""
        with self.lock:
            job.cancel_event.set()
            if job.state == "queued":
                self._end(job, "cancelled", message="Cancelled")
            self._forget(job)

    def _forget(self, job: Job) -> None:
        job.forgotten = True
        if job.done_event.is_set():
            self.jobs.pop(job.id, None)

    def _prune(self) -> None:
        now = time.monotonic()
        for job_id in [j.id for j in self.jobs.values() if j.finished_at and now - j.finished_at > KEEP_FINISHED]:
            del self.jobs[job_id]

    def _end(self, job: Job, state: str, message: str = "", error: dict | None = None, result: Any = None) -> None:
        """Called with the lock held."""
        if job.done_event.is_set():
            return
        job.state, job.error, job.result = state, error, result
        job.message = message or job.message
        job.work = None  # free the pixels now
        job.finished_at = time.monotonic()
        self.queued_bytes -= job.size
        self.active.pop(job.id, None)
        job.done_event.set()
        if job.forgotten:
            self.jobs.pop(job.id, None)

    def _compute(self) -> None:
        if self.on_thread_start is not None:
            self.on_thread_start()
        while True:
            job = self.queue.get()
            if job is None:
                return
            with self.lock:
                if job.state != "queued":
                    continue
                job.state, job.message = "running", f"Running {job.name}"
                work = job.work
            try:
                result = work(job.report)
                if job.cancel_event.is_set():
                    raise Cancelled("The job was cancelled.")
                job.progress = 1.0
                with self.lock:
                    self._end(job, "done", message="Done", result=result)
            except Cancelled:
                with self.lock:
                    self._end(job, "cancelled", message="Cancelled")
            except MattekitError as exc:
                with self.lock:
                    self._end(job, "failed", message=str(exc), error={"code": "task_failed", "message": str(exc)})
            except MemoryError:
                msg = "The worker ran out of memory; try a smaller image or another device."
                with self.lock:
                    self._end(job, "failed", message=msg, error={"code": "out_of_memory", "message": msg})
            except Exception as exc:  # a bug: keep serving, tell the client, log the traceback
                self.log(f"job {job.name} failed:\n" + traceback.format_exc())
                msg = (
                    f"The {job.name} operation failed on an internal error ({type(exc).__name__}); its traceback "
                    "is in the worker's log."
                )
                with self.lock:
                    self._end(job, "failed", message=msg, error={"code": "internal", "message": msg})
            finally:
                del work
