"""A run's layout, decided once (:func:`decide`) from the task, its loaded models' plans, the inputs and the machine:
the pipeline's stages (inference workers, their threads and batches, readers, writers; a model's own: :func:`plan`)
and the model whose plan says where each item's finish runs (asked once per item: :meth:`RunLayout.device_for`). The
runner reads it and decides none of these itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..engines import threads as thread_count
from ..finish.device import device_of
from ..machine import cpu_count


@dataclass(frozen=True)
class RunLayout:
    """How one run goes. ``infer``: the inference stage (the task's main model; None: the task runs whole in the
    writer). ``stages``: :func:`mattekit.running.pipeline.run_pipeline`'s layout keywords (workers, threads, batch,
    writers, readers, device, ordered, pad). ``finisher``: the model whose plan names the finish's device (None: the
    CPU cores). ``threads``: the run's CPU threads for network calls where the task runs whole in the writer (None: as
    they are). ``why``: {"stages", "finish": the reason for each choice, in words}."""

    infer: Callable | None
    stages: dict
    finisher: Any
    threads: int | None
    why: dict

    def device_for(self, image) -> Any:
        """Where the finish of ``image`` (H x W x C) runs: :func:`mattekit.finish.device.device_of` of the
        ``finisher``, asked once per item (None: the CPU cores; without a finisher, None unasked)."""
        return None if self.finisher is None else device_of(self.finisher, image)

    def begin(self) -> None:
        """The run begun: its CPU threads set (where the layout has them)."""
        if self.threads:
            thread_count.set_count(self.threads)


def plan(
    predictor,
    workers: int | None = None,
    threads: int | None = None,
    batch: int | None = None,
    ordered: bool = False,
    readers: int | None = None,
) -> dict:
    """``workers``/``threads``/``batch``/``writers``/``readers``/``pad`` for ``predictor``: its plan's layout
    (:attr:`predictor.plan`, decided by :func:`mattekit.engines.plan.decide`: :func:`mattekit.engines.layout.layout`
    says why), the arguments given winning; on the CPU a given ``threads`` or ``workers`` shares the cores out for the
    other. ``threads`` is per worker. ``ordered``: ``write`` must see results in input order (one writer); give
    ``readers`` 1 for a source read in order (a movie). Returns :func:`.pipeline.run_pipeline`'s keywords.
    """
    engine, layout, kind = getattr(predictor, "engine", None), predictor.plan, getattr(predictor, "device_type", "cpu")
    device = "cpu" if kind == "cpu" else str(predictor.device)  # e.g. "cuda:1"
    if kind == "cpu":
        cores = cpu_count()
        if workers is None and threads is None:
            workers, threads = layout.workers, layout.threads
        elif workers is None:
            workers = max(1, cores // threads)
        if not getattr(engine, "concurrent", True):
            workers = 1
        threads = threads or max(1, cores // workers)
    return {
        "workers": workers or layout.workers,
        "threads": threads,
        "batch": batch or layout.batch,
        "device": device,
        "writers": 1 if ordered else layout.writers,
        "readers": readers or layout.readers,
        "ordered": ordered,
        "pad": layout.pad,
    }


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
    ``batch``: the caller's (None: the main model's plan's, :func:`plan`)."""
    main = models.get(task.main) if task.main is not None else None
    if not (task.streams and main is not None):
        why = {"stages": "the task runs whole in the writer (its models may tile or run more than once)"}
        return RunLayout(None, {}, main, threads, dict(why, finish=_finish_why(main)))
    stages = plan(main, workers=1 if single else workers, threads=threads, batch=batch)
    why = {"stages": "one worker with every thread: one item" if single else main.plan.why("layout")}
    count = len(items) if hasattr(items, "__len__") else None
    if count is not None and stages["batch"] > count:  # no batch larger than the items there are (nor padded)
        stages["batch"] = max(1, count)
        why["stages"] += f"; batch cut to the {count} item(s)"
    return RunLayout(main, stages, main, None, dict(why, finish=_finish_why(main)))


def _finish_why(main) -> str:
    """Where the finish runs, in words, for the main model ``main`` (None: there is none)."""
    plan = getattr(main, "plan", None)
    if plan is None or not getattr(plan, "finish", ""):
        return "on the CPU cores"
    return f"on the model's device for photos of 1 MP and up, else on the CPU cores: {plan.why('finish')}"
