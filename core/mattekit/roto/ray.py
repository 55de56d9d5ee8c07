"""A roto job's chunks on a Ray cluster (:func:`run_on_ray`): one model per Ray worker, each writing its
own frames and journal, resumable like :meth:`mattekit.roto.job.RotoJob.run`; how the workers are spread over
the cluster's GPUs and CPUs is :func:`layout`."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

from ..errors import MattekitError
from .job import RotoJob, Summary
from ..progress import Progress, Reporter
from ..tasks.roto import RotoSpec


@dataclass(frozen=True)
class Layout:
    """The workers of a roto job on Ray: ``workers`` actors, each reserving ``cpus`` CPUs and ``gpus`` of a GPU
    (0: none; 0.5: two workers share one), each running the job with ``device`` and ``threads`` torch threads."""

    workers: int
    cpus: float
    gpus: float
    device: str
    threads: int

    def describe(self) -> str:
        each = [f"{_number(self.gpus)} GPU"] if self.gpus else []
        return f"{self.workers} worker(s), each {' and '.join(each + [_number(self.cpus) + ' CPU'])}"


def layout(nodes: list[dict], device: str, workers: int | None, threads: int | None, chunks: int) -> Layout:
    """How to spread ``chunks`` chunks over a cluster whose alive nodes have ``nodes`` resources (``{"CPU": 16.0,
    "GPU": 2.0}``, as ``ray.nodes()`` lists them), for a job asking for ``device`` ("auto", "cpu", "cuda", "cuda:N",
    "mps"), ``workers`` (None: one per GPU where the cluster has GPUs and the device allows one, else one per
    ``threads`` CPUs) and ``threads`` (None: the CPUs each worker reserves). GPU workers run on the GPU nodes, with
    an equal share of the CPUs beside each GPU; workers beyond the GPUs share them. Every reservation fits the
    nodes at once (an actor whose reservation never fits waits forever, and so would its chunk)."""
    device = device.lower()
    gpu_nodes = [(float(n.get("CPU", 0)), int(n.get("GPU", 0))) for n in nodes if int(n.get("GPU", 0)) > 0]
    total_gpus = sum(g for _, g in gpu_nodes)
    if device.startswith("cuda") and not total_gpus:
        raise MattekitError(f"--device {device} on Ray needs GPUs, and the cluster has none: use --device auto or cpu.")
    if total_gpus and (device == "auto" or device.startswith("cuda")):
        count = max(1, min(workers or total_gpus, chunks))
        per_gpu = -(-count // total_gpus)  # workers sharing one GPU
        cpus = _reservable(min(c / (g * per_gpu) for c, g in gpu_nodes))
        # a worker sees only its own GPU (Ray sets CUDA_VISIBLE_DEVICES), so cuda:N is its cuda
        return Layout(
            count,
            cpus,
            _reservable(1 / per_gpu),
            "cuda" if device.startswith("cuda") else "auto",
            threads or max(1, int(cpus)),
        )
    node_cpus = [float(n.get("CPU", 0)) for n in nodes]
    wanted = threads or 1

    def capacity(reserve: float) -> int:
        return sum(int(c / reserve + 1e-9) for c in node_cpus) if reserve > 0 else math.inf

    count = max(1, min(workers or capacity(wanted), chunks))
    fitting = [
        r
        for r in {wanted, *(_reservable(c / k) for c in node_cpus for k in range(1, count + 1))}
        if 0 < r <= wanted and capacity(r) >= count
    ]
    cpus = max(fitting, default=0.0)
    return Layout(count, cpus, 0.0, "cpu" if device == "auto" else device, threads or max(1, int(cpus)))


def _reservable(amount: float) -> float:
    """``amount`` of a Ray resource rounded down to what Ray reserves: whole units from 1, else 1e-4 steps."""
    return float(math.floor(amount + 1e-9)) if amount >= 1 else math.floor(amount * 1e4 + 1e-6) / 1e4


def _number(amount: float) -> str:
    return f"{amount:g}"


def run_on_ray(
    spec: RotoSpec,
    chunk: int,
    address: str | None = None,
    workers: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> Summary:
    """Run a roto job's chunks on a Ray cluster, laid out by :func:`layout` (one model per worker, one worker per
    GPU where the cluster has GPUs), each worker writing its frames and journal itself; resumable like
    :meth:`RotoJob.run`. ``say`` is told (one sentence) when workers given a GPU ran the model on the CPU.
    The summary's ``placement`` describes the workers."""
    try:
        import ray
    except ImportError:
        raise MattekitError("--ray needs Ray: pip install 'mattekit[ray]' (or pip install ray).") from None
    job = RotoJob(spec)  # checks the plate, frames and outputs here, before any task starts
    job.prepare_output()
    started = time.monotonic()
    chunks = job.chunks(chunk)
    summary = Summary(job.frames)
    owned = _joined_cluster(ray, address)
    try:
        plan = layout(
            [n["Resources"] for n in ray.nodes() if n.get("Alive")], spec.device, workers, spec.threads, len(chunks)
        )
        summary.placement = f"on Ray: {plan.describe()}"
        worker_spec = spec.to_dict() | {"device": plan.device, "threads": plan.threads}
        actors = [
            _ray_worker_class(ray).options(num_cpus=plan.cpus, num_gpus=plan.gpus).remote(worker_spec)
            for _ in range(plan.workers)
        ]
        pool = ray.util.ActorPool(actors)
        report = Reporter(progress, len(job.frames), "frame", 0, started)
        devices: dict[str, set] = {}  # worker -> the devices its models ran on
        for result in pool.map_unordered(lambda actor, frames: actor.run.remote(frames), chunks):
            part = Summary(result["frames"], result["computed"], result["skipped"], result["seconds"])
            summary.merge(part)
            devices.setdefault(result["worker"], set()).update(result["devices"])
            report.set(len(summary.computed), len(summary.skipped), item=part.frames[-1])
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if isinstance(getattr(exc, "cause", None), Exception) else exc
        if isinstance(cause, MattekitError):
            raise MattekitError(str(cause)) from None
        raise
    finally:
        if owned:
            ray.shutdown()
    if say is not None:
        _say_idle_gpus(devices, plan.gpus, say)
    summary.computed.sort()
    summary.skipped.sort()
    summary.seconds = time.monotonic() - started
    return summary


