"""Many images through one model with every stage busy at once.

``run_pipeline`` runs three stages in their own threads, joined by bounded queues:

    read (decode + preprocess) ──► infer (batched, ``workers`` threads) ──► write (postprocess + encode)

While one image is inferred the next is decoded and the previous one encoded. Memory stays flat on any
number of inputs: items are taken from the iterable lazily and at most ``queue_size`` prepared inputs
and ``queue_size`` results wait between stages (plus one item per thread), so a 10,000-frame sequence
holds no more than a 10-frame one.

CPU: ``workers`` single-threaded inference calls run in parallel (throughput without the thread
synchronisation of one multi-threaded call, and the path on which the CPU engine uses Winograd kernels;
see ``mattekit.engines``). CUDA: each worker has its own stream, batches are stacked in pinned memory
and copied without blocking, so one batch's copies overlap another's kernels. ``plan`` picks these
numbers for a predictor.

Errors: a ``MattekitError`` from ``read``/``write`` (or ``infer``) fails that item (or batch) only and is
reported; any other exception stops the pipeline and is raised in the caller's thread. ``cancel()``
returning True stops reading; items already read are finished. Results are written as they come, not
necessarily in input order, unless ``ordered``: then ``write`` sees them in input order (failed items
skipped), a small reorder buffer holding those that finish early, and reading never runs more than
``queue_size + workers * batch`` items ahead of writing, so memory stays bounded with any number of workers.
"""
from __future__ import annotations

import ctypes
import queue
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch

from . import engines
from .errors import MattekitError
from .machine import cpu_count

_DONE = object()  # end-of-stream marker between stages
_FAILED = object()  # ordered pipelines: the place of an item that failed before ``write``


