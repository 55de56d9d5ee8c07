"""How CUDA runs a torch engine's net: :class:`Compiled`, each input shape through the fastest of eager, CUDA-graph
replay and (asked for) ``torch.compile``, by measurement.

On CUDA, a shape runs eager on its first call (cuDNN's set-up, the engine's memory-format fallback, a batch that runs
out of memory halved by the pipeline). From its second call the candidates of the mode are tried in turn on the
calls as they come, each made (its answer the making call's) then timed on :data:`TRIALS` calls, the device
synchronised around each: every call answers its own input, so the choice costs no network call of its own (when
candidates were timed on extra calls, the choice took about 7 of BiRefNet's 20 s start-up at fp32, batch 8, on an
H200). The fastest serves that shape from then on:

- ``auto`` (default on CUDA): eager, and the eager net replayed as a CUDA graph (no kernel launches from Python;
  capture takes one call's time, nothing is stored);
- ``graphs``: the CUDA graph alone (eager where it cannot be captured);
- ``inductor``: eager, ``torch.compile``'s net, and that net replayed as a CUDA graph. The first compile of a
  shape takes a minute or more: announced and timed, its artefacts (Inductor's and Triton's caches) kept in
  ``<mattekit home>/compiled/<GPU>-torch<version>-<model>-<digest>`` (:func:`cache_folder`), which later
  processes read;
- ``off``: eager.

``$MATTEKIT_COMPILE`` (or the engine's ``compile``, as :func:`mattekit.engines.plan.compile_mode` reads it) names the mode; on the CPU and MPS it is ``off``. A candidate
that fails to be made or to run (a net that synchronises with the host, memory) is dropped with one line on
standard error; eager is always left.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Callable

TRIALS = 2  # timed calls of each candidate before a shape's choice (each call answers its own input)
CANDIDATES = {
    "off": ("eager",),
    "auto": ("eager", "graph"),
    "graphs": ("graph",),
    "inductor": ("eager", "compiled", "compiled graph"),
}


def cache_folder(device_name: str, label: str, recipe: dict | None = None) -> Path:
    """Where ``inductor``'s artefacts for this model on this device are kept: the mattekit home's ``compiled``
    folder, one sub-folder per device name, torch version and model (its label, and a digest of its recipe (net,
    kwargs) and mattekit's version: another release of the model's code compiles afresh)."""
    from .. import __version__
    from ..weights import cache_dir

    torch_version = metadata.version("torch")
    digest = hashlib.sha256(json.dumps([recipe or {}, __version__], sort_keys=True, default=str).encode()).hexdigest()
    slug = re.sub(r"[^a-z0-9.]+", "-", f"{device_name}-torch{torch_version}-{label}".lower()).strip("-")
    return cache_dir().parent / "compiled" / f"{slug}-{digest[:10]}"


def _say(line: str) -> None:
    print(f"mattekit: {line}", file=sys.stderr, flush=True)


def _reason(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


class Compiled:
    """``run`` (x on the device -> the prediction, the engine's eager forward) per input shape through the mode's
    fastest candidate. ``folder``: ``inductor``'s cache (set as Inductor's for this process); ``label``: the model's
    name in the lines shown. ``choices``: {shape key: (candidate kept, {candidate: seconds a call})}.

    Thread-safe: first calls and choices are made under one lock; CUDA-graph replays are serialised (their input
    and output buffers are shared), each stream waiting for the previous replay's output to be copied out."""

    def __init__(
        self,
        run: Callable,
        device,
        mode: str,
        label: str = "the model",
        folder: Path | None = None,
        compilable: Callable | None = None,
    ):
        import torch

        self.run, self.device, self.mode, self.label, self.folder = run, device, mode, label, folder
        self.torch, self.cuda = torch, device.type == "cuda"
        self.names = tuple(n for n in CANDIDATES[mode] if self.cuda or "graph" not in n) or ("eager",)
        self.seen: dict[tuple, int] = {}
        self.chosen: dict[tuple, Callable] = {}
        self.choices: dict[tuple, tuple[str, dict[str, float]]] = {}
        self.trials: dict[tuple, dict[str, list[float]]] = {}  # shapes on trial: {candidate: seconds of its calls}
        self.made: dict[tuple, dict[str, Callable]] = {}  # shapes on trial: {candidate: made}
        self.lock, self.replay_lock, self.freed = threading.RLock(), threading.Lock(), None
        self.pool = torch.cuda.graph_pool_handle() if self.cuda and any("graph" in n for n in self.names) else None
        self.compiled, self.compiled_keys = None, set()
        if "compiled" in self.names:
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)  # read by Inductor (and Triton) at each compile
            self.compiled = torch.compile(compilable, dynamic=False)

    def key(self, x) -> tuple:
        """(shape, dtype, channels-last) of an input: one choice each."""
        return tuple(x.shape), str(x.dtype), x.dim() == 4 and x.is_contiguous(memory_format=self.torch.channels_last)

    def __call__(self, x):
        key = self.key(x)
        chosen = self.chosen.get(key)
        if chosen is not None:
            return chosen(x)
        with self.lock:
            if key in self.chosen:
                return self.chosen[key](x)
            self.seen[key] = self.seen.get(key, 0) + 1
            if self.seen[key] < 2:
                return self.run(x)
            return self._trial(key, x)

    def _trial(self, key: tuple, x):
        """``x``'s answer from the next candidate on trial for ``key``: made first where it is not (a CUDA graph
        captured, a net compiled: that call's answer is the one made while making it), else timed, the device
        synchronised around the call; once each candidate has :data:`TRIALS` timed calls, the fastest is kept
        (:meth:`_keep`). Every call answers its own input: the choice costs no call of its own. A candidate that
        cannot be made or run is dropped, said in one line; eager out of memory is raised (the pipeline halves the
        batch)."""
        trials = self.trials.setdefault(key, {name: [] for name in self.names})
        made = self.made.setdefault(key, {"eager": self.run})
        while pending := self._pending(key):
            name = pending[0]
            try:
                if name not in made:
                    made[name], answer = self._make(name, x)
                else:
                    self._sync()
                    start = time.perf_counter()
                    answer = made[name](x)
                    self._sync()
                    trials[name].append(time.perf_counter() - start)
            except Exception as exc:  # a candidate this net or this memory does not allow: the others serve
                if isinstance(exc, self.torch.OutOfMemoryError) and name == "eager":
                    raise
                _say(f"{self.label}: no {name} for {_shape(key)} ({_reason(exc)}); the other ways run it.")
                trials.pop(name)
                made.pop(name, None)
                self._release()
                continue
            if not self._pending(key):
                self._keep(key)
            return answer
        self._keep(key)
        return self.chosen[key](x)

    def _pending(self, key: tuple) -> list[str]:
        """The candidates on trial for ``key`` that still need a call: with several, those timed fewer than
        :data:`TRIALS` times; a lone one (nothing to compare), until it is made."""
        trials, made = self.trials[key], self.made[key]
        if len(trials) == 1:
            return [name for name in trials if name not in made]
        return [name for name in trials if len(trials[name]) < TRIALS]

    def _keep(self, key: tuple) -> None:
        """The fastest candidate on trial for ``key`` (by its best timed call) kept for that shape; eager where none is
        left."""
        trials, made = self.trials.pop(key), self.made.pop(key)
        times = {name: min(t) if t else 0.0 for name, t in trials.items()} or {"eager": 0.0}
        best = min(times, key=times.get)
        self.chosen[key] = made.get(best, self.run)
        self.choices[key] = (best, times)
        made.clear()
        self._release()

    def _make(self, name: str, x) -> tuple[Callable, object]:
        """(candidate ``name`` (not eager) for ``x``'s shape, its answer for ``x``, computed while making it)."""
        if name == "compiled":
            return self._compile(x)
        inner = self.run
        if name == "compiled graph":
            inner = self.compiled if self.key(x) in self.compiled_keys else self._compile(x)[0]
        return self._graph(inner, x)

    def _compile(self, x) -> tuple[Callable, object]:
        """(torch.compile's net, compiled now for ``x``'s shape (announced and timed); its answer for ``x``)."""
        from ..progress import Display

        where = f"cached in {self.folder}" if self.folder else "not cached"
        with Display().ticking(
            f"compiling {self.label} for {_device_name(self.device)} at {_shape(self.key(x))} "
            f"with torch.compile once (a minute or more; {where})",
            done=f"compiled {self.label} at {_shape(self.key(x))} in {{time}}.",
        ):
            answer = self.compiled(x)
        self.compiled_keys.add(self.key(x))
        return self.compiled, answer

    def _graph(self, fn: Callable, x) -> tuple[Callable, object]:
        """(``fn`` on ``x``'s shape captured as a CUDA graph: a callable copying its input in, replaying, and
        returning a copy of the output; ``fn``'s answer for ``x``, from the warm-up call before the capture)."""
        torch = self.torch
        static_in = torch.empty_like(x).copy_(x)
        answer = fn(static_in)  # warm: lazy initialisation outside the capture
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
            static_out = fn(static_in)

        def replay(x):
            with self.replay_lock:
                stream = torch.cuda.current_stream(self.device)
                if self.freed is not None:
                    stream.wait_event(self.freed)  # the previous replay's output copied out (on its own stream)
                static_in.copy_(x)
                graph.replay()
                out = static_out.clone()
                self.freed = torch.cuda.Event()
                self.freed.record(stream)
            return out

        replay.graph = graph
        return replay, answer

    def _sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def _release(self) -> None:
        """Give the cached blocks of dropped candidates back to the device."""
        if self.cuda:
            import gc

            gc.collect()
            self.torch.cuda.empty_cache()

    def describe(self) -> str:
        """The choices made, one phrase a shape: '1x3x1024x1024 float16: graph (eager 61.2 ms, graph 40.1 ms)'."""
        timed = lambda t: " (" + ", ".join(f"{n} {1000 * s:.1f} ms" for n, s in t.items()) + ")" if len(t) > 1 else ""
        return (
            "; ".join(f"{_shape(k)}: {best}{timed(t)}" for k, (best, t) in self.choices.items())
            or "no shape seen twice"
        )


def _shape(key: tuple) -> str:
    return "x".join(map(str, key[0])) + " " + key[1].replace("torch.", "")


def _device_name(device) -> str:
    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