def _joined_cluster(ray, address: str | None) -> bool:
    """Ray started here, joined to the cluster at ``address`` (None or "": a local one), unless this process has it
    running already; True where it was started here (and is to be shut down). An unreachable cluster: a
    MattekitError sentence."""
    if ray.is_initialized():
        return False
    _check_reachable(address)
    try:
        ray.init(
            address=address or None,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
            configure_logging=True,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise MattekitError(
            f"Cannot reach the Ray cluster{' at ' + address if address else ''}: {str(exc).splitlines()[0]}."
        ) from None
    return True


def _say_idle_gpus(devices: dict[str, set], gpus: float, say: Callable[[str], None]) -> None:
    """Tell ``say`` (one sentence) when workers given ``gpus`` GPUs each ran the model on the CPU (``devices``:
    {worker: the devices its models ran on})."""
    on_cpu = [w for w, used in devices.items() if used and "cuda" not in used]
    if gpus and on_cpu:
        say(
            f"mattekit: warning: Ray gave each worker {_number(gpus)} GPU, but {len(on_cpu)} of "
            f"{len(devices)} worker(s) ran the model on the CPU (torch there sees no CUDA GPU: install its CUDA build "
            "on the cluster's nodes)."
        )


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
            """Holds one RotoJob and its models (loaded by the first chunk, kept for the next) and runs chunks of it."""

            def __init__(self, spec: dict):
                from ..runtime import ModelCache

                self.models = ModelCache()
                self.job = RotoJob(RotoSpec.from_dict(spec), self.models)

            def run(self, frames: list[int]) -> dict:
                summary = self.job.run(frames)
                return {
                    "frames": summary.frames,
                    "computed": summary.computed,
                    "skipped": summary.skipped,
                    "seconds": summary.seconds,
                    "worker": ray.get_runtime_context().get_actor_id(),
                    "devices": sorted({p.device_type for p in self.models.loaded()}),
                }

        _RAY_WORKER = ray.remote(RotoWorker)
    return _RAY_WORKER
