"""A pipeline's writing stage (a task's finish and the encoding) in processes of its own, one per core, where the
GIL binds threads: the finish of a small photo is many short numpy steps with Python between them, so a second
writer thread barely used a second core (u2netp's folder of 50 photos with the network made free: 5.4 s on one
core, 5.8-7.5 s on two).

:class:`Writers` forks its processes once, before the run's threads start, so that they inherit the loaded models,
the task and ``work`` itself (nothing of them is pickled); each :meth:`Writers.call` then hands one item to an idle
process and waits for its answer. The item's arrays travel in shared memory: pickle protocol 5 leaves them out of
the pickle, they are copied once into an anonymous shared file (``memfd``) whose descriptor goes over the pipe, and
the process maps it: its arrays are views of that memory (no file name exists, so nothing is left behind by a
killed run). The answer (``work``'s return value or exception) comes back pickled. A process that dies (killed for
memory) is reaped at once and its item written again by the calling thread, which then takes its place.

No process outlives its parent, however the parent ends (SIGTERM, SIGKILL, the out-of-memory killer): on Linux the
kernel kills it with the thread that made it (prctl's parent-death signal; :class:`Writers` is made and closed in
one thread), and everywhere it reads the end of its pipe once the parent is gone (each process closes the parent's
ends of the pipes, its own and its elder siblings', so that the parent is their only holder) and checks its parent's
pid each :data:`WATCH` seconds while idle.

For work on the CPU only: a forked process cannot use the parent's CUDA context. What must hold at the fork (no
thread a child would start as a copy of) and what each child is told (``setup``) is the run's layout's
(:mod:`mattekit.running.layout`, the one maker of :class:`Writers` in a run).
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import tempfile
import threading
from multiprocessing.reduction import recv_handle, send_handle
from typing import Any, Callable

from .. import heap
from ..engines.threads import loaded_torch
from ..errors import MattekitError

BIG_ITEM = 64 << 20  # bytes: items this large are finished by at most ``big`` processes at once (their memory)
WATCH = 1.0  # seconds: how often an idle process checks that its parent is alive
_PR_SET_PDEATHSIG = 1  # prctl's option (linux/prctl.h)


class Writers:
    """``count`` forked processes that each run ``setup()`` once, then ``work(*args)`` for a calling thread
    (:meth:`call`, from any number of threads); at most ``big`` of them hold an item of :data:`BIG_ITEM` bytes or more
    at once. :meth:`close` ends them."""

    def __init__(self, work: Callable[..., Any], count: int, big: int = 1, setup: Callable[[], None] | None = None):
        self.work = work
        self.idle: queue.Queue = queue.Queue()  # (connection, process) of idle processes; None: a dead one's place
        self.big = threading.BoundedSemaphore(max(1, big))
        self.processes = []
        context = multiprocessing.get_context("fork")
        ends: list = []  # the parent's ends of the pipes made so far
        for _ in range(count):
            parent, child = context.Pipe()
            ends.append(parent)
            process = context.Process(
                target=_serve, args=(child, work, os.getpid(), list(ends), setup), daemon=True, name="mattekit-writer"
            )
            process.start()
            child.close()
            self.processes.append(process)
            self.idle.put((parent, process))

    def call(self, *args) -> Any:
        """``work(*args)`` in an idle process: its return value, or its exception raised here; in this thread where
        the process died (once it is reaped) or none is left."""
        head, buffers = _pickled(args)
        lengths = [b.nbytes for b in buffers]
        descriptor = _shared(buffers)
        del buffers
        try:
            if sum(lengths) >= BIG_ITEM:
                with self.big:
                    return self._sent(args, (head, lengths), descriptor)
            return self._sent(args, (head, lengths), descriptor)
        finally:
            os.close(descriptor)

    def _sent(self, args: tuple, message: tuple, descriptor: int) -> Any:
        """``message`` (the pickle, its buffers' lengths) and the shared file to an idle process, its answer back."""
        idle = self.idle.get()
        try:
            if idle is None:
                return self.work(*args)
            connection, process = idle
            try:
                connection.send(message)
                send_handle(connection, descriptor, process.pid)
                kind, value = connection.recv()
            except (EOFError, OSError):  # the process died: reaped, and its item written here
                connection.close()
                process.kill()  # (where it lives on without its pipe)
                process.join()
                idle = None
                return self.work(*args)
        finally:
            self.idle.put(idle)
        if kind == "value":
            return value
        raise value

    def close(self) -> None:
        """End every process (each after the item it holds)."""
        while True:
            try:
                idle = self.idle.get_nowait()
            except queue.Empty:
                break
            if idle is not None:
                try:
                    idle[0].send(None)
                except OSError:
                    pass
                idle[0].close()
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()


def _pickled(args: tuple) -> tuple[bytes, list]:
    """(the pickle of ``args`` with its large buffers left out, those buffers as flat byte memoryviews). A CPU torch
    tensor among ``args`` (a prediction) travels as its numpy array (:class:`_Tensor`)."""
    torch = loaded_torch()
    if torch is not None:
        args = tuple(
            _Tensor(a.contiguous().numpy())
            if isinstance(a, torch.Tensor)
            and a.device.type == "cpu"
            and not a.requires_grad
            and str(a.dtype) in _NUMPY_DTYPES
            else a
            for a in args
        )
    buffers: list = []
    head = pickle.dumps(args, protocol=5, buffer_callback=buffers.append)
    return head, [b.raw() for b in buffers]


_NUMPY_DTYPES = {"torch.float32", "torch.float64", "torch.float16", "torch.uint8", "torch.int64", "torch.bool"}


class _Tensor:
    """A CPU torch tensor pickled as its numpy array (out of the pickle, in the shared file: a row slice of a batch
    is only its own rows) and made a tensor again when loaded. torch pickles a tensor's whole storage through
    torch.save: a 1024 x 1024 map took tens of ms each way, more than IS-Net's finish of a small photo."""

    def __init__(self, array):
        self.array = array

    def __reduce__(self):
        return _tensor, (self.array,)


def _tensor(array):
    import torch

    return torch.from_numpy(array)


def _shared(buffers: list) -> int:
    """The descriptor of a new nameless file in memory (Linux's memfd; elsewhere a temporary file removed at once)
    holding ``buffers`` one after the other."""
    if hasattr(os, "memfd_create"):
        descriptor = os.memfd_create("mattekit-item")
    else:
        descriptor, path = tempfile.mkstemp(prefix="mattekit-")
        os.unlink(path)
    for buffer in buffers:
        view = memoryview(buffer)
        while view:
            view = view[os.write(descriptor, view) :]
    return descriptor


def _serve(connection, work: Callable[..., Any], parent: int, ends: list, setup: Callable[[], None] | None) -> None:
    """A writing process of the process ``parent`` (its pid): ``setup()`` (where given), then ``work`` run on each
    item sent; answer ("value", its result) or ("error", its exception). ``ends``: the parent's ends of the pipes made
    so far, closed here. It ends with its parent (the module's docstring)."""
    _die_with(parent)
    for end in ends:
        end.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it ends us
    if setup is not None:
        setup()
    heap.keep_freed_memory()
    while True:
        try:
            while not connection.poll(WATCH):
                if os.getppid() != parent:
                    return
            sent = connection.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if sent is None:
            return
        (head, lengths), descriptor = sent, recv_handle(connection)
        block = mmap.mmap(descriptor, sum(lengths)) if sum(lengths) else b""
        os.close(descriptor)
        views, at = [], 0
        for length in lengths:
            views.append(memoryview(block)[at : at + length])
            at += length
        try:
            answer = ("value", work(*pickle.loads(head, buffers=views)))
        except Exception as exc:  # noqa: BLE001 - the item's failure, for the caller
            answer = ("error", exc)
        views = block = None  # (the mapping ends once no array holds it)
        try:
            _answer(connection, answer)
        except OSError:  # the parent is gone
            return
        answer = None


def _answer(connection, answer: tuple) -> None:
    """``answer`` sent; an exception that does not pickle as its sentence."""
    try:
        connection.send(answer)
    except OSError:
        raise
    except Exception:  # noqa: BLE001 - the exception did not pickle
        connection.send(("error", MattekitError(str(answer[1]))))


def _die_with(parent: int) -> None:
    """On Linux, this process killed (SIGKILL) by the kernel once the thread that made it ends; then, where the
    process ``parent`` (its pid) ended before that was asked, this process ended now."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the pipe's end and the watch remain
            pass
    if os.getppid() != parent:
        os._exit(0)
