"""Many images through one model with every stage busy at once.

``run_pipeline`` runs three stages in their own threads, joined by bounded queues:

    read (decode + preprocess, ``readers``) ──► infer (batched, ``workers``) ──► write (postprocess + encode)

(or two, read ──► write, for work with no network input per item: ``infer`` None).

While one image is inferred the next is decoded and the previous one encoded. Memory stays flat on any number of
inputs: items are taken from the iterable lazily and at most ``queue_size`` prepared inputs and ``queue_size``
results wait between stages (plus one item per thread), so a 10,000-frame sequence holds no more than a 10-frame one.

CPU: ``workers`` single-threaded inference calls run in parallel. CUDA: each worker has its own stream,
batches are stacked in pinned memory and copied without blocking, so one batch's copies overlap another's
kernels. :func:`mattekit.running.layout.plan` picks these numbers for a predictor.

Errors: a ``MattekitError`` from ``read``/``write`` (or ``infer``) fails that item (or batch) only and is
reported; any other exception stops the pipeline and is raised in the caller's thread. ``cancel()``
returning True stops reading; items already read are finished. Results are written as they come, not
necessarily in input order, unless ``ordered``: then ``write`` sees them in input order (failed items
skipped), a small reorder buffer holding those that finish early, and reading never runs more than
``queue_size + workers * batch`` items ahead of writing, so memory stays bounded with any number of workers.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .. import engines, heap
from ..engines import threads as thread_count
from ..errors import MattekitError
from .result import Result, Timings

if TYPE_CHECKING:
    import torch

_DONE = object()  # end-of-stream marker between stages
_FAILED = object()  # ordered pipelines: the place of an item that failed before ``write``


def run_pipeline(
    items: Iterable,
    read: Callable[[Any], tuple[Any, Any]],
    infer: Callable[[Any], Any] | None,
    write: Callable[[Any, Any, Any], None],
    *,
    workers: int = 1,
    threads: int | None = None,
    batch: int = 1,
    writers: int = 1,
    readers: int = 1,
    queue_size: int | None = None,
    device: torch.device | str = "cpu",
    ordered: bool = False,
    pad: bool = False,
    post: Callable[[Any, Any, Any], Any] | None = None,
    progress: Callable[[int, Any], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    timings: Timings | None = None,
) -> Result:
    """Run ``read`` -> ``infer`` -> ``write`` over ``items`` with the stages overlapped.

    read(item) -> (x, context): decode and preprocess; x is 1 x C x h x w float32 (CPU; a numpy array or a torch
        tensor, as ``infer`` takes it). Called from ``readers`` threads at once (items taken in order, one at a time).
    infer(x) -> y: N x C x h x w in, N x ... out (a Predictor is such a callable); called from
        ``workers`` threads at once, each with ``threads`` CPU threads on the CPU (None: leave as is;
        :mod:`mattekit.engines.threads`).
        None: no inference stage; ``write`` gets read's ``x`` as ``y`` (anything, None included).
    write(item, context, y): postprocess and encode one result; y is 1 x ... on the CPU.
    batch: inputs of equal shape are stacked up to this many per ``infer`` call.
    pad: one batch shape per input size, one cuDNN plan and CUDA graph (torch_engine's ``Compiled``): a batch waits
        for the readers to fill it, and one cut short by a new input size gets zero inputs up to ``batch`` (fewer after
        the GPU ran out of memory). A worker's first batch and the stream's last run at their own size: met once, so
        eager. (Padded, they held the bench's stand-in GPU at 100 ms an image for 14 zeros of its 64 images, 1.4 s of 9 s; a
        reader behind made IS-Net's batches of 1-2 inputs padded to 8: the device's time and the host's copies.)
    ordered: call ``write`` in the order of ``items`` (one writer), whatever the workers.
    post(item, context, y) -> result: per-item postprocessing run in the inference workers (in parallel,
        in any order) right after ``infer``; ``write`` then gets its result instead of ``y``.
    progress(done, item) is called after each item written or failed (``done`` counts both).
    Returns a Result; ``timings`` gets "read", "infer", "infer_wait" (workers starved), "post" and "write".
    """
    if ordered and writers != 1:
        raise ValueError("an ordered pipeline has one writer")
    device, workers = str(device), workers if infer is not None else 0
    if workers > 1:  # (on a GPU too: the host's inputs of 1024 px and their batches, 12 and 96 MB, are reused)
        heap.keep_freed_memory()
    stages = (read, infer, write, post, progress, cancel)
    layout = dict(workers=workers, threads=threads, batch=batch, writers=writers, readers=readers)
    layout.update(queue_size=queue_size, device=device, ordered=ordered, pad=pad)
    return Pipeline(stages, timings or Timings(), layout).run(items)


class Pipeline:
    """The state of one :func:`run_pipeline` run and its three stages, each a method run by its threads:
    :meth:`reader` (``readers`` threads), :meth:`worker` (``workers``; none without ``infer``), :meth:`writer`
    (``writers``). Items travel between them as (sequence number, item, context, x or result)."""

    def __init__(self, stages: tuple, timings: Timings, layout: dict):
        """``stages``: (read, infer, write, post, progress, cancel); ``layout``: :func:`run_pipeline`'s keyword
        arguments from ``workers`` to ``pad``."""
        self.read, self.infer, self.write, self.post, self.progress, self.cancel = stages
        workers, batch, device = layout["workers"], layout["batch"], layout["device"]
        self.workers, self.threads, self.batch, self.writers = workers, layout["threads"], batch, layout["writers"]
        self.pad, self.filled = layout["pad"], batch  # pad: a shorter batch gets zeros up to ``filled`` (halved on OOM)
        self.device, self.device_type, self.ordered = device, device.split(":")[0], layout["ordered"]
        self.result = Result(timings=timings)
        size = layout["queue_size"] or max(2, 2 * max(1, workers) * batch)
        self.inbox: queue.Queue = queue.Queue(size)  # read -> infer
        self.outbox: queue.Queue = queue.Queue(size)  # infer (or read, without infer) -> write
        self.ahead = size + workers * batch  # ordered: items read but not yet written, at most
        self.stop, self.lock = threading.Event(), threading.Lock()
        self.errors: list[BaseException] = []
        self.turn = threading.Condition()  # ordered: the writer moved on
        self.taken = self.handled = self.written = 0  # items taken, written or failed, passed by the ordered writer
        self.workers_running, self.readers, self.readers_running = workers, layout["readers"], layout["readers"]
        self.taking = threading.Lock()  # one reader at a time takes the next item

    def run(self, items: Iterable) -> Result:
        """Every stage's threads started and joined; the first exception that stopped a stage raised here."""
        source = iter(items)
        pool = [
            threading.Thread(target=self.reader, args=(source,), name=f"mattekit-read-{i}", daemon=True)
            for i in range(self.readers)
        ]
        pool += [
            threading.Thread(target=self.worker, name=f"mattekit-infer-{i}", daemon=True) for i in range(self.workers)
        ]
        pool += [
            threading.Thread(target=self.writer, name=f"mattekit-write-{i}", daemon=True) for i in range(self.writers)
        ]
        previous = thread_count.count()
        start = time.perf_counter()
        try:
            for thread in pool:
                thread.start()
            for thread in pool:
                while thread.is_alive():
                    thread.join(0.2)
        except BaseException:  # Ctrl-C: stop every stage, then let the caller see it
            self.stop.set()
            for thread in pool:
                thread.join()
            raise
        finally:
            self.result.seconds = time.perf_counter() - start
            thread_count.set_count(previous)  # torch's workers changed the process-wide default for new threads
        if self.errors:
            raise self.errors[0]
        return self.result

    # ------------------------------------------------------------------ the stages

    def reader(self, source) -> None:
        """Take items from ``source`` until it ends, ``cancel()`` says so or the run stops; read each and hand
        it on (to the inference workers, or to the writers when there is no inference stage)."""
        box = self.inbox if self.infer is not None else self.outbox
        try:
            while not self.stop.is_set():
                if self.cancel is not None and self.cancel():
                    self.result.cancelled = True
                    break
                with self.taking:
                    seq, item = self.taken, next(source, _DONE)
                    if item is _DONE:
                        break
                    self.taken += 1
                self.wait_turn(seq)
                try:
                    with self.result.timings.measure("read"):
                        x, context = self.read(item)
                except MattekitError as exc:
                    if not self.give_up(seq, item, exc):
                        return
                    continue
                if not self.put(box, (seq, item, context, x)):
                    return
            with self.lock:
                self.readers_running -= 1
                last = self.readers_running == 0
            for _ in range((self.workers if self.infer is not None else self.writers) if last else 0):
                self.put(box, _DONE)  # the last reader out ends the stream
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            self.fail(exc)

    def worker(self) -> None:
        """Infer batches of equal-shape inputs until the reader is done; the last worker out ends the stream."""
        try:
            if self.threads and self.device_type == "cpu":
                thread_count.set_count(self.threads)  # this thread's own (and its OpenMP setting)
            with engines.worker_stream(self.device):
                carry, finished, opening = None, False, True
                while not finished and not self.stop.is_set():
                    start = time.perf_counter()
                    first = carry if carry is not None else self.get(self.inbox)
                    self.result.timings.add("infer_wait", time.perf_counter() - start, 0)
                    if first is _DONE:
                        break
                    group, carry, finished = self.gather(first, wait=self.pad and not opening)
                    self.infer_batch(group, own_size=opening or finished)
                    opening = False
            with self.lock:
                self.workers_running -= 1
                last = self.workers_running == 0
            for _ in range(self.writers if last else 0):
                self.put(self.outbox, _DONE)
        except BaseException as exc:  # noqa: BLE001
            self.fail(exc)

    def writer(self) -> None:
        """Write results as they come (ordered: in input order, holding those that come early)."""
        early: dict[int, tuple] = {}  # ordered: results that came before their turn
        try:
            while (got := self.get(self.outbox)) is not _DONE:
                if not self.ordered:
                    self.write_one(*got[1:])
                    continue
                early[got[0]] = got
                while self.written in early:
                    _, item, context, y = early.pop(self.written)
                    if context is not _FAILED:
                        self.write_one(item, context, y)
                    with self.turn:
                        self.written += 1
                        self.turn.notify_all()
        except BaseException as exc:  # noqa: BLE001
            self.fail(exc)

    # ------------------------------------------------------------------ steps of the stages

    def wait_turn(self, seq: int) -> None:
        """Ordered: wait until item ``seq`` is at most :attr:`ahead` items ahead of the writer."""
        if self.ordered:
            with self.turn:
                while seq >= self.written + self.ahead and not self.stop.is_set():
                    self.turn.wait(0.1)

    def gather(self, first: tuple, wait: bool = False) -> tuple[list, tuple | None, bool]:
        """(a batch: ``first`` and the waiting inputs of its shape, up to ``batch`` (fewer once the GPU ran out of
        memory), ``wait``: those still to be read too, until the batch is full or the stream ends; the next input when
        it has another shape; whether the stream ended)."""
        group = [first]
        while len(group) < self.filled:
            try:
                following = self.inbox.get_nowait()
            except queue.Empty:
                if not wait:
                    break
                following = self.get(self.inbox)
            if following is _DONE:
                return group, None, True
            if following[3].shape[1:] != first[3].shape[1:]:
                return group, following, False
            group.append(following)
        return group, None, False

    def infer_batch(self, group: list, own_size: bool = False) -> None:
        """Infer ``group`` as one batch (halved on a GPU out of memory; padded with :attr:`pad` unless ``own_size``)
        and hand each result, after ``post``, to the writers; a MattekitError fails the group's items."""
        out_of_memory = False
        inputs = [x for *_, x in group]
        if self.pad and not own_size and len(inputs) < self.filled:  # one batch shape per input size
            inputs += [inputs[0] * 0] * (self.filled - len(inputs))  # (finite inputs: zeros)
        try:
            with self.result.timings.measure("infer"):
                y = engines.to_host(self.infer(engines.stack_inputs(inputs, self.device_type)))
        except MattekitError as exc:
            for seq, item, _, _ in group:
                if not self.give_up(seq, item, exc):
                    break
            return
        except Exception as exc:  # noqa: BLE001 - all but a GPU out of memory raised again
            if not _gpu_out_of_memory(exc):
                raise
            out_of_memory = True  # handled below: the error's traceback holds the failed call's activations
        if out_of_memory:
            if len(inputs) == 1:
                raise MattekitError("The GPU ran out of memory on a single image; use --device cpu or a smaller model.")
            sys.modules["torch"].cuda.empty_cache()  # halve the batch (and the padded size) and go on
            with self.lock:  # (a batch gathered before an earlier halving is larger, and says nothing new)
                if len(inputs) <= self.filled:
                    self.filled = max(1, len(inputs) // 2)
            halves = [group[: len(group) // 2], group[len(group) // 2 :]] if len(group) > 1 else [group]
            for half in halves:
                self.infer_batch(half, own_size)
            return
        row = 0
        for seq, item, context, x in group:
            result, row = y[row : row + x.shape[0]], row + x.shape[0]
            if self.post is not None:
                try:
                    with self.result.timings.measure("post"):
                        result = self.post(item, context, result)
                except MattekitError as exc:
                    if not self.give_up(seq, item, exc):
                        return
                    continue
            if not self.put(self.outbox, (seq, item, context, result)):
                return

    def write_one(self, item, context, y) -> None:
        try:
            with self.result.timings.measure("write"):
                self.write(item, context, y)
        except MattekitError as exc:
            self.finished(item, exc)
        else:
            self.finished(item, None)

    def finished(self, item, failure: BaseException | None) -> None:
        """Count ``item`` as written (``failure`` None) or failed, then report progress."""
        with self.lock:
            self.handled += 1
            if failure is None:
                self.result.done += 1
            else:
                self.result.failed.append((item, failure))
            handled = self.handled
        if self.progress is not None:
            self.progress(handled, item)

    def give_up(self, seq: int, item, exc: MattekitError) -> bool:
        """Count ``item`` failed (and, ordered, let the writer pass its place); False when stopping."""
        self.finished(item, exc)
        return not self.ordered or self.put(self.outbox, (seq, item, _FAILED, None))

    def put(self, box: queue.Queue, obj) -> bool:
        """Put ``obj`` in ``box`` once there is room; False when the run stopped first."""
        while not self.stop.is_set():
            with suppress(queue.Full):
                box.put(obj, timeout=0.1)
                return True
        return False

    def get(self, box: queue.Queue):
        """The next object of ``box``; the end-of-stream marker when the run stopped first."""
        while not self.stop.is_set():
            with suppress(queue.Empty):
                return box.get(timeout=0.1)
        return _DONE

    def fail(self, exc: BaseException) -> None:
        """Keep ``exc`` for the caller and stop every stage."""
        with self.lock:
            self.errors.append(exc)
        self.stop.set()


def _gpu_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is torch's CUDA out-of-memory error (never where torch is not loaded: no GPU ran)."""
    torch = thread_count.loaded_torch()
    return torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)
