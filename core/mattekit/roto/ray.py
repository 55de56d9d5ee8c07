"""A roto job's chunks on a Ray cluster (:func:`run_on_ray`): one model per Ray worker, each writing its
own frames and journal, resumable like :meth:`mattekit.roto.job.RotoJob.run`."""
from __future__ import annotations

import time
from typing import Callable

from ..errors import MattekitError
from .job import RotoJob
from ..progress import Progress, Reporter
from .summary import Summary
from ..tasks.roto import RotoSpec


def run_on_ray(spec: RotoSpec, chunk: int, address: str | None = None, workers: int | None = None,
               progress: Callable[[Progress], None] | None = None) -> Summary:
    """Run a roto job's chunks on a Ray cluster: one model per worker (one worker per GPU when the
    cluster has GPUs), each worker writing its frames and journal itself. Resumable like :meth:`RotoJob.run`."""
    try:
        import ray
    except ImportError:
        raise MattekitError("--ray needs Ray: pip install 'mattekit[ray]' (or pip install ray).") from None
    job = RotoJob(spec)  # checks the plate, frames and outputs here, before any task starts
    job.prepare_output()
    started = time.monotonic()
    chunks = job.chunks(chunk)
    summary = Summary(job.frames)
    owned = not ray.is_initialized()
    if owned:
        _check_reachable(address)
        try:
            ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR", configure_logging=True)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise MattekitError(f"Cannot reach the Ray cluster{' at ' + address if address else ''}: {str(exc).splitlines()[0]}.") from None
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        cpus = int(ray.cluster_resources().get("CPU", 1))
        count = workers or (gpus if gpus else max(1, cpus // max(1, spec.threads or 1)))
        count = max(1, min(count, len(chunks)))
        options = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": max(1, spec.threads or 1)}
        worker_spec = spec.to_dict() | {"device": spec.device if gpus or spec.device != "auto" else "cpu"}
        actors = [_ray_worker_class(ray).options(**options).remote(worker_spec) for _ in range(count)]
        pool = ray.util.ActorPool(actors)
        report = Reporter(progress, len(job.frames), "frame", 0, started)
        for result in pool.map_unordered(lambda actor, frames: actor.run.remote(frames), chunks):
            part = Summary(result["frames"], result["computed"], result["skipped"], result["seconds"])
            summary.merge(part)
            report.set(len(summary.computed), len(summary.skipped), item=part.frames[-1])
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if isinstance(getattr(exc, "cause", None), Exception) else exc
        if isinstance(cause, MattekitError):
            raise MattekitError(str(cause)) from None
        raise
    finally:
        if owned:
            ray.shutdown()
    summary.computed.sort()
    summary.skipped.sort()
    summary.seconds = time.monotonic() - started
    return summary


_RAY_WORKER = None


def _check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """A cluster address (HOST:PORT, or ray://HOST:PORT) that does not resolve or answers no connection within
    ``timeout`` seconds is one sentence here (Ray itself waits on it for minutes); None / "auto" / "local" pass."""
    import socket

    if not address or address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MattekitError(f"--ray {address} is not HOST:PORT (e.g. 10.0.0.5:6379).")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except (OSError, UnicodeError) as exc:
        why = "no such host" if isinstance(exc, socket.gaierror) else (exc.strerror or type(exc).__name__).lower()
        raise MattekitError(f"Cannot reach the Ray cluster at {address} ({why}).") from None


def _ray_worker_class(ray):
    """The Ray actor class (defined on first use, so that mattekit imports without Ray)."""
    global _RAY_WORKER
    if _RAY_WORKER is None:
        class RotoWorker:
            """Holds one RotoJob (and so one loaded model) and runs chunks of it."""

            def __init__(self, spec: dict):
                self.job = RotoJob(RotoSpec.from_dict(spec))

            def run(self, frames: list[int]) -> dict:
                summary = self.job.run(frames)
                return {"frames": summary.frames, "computed": summary.computed, "skipped": summary.skipped,
                        "seconds": summary.seconds}

        _RAY_WORKER = ray.remote(RotoWorker)
    return _RAY_WORKER
