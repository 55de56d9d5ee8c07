"""ModelCache, the loaded models of whoever owns it (a CLI run, the worker, the API), which makes each model's plan
once and keys its :class:`~mattekit.predictor.Predictor` by plan; what a front end says once a model loads; the
calling thread's CPU threads."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from . import catalog as catalog_mod
from . import settings
from .engines import gpus, threads
from .engines.plan import Plan, decide
from .catalog import ModelEntry
from .options import ModelChoice, model_choice
from .errors import MattekitError
from .predictor import Predictor

if TYPE_CHECKING:
    import torch


def set_threads(count: int | None) -> None:
    """Limit the calling thread's CPU threads for network calls (torch's too where loaded; None = leave as is)."""
    if count:
        threads.set_count(int(count))


class ModelCache:
    """Loaded predictors, each loaded once, owned by whoever made the cache (a CLI run, the worker, the Python API).
    Each request (model, device, weights, backend, precision as asked) gets its plan once
    (:func:`mattekit.engines.plan.decide`); models are keyed by plan, so requests that plan alike share one. ``say``:
    how the owner tells its user things once a model loads (a licence, a GPU left idle: :func:`load_notices`); None
    says nothing. Thread-safe."""

    def __init__(self, say=None):
        self._plans: dict[tuple, Plan] = {}
        self._loaded: dict[tuple, Predictor] = {}
        self._lock = threading.Lock()
        self.say = say

    def plan(
        self,
        entry: ModelEntry,
        device: str | torch.device | None = "auto",
        weights_path: str | Path | None = None,
        backend: str | None = "auto",
        precision: str | None = "auto",
    ) -> Plan:
        """The plan of ``entry`` as asked, made once per request (the memory check first, before its weights are
        looked for)."""
        request = (entry.name, str(device or "auto"), str(weights_path or ""), backend or "auto", precision or "auto")
        with self._lock:
            if request not in self._plans:
                self._plans[request] = decide(entry, device, backend, precision, weights_path, loading=True)
            return self._plans[request]

    def get(
        self,
        model: ModelChoice,
        device: str | torch.device | None = "auto",
        weights_path: str | Path | None = None,
        backend: str | None = "auto",
        precision: str | None = "auto",
    ) -> Predictor:
        """The Predictor of ``model`` (a model option's value: :func:`mattekit.options.model_choice` makes one for a
        name), loaded on first use; a choice that holds a loaded model (the API's) gives it."""
        if model.predictor is not None:
            return model.predictor
        entry = model.entry
        plan = self.plan(entry, device, weights_path, backend, precision)
        with self._lock:
            if plan.key in self._loaded:
                return self._loaded[plan.key]
            predictor = self._loaded[plan.key] = Predictor(entry, plan)
        if self.say is not None:
            for sentence in load_notices(entry, plan, str(device or "auto")):
                self.say(sentence)
        return predictor

    def for_task(self, task, options, given: set[str] = frozenset()) -> dict:
        """{model option: Predictor} for one run of ``task`` (a registry Task) with ``options``: the models
        ``task.models_needed(options, given)`` names, each the one its option holds (a model the API was given) or
        from this cache. A model whose weights are missing says what the user can do instead."""
        from .errors import WeightsCheckFailed, WeightsError

        table = task.option_table()
        device = getattr(options, "device", "auto")
        models = {}
        for name, catalog_task in task.models_needed(options, given).items():
            choice = model_choice(getattr(options, name), catalog_task)  # unset: the catalog's default
            weights_path = getattr(options, name.replace("model", "weights"), None)
            try:
                models[name] = self.get(choice, device=device, weights_path=weights_path)
            except WeightsCheckFailed:
                raise  # a file here that failed its check: said as it is
            except WeightsError as exc:
                raise _missing(exc, choice, catalog_task, table[name]) from None
        return models

    def loaded(self) -> list[Predictor]:
        with self._lock:
            return list(self._loaded.values())

    def clear(self) -> None:
        """Drop every model (frees memory) and its plan (made anew at the next load)."""
        with self._lock:
            self._loaded.clear()
            self._plans.clear()


def _missing(exc, model: ModelChoice, catalog_task: str, option) -> MattekitError:
    """The error for a run whose ``model`` lacks its weights (``exc``): one short sentence, the
    fix first (register the mirror's converted copy, pick a model that is here with ``option``'s flag, or get the
    weights; each with ``option.missing``, what the user can do instead, where there is one), then the
    model it is about; the places tried are ``exc``'s detail, which the CLI prints with --debug."""
    from .errors import WeightsError
    from .weights.download import offline

    here = [e.name for e, _ in catalog_mod.load().available(catalog_task)]
    missing = f"the weights of {model.model} cannot be had here"
    if exc.fix:
        fix = f"Register the mirror's converted copy with {exc.fix}"
    elif here:
        fix = f"Pick a {catalog_task} model that is here with {option.flag} NAME ({', '.join(here)})"
        fix += f", or {option.missing}" if option.missing else ""
    else:
        fix = (
            "Unset MATTEKIT_OFFLINE or set MATTEKIT_MIRROR to a folder holding them"
            if offline()
            else "Set MATTEKIT_MIRROR to a folder holding them or go online once"
        )
        fix += f", or {option.missing}" if option.missing else ""
        fix += f" (no {catalog_task} model is on disk or in a mirror here)"
    return WeightsError(
        f"{fix}: {missing} (`mattekit models list --sources` shows where they are looked for).",
        exc.fix,
        exc.detail or str(exc),
    )


_NOTICES_SHOWN: set[str] = set()  # licence notices are said once per process


def load_notices(entry: ModelEntry, plan: Plan, asked_device: str) -> list[str]:
    """What a front end tells its user once catalog ``entry`` has loaded as ``plan`` says ('mattekit: ...' sentences,
    each once per process, the unlicensed-weights one once per user): the catalog's notice, the weights' missing
    licence, and a GPU left idle while the plan runs the model on the CPU (``asked_device``: the device as the user
    gave it)."""
    said = []
    if entry.notice and entry.name not in _NOTICES_SHOWN:
        said.append(f"mattekit: {entry.notice}")
        _NOTICES_SHOWN.add(entry.name)
    idle = gpus.idle_sentence(entry.name, asked_device, plan.device.split(":")[0], plan.engine)
    if idle:
        said.append(idle)
    unlicensed = catalog_mod.load().unlicensed_notice(entry, str(settings.config_path()))
    if unlicensed and settings.first_time(f"unlicensed-{entry.name}"):
        said.append(f"mattekit: {unlicensed}")
    return said


def say_on_stderr(sentence: str) -> None:
    """A :class:`ModelCache` ``say`` for the command line and the Python API: the sentence on standard error."""
    print(sentence, file=sys.stderr)


def forget_notices() -> None:
    """Say licence notices, and the sentence on an idle GPU, again on the next load (tests start from a clean
    process state)."""
    _NOTICES_SHOWN.clear()
    gpus.forget()
