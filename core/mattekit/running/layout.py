"""A run's layout, decided once (:func:`decide`) from the task, its loaded models' plans, the inputs and the machine:
the pipeline's stages (inference workers, their threads and batches, readers, writers), whether the finish and the
encoding run in forked writing processes and why, and the model whose plan says where each item's finish runs
(asked once per item: :meth:`RunLayout.device_for`). The runner reads it and decides none of these itself.

The fork rule: a run forks its writing processes (:mod:`mattekit.running.processes`) only here
(:meth:`RunLayout.started`), once what must hold at a fork holds. No thread may be alive that a child would start as
a copy of: every model's engine has finished loading (ONNX Runtime's first session loads on a thread of its own:
:meth:`mattekit.engines.onnx.OnnxEngine.wait_loaded`), the inputs decoded ahead have stopped
(:meth:`mattekit.running.ahead.ReadAhead.stop`), and OpenCV's thread pool is stopped for the fork (its workers are
the parent's; the children run OpenCV in their own thread) and restarted after it. Each child spreads its finish over
no threads of its own (:func:`mattekit.ops.regions.cap_threads`: the cores are the processes'). A photo whose
finish runs on the model's device stays in this process: a forked child has no GPU context.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from ..engines import threads as thread_count
from ..finish.device import device_of
from ..machine import cpu_count
from ..ops.regions import cap_threads
from . import pipeline


@dataclass(frozen=True)
class RunLayout:
    """How one run goes. ``infer``: the inference stage (the task's main model; None: the task runs whole in the
    writer). ``stages``: :func:`mattekit.running.pipeline.run_pipeline`'s layout keywords (workers, threads, batch,
    writers, readers, device, ordered, pad). ``processes``: writing processes forked (0: none); with some, the
    pipeline has a writer thread per process and ``on_device`` of them at once finish an item on the model's device
    here. ``finisher``: the model whose plan names the finish's device (None: the CPU cores). ``items``: how many
    there are (None: not known). ``threads``: the run's CPU threads for network calls where the task runs whole in
    the writer (None: as they are). ``models``: the loaded models (settled before a fork). ``why``: {"stages",
    "processes", "finish": the reason for each choice, in words}."""

    infer: Callable | None
    stages: dict
    processes: int
    on_device: int
    finisher: Any
    items: int | None
    threads: int | None
    models: tuple = field(repr=False)
    why: dict

    def device_for(self, image) -> Any:
        """Where the finish of ``image`` (H x W x C) runs: :func:`mattekit.finish.device.device_of` of the
        ``finisher``, asked once per item (None: the CPU cores; without a finisher, None unasked)."""
        return None if self.finisher is None else device_of(self.finisher, image)

    @contextmanager
    def started(self, work: Callable, ahead=None) -> Iterator[Any]:
        """The run begun: the CPU threads set, the inputs decoded ``ahead`` (a
        :class:`mattekit.running.ahead.ReadAhead`) stopped for a run of several (the pipeline's readers decode the
        rest), and with :attr:`processes`, the writing processes forked to run ``work`` (the module's fork rule);
        yields them (a :class:`mattekit.running.processes.Writers`) or None, and ends them on leaving."""
        if self.threads:
            thread_count.set_count(self.threads)
        if not self.processes:
            if ahead is not None and (self.items or 0) > 1:
                ahead.stop()
            yield None
            return
        for model in self.models:  # no child a copy of a thread inside an engine's loading
            getattr(getattr(model, "engine", None), "wait_loaded", lambda: None)()
        if ahead is not None:
            ahead.stop()
        writers = _forked(work, self.processes, self.on_device)
        try:
            yield writers
        finally:
            writers.close()


def decide(
    task,
    models: dict,
    items,
    *,
    single: bool = False,
    threads: int | None = None,
    workers: int | None = None,
    batch: int | None = None,
) -> RunLayout:
    """The layout of ``task`` run with ``models`` ({model option: Predictor}) over ``items`` (a list, or an iterable
    of unknown length). ``single``: one item (one inference worker with every thread). ``threads``, ``workers``,
    ``batch``: the caller's (None: the main model's plan's, :func:`mattekit.running.pipeline.plan`)."""
    count = len(items) if hasattr(items, "__len__") else None
    loaded = tuple(models.values())
    main = models.get(task.main) if task.main is not None else None
    if not (task.streams and main is not None):
        why = {"stages": "the task runs whole in the writer (its models may tile or run more than once)"}
        why.update(processes="none: the task's models run in its writer", finish=_finish_why(main))
        return RunLayout(None, {}, 0, 1, main, count, threads, loaded, why)
    stages = pipeline.plan(main, workers=1 if single else workers, threads=threads, batch=batch)
    why = {"stages": "one worker with every thread: one item" if single else main.plan.why("layout")}
    if count is not None and stages["batch"] > count:  # no batch larger than the items there are (nor padded)
        stages["batch"] = max(1, count)
        why["stages"] += f"; batch cut to the {count} item(s)"
    processes, why["processes"] = processes_for(stages, count)
    on_device, why["finish"] = stages["writers"], _finish_why(main)
    if processes:
        stages["writers"] = processes  # a thread each, waiting on its process
    return RunLayout(main, stages, processes, on_device, main, count, None, loaded, why)


def processes_for(stages: dict, items: int | None) -> tuple[int, str]:
    """(how many writing processes a run of ``items`` (None: not known) with the pipeline ``stages`` gets, why):
    one per core for more than one item written in any order, on Linux; else none."""
    if not items or items < 2:
        return 0, "none: one item" if items else "none: the items' count is not known"
    if stages.get("ordered"):
        return 0, "none: the items are written in order, by one writer"
    if not sys.platform.startswith("linux"):
        return 0, "none: fork is the start method on Linux only (macOS's frameworks are not safe across a fork)"
    cores = cpu_count()
    return cores, f"one per core ({cores}): the finish of a small photo holds the GIL, which binds a writer thread"


def _finish_why(main) -> str:
    """Where the finish runs, in words, for the main model ``main`` (None: there is none)."""
    plan = getattr(main, "plan", None)
    if plan is None or not getattr(plan, "finish", ""):
        return "on the CPU cores"
    return f"on the model's device for photos of 1 MP and up (in this process), else on the CPU cores: {plan.why('finish')}"


def _forked(work: Callable, count: int, big: int):
    """:class:`mattekit.running.processes.Writers` of ``count`` processes running ``work``, forked with OpenCV's
    thread pool stopped; each process's finish spread over no threads of its own."""
    import cv2

    from .processes import Writers

    pool = cv2.getNumThreads()
    cv2.setNumThreads(1)  # OpenCV's pool stopped: the children inherit none
    try:
        return Writers(work, count, big=big, setup=lambda: cap_threads(1))
    finally:
        cv2.setNumThreads(pool)