class Timings:
    """Wall-clock seconds per named stage, summed over threads (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def add(self, name: str, seconds: float, calls: int = 1) -> None:
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            self.calls[name] = self.calls.get(name, 0) + calls

    @contextmanager
    def measure(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def per_item_ms(self, items: int) -> dict[str, float]:
        """Milliseconds per item of each stage (a stage run by several threads counts each thread's time)."""
        return {k: 1000.0 * v / max(1, items) for k, v in self.seconds.items()}


@dataclass
class Report:
    """What a run did: items written, items that failed (item, one-sentence reason), wall seconds."""

    done: int = 0
    failed: list[tuple[Any, str]] = field(default_factory=list)
    seconds: float = 0.0
    cancelled: bool = False
    timings: Timings = field(default_factory=Timings)

    @property
    def per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0


_MEMORY_KEPT = False


def keep_freed_memory() -> None:
    """Let glibc keep freed memory for reuse by every thread (Linux; once per process, for threads made later).

    Inference allocates and frees tens of megabytes of activations per image. By default glibc gives each
    thread an arena of its own (64 MiB heaps, handed back when empty) and returns large blocks to the
    kernel, so the next image faults them in again, zeroed: ~15,000 page faults and ~5% of a U^2-Net
    forward pass on the CPU, and several images' worth of activations resident with several workers.
    Here all threads share the main heap (M_ARENA_MAX 1), blocks up to 32 MiB (glibc's limit) come from
    it, and its top is trimmed only beyond 1 GiB. Measured on U^2-Net with two workers: page faults per
    image from thousands to none, peak RSS ~120 MB lower than with per-thread arenas.
    """
    global _MEMORY_KEPT
    if _MEMORY_KEPT or not sys.platform.startswith("linux"):
        return
    _MEMORY_KEPT = True
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
    try:
        mallopt = ctypes.CDLL(None).mallopt
        for option, value in ((m_arena_max, 1), (m_mmap_threshold, 32 << 20), (m_trim_threshold, 1 << 30)):
            mallopt(option, value)
    except (OSError, AttributeError):  # not glibc
        pass


def plan(predictor, workers: int | None = None, threads: int | None = None, batch: int | None = None,
         ordered: bool = False) -> dict:
    """Good ``workers``/``threads``/``batch``/``writers`` for ``predictor`` (arguments given win).

    CPU: up to 4 workers (each holds one image's activations), with cores / workers torch threads each:
    one per core on machines with up to 4 cores, which is the path where the CPU engine uses Winograd
    kernels; one writer (the cores are the workers'). An ONNX Runtime engine, whose threads were fixed
    with its session, gets cores / those threads.
    CUDA: two workers (two streams) with batches of 8 for fixed-size models, 1 otherwise; the CPU's
    cores, less two, as writers (up to 8; 1 when ``ordered``), since postprocessing and encoding then
    bound the speed. ``threads`` is per worker. ``ordered``: ``write`` must see results in input order.
    Returns keyword arguments for :func:`run_pipeline`.
    """
    engine = getattr(predictor, "engine", None)
    device = getattr(predictor, "device", torch.device("cpu"))
    fixed = getattr(predictor.entry.input, "size", None) is not None if hasattr(predictor, "entry") else False
    if device.type == "cpu":
        cores = cpu_count()
        if threads is None and getattr(engine, "threads", None):
            threads = engine.threads
        if workers is None:
            workers = max(1, cores // threads) if threads else min(cores, 4)
        if not getattr(engine, "concurrent", True):
            workers = 1
        threads = threads or max(1, cores // workers)
        return {"workers": workers, "threads": threads, "batch": batch or 1, "device": device, "ordered": ordered}
    writers = 1 if ordered else max(1, min(8, cpu_count() - 2))
    return {"workers": workers or 2, "threads": threads, "batch": batch or (8 if fixed else 1), "device": device,
            "writers": writers, "ordered": ordered}


def run_pipeline(items: Iterable, read: Callable[[Any], tuple[torch.Tensor, Any]],
                 infer: Callable[[torch.Tensor], torch.Tensor], write: Callable[[Any, Any, torch.Tensor], None], *,
                 workers: int = 1, threads: int | None = None, batch: int = 1, writers: int = 1,
                 queue_size: int | None = None, device: torch.device | str = "cpu", ordered: bool = False,
                 post: Callable[[Any, Any, torch.Tensor], Any] | None = None,
                 progress: Callable[[int, Any], None] | None = None, cancel: Callable[[], bool] | None = None,
                 timings: Timings | None = None) -> Report:
    """Run ``read`` -> ``infer`` -> ``write`` over ``items`` with the stages overlapped.

    read(item) -> (x, context): decode and preprocess; x is 1 x C x h x w float32 (CPU).
    infer(x) -> y: N x C x h x w in, N x ... out (a Predictor is such a callable); called from
        ``workers`` threads at once, each with ``threads`` torch threads on the CPU (None: leave as is).
    write(item, context, y): postprocess and encode one result; y is 1 x ... on the CPU.
    batch: inputs of equal shape are stacked up to this many per ``infer`` call.
    ordered: call ``write`` in the order of ``items`` (one writer), whatever the workers.
    post(item, context, y) -> result: per-item postprocessing run in the inference workers (in parallel,
        in any order) right after ``infer``; ``write`` then gets its result instead of ``y``.
    progress(done, item) is called after each item written or failed (``done`` counts both).
    Returns a Report; ``timings`` gets "read", "infer", "infer_wait" (workers starved), "post" and "write".
    """
    if ordered and writers != 1:
        raise ValueError("an ordered pipeline has one writer")
    device = torch.device(device)
    timings = timings or Timings()
    report = Report(timings=timings)
    queue_size = queue_size or max(2, 2 * workers * batch)
    inbox: queue.Queue = queue.Queue(queue_size)
    outbox: queue.Queue = queue.Queue(queue_size)
    stop, lock, errors = threading.Event(), threading.Lock(), []
    source = iter(items)
    counts = {"workers": workers, "handled": 0, "read": 0, "written": 0}
    ahead = queue_size + workers * batch  # ordered: items read but not yet written, at most
    turn = threading.Condition()  # ordered: the writer moved on

    def fail(exc: BaseException) -> None:
        with lock:
            errors.append(exc)
        stop.set()

    def put(q: queue.Queue, obj) -> bool:
        while not stop.is_set():
            try:
                q.put(obj, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(q: queue.Queue):
        while not stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return _DONE

    def handled(item, reason: str | None) -> None:
        with lock:
            counts["handled"] += 1
            if reason is None:
                report.done += 1
            else:
                report.failed.append((item, reason))
            n = counts["handled"]
        if progress is not None:
            progress(n, item)

    def give_up(seq: int, item, exc: MattekitError) -> bool:
        """Report ``item`` failed (and, ordered, let the writer pass its place); False when stopping."""
        handled(item, str(exc))
        return not ordered or put(outbox, (seq, item, _FAILED, None))

    def last_of(role: str) -> bool:
        with lock:
            counts[role] -= 1
            return counts[role] == 0

    def reader() -> None:
        try:
            while not stop.is_set():
                if cancel is not None and cancel():
                    report.cancelled = True
                    break
                with lock:
                    item = next(source, _DONE)
                    seq = counts["read"]
                    counts["read"] += 1
                if item is _DONE:
                    break
                if ordered:
                    with turn:
                        while seq >= counts["written"] + ahead and not stop.is_set():
                            turn.wait(0.1)
                try:
                    with timings.measure("read"):
                        x, context = read(item)
                except MattekitError as exc:
                    if not give_up(seq, item, exc):
                        return
                    continue
                if not put(inbox, (seq, item, x, context)):
                    return
            for _ in range(workers):
                put(inbox, _DONE)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            fail(exc)

    def run_batch(group: list) -> None:
        xs = [x for _, _, x, _ in group]
        out_of_memory = False
        try:
            with timings.measure("infer"):
                y = engines.to_host(infer(engines.pinned_stack(xs, device)))
        except torch.cuda.OutOfMemoryError:
            out_of_memory = True  # handled below: the error's traceback holds the failed call's activations
        except MattekitError as exc:
            for seq, item, _, _ in group:
                if not give_up(seq, item, exc):
                    return
            return
        if out_of_memory:
            if len(group) == 1:
                raise MattekitError("The GPU ran out of memory on a single image; use --device cpu or a smaller model.")
            torch.cuda.empty_cache()  # halve the batch and go on
            half = len(group) // 2
            run_batch(group[:half])
            run_batch(group[half:])
            return
        row = 0
        for (seq, item, x, context) in group:
            n = x.shape[0]
            result = y[row : row + n]
            row += n
            if post is not None:
                try:
                    with timings.measure("post"):
                        result = post(item, context, result)
                except MattekitError as exc:
                    if not give_up(seq, item, exc):
                        return
                    continue
            if not put(outbox, (seq, item, context, result)):
                return

    def worker() -> None:
        try:
            if threads and device.type == "cpu":
                torch.set_num_threads(threads)  # this thread's own OpenMP setting
            with engines.worker_stream(device):
                carry, finished = None, False
                while not finished and not stop.is_set():
                    start = time.perf_counter()
                    first = carry if carry is not None else get(inbox)
                    timings.add("infer_wait", time.perf_counter() - start, 0)
                    carry = None
                    if first is _DONE:
                        break
                    group = [first]
                    while len(group) < batch:
                        try:
                            nxt = inbox.get_nowait()
                        except queue.Empty:
                            break
                        if nxt is _DONE:
                            finished = True
                            break
                        if nxt[2].shape[1:] != first[2].shape[1:]:
                            carry = nxt
                            break
                        group.append(nxt)
                    run_batch(group)
            if last_of("workers"):
                for _ in range(writers):
                    put(outbox, _DONE)
        except BaseException as exc:  # noqa: BLE001
            fail(exc)

    def write_one(item, context, y) -> None:
        try:
            with timings.measure("write"):
                write(item, context, y)
        except MattekitError as exc:
            handled(item, str(exc))
            return
        handled(item, None)

    def writer() -> None:
        pending: dict[int, tuple] = {}  # ordered: results that came before their turn
        try:
            while True:
                got = get(outbox)
                if got is _DONE:
                    return
                if not ordered:
                    write_one(*got[1:])
                    continue
                pending[got[0]] = got
                while counts["written"] in pending:
                    _, item, context, y = pending.pop(counts["written"])
                    if context is not _FAILED:
                        write_one(item, context, y)
                    with turn:
                        counts["written"] += 1
                        turn.notify_all()
        except BaseException as exc:  # noqa: BLE001
            fail(exc)

    if device.type == "cpu" and workers > 1:
        keep_freed_memory()
    previous = torch.get_num_threads()
    pool = ([threading.Thread(target=reader, name="mattekit-read", daemon=True)]
            + [threading.Thread(target=worker, name=f"mattekit-infer-{i}", daemon=True) for i in range(workers)]
            + [threading.Thread(target=writer, name=f"mattekit-write-{i}", daemon=True) for i in range(writers)])
    start = time.perf_counter()
    try:
        for t in pool:
            t.start()
        for t in pool:
            while t.is_alive():
                t.join(0.2)
    except BaseException:  # Ctrl-C: stop every stage, then let the caller see it
        stop.set()
        for t in pool:
            t.join()
        raise
    finally:
        report.seconds = time.perf_counter() - start
        torch.set_num_threads(previous)  # workers changed the process-wide default for new threads
    if errors:
        raise errors[0]
    return report
