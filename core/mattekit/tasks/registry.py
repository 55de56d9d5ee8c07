"""The task registry: each task is declared once, and every front end is derived from it.

A task is a :class:`Task`: pixel inputs and outputs (:class:`Port`), an options dataclass whose
fields carry their metadata (:func:`mattekit.options.option`), and three stages that take the loaded models
explicitly (segment-anything style: the predictor is passed in, never looked up):

    prepare(models, inputs, options) -> (x, context)      decode-free preprocessing; x: 1 x C x h x w or None
    infer: models[task.main](x) -> y                      the main network (none when prepare gives None)
    finish(models, inputs, options, context, y, device=None) -> dict   postprocessing: {output name: array}, on the
        finish's device (:func:`mattekit.finish.device.device_of`, asked once per item by the caller; None: the CPU)

From the declaration come the CLI subcommand and flags (``mattekit.commands.tasks``), the worker's
operations, their validation and the schema that the GIMP plug-in and the Blender add-on read at
run time (``mattekit.worker.operations``), and the Python API (``mattekit.api``).

This module imports neither numpy nor torch: ``mattekit --help`` and the worker's schema are cheap.
Arrays: float32 in [0,1], H x W x C images (straight alpha, sRGB), H x W masks and alphas.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..options import ModelChoice, Option, OptionError, options_of


@dataclass(frozen=True)
class Port:
    """A pixel input or output of a task.

    kind: "image" (H x W x C colour, C in ``channels``), "mask" (H x W subject probability),
    "alpha" (H x W matte), "trimap" (H x W, 0 / 0.5 / 1) or "depth" (H x W, 1 = nearest).
    size (outputs): "same" as the first input, or "scaled" (a task option says the factor).
    integers (inputs): the task also takes uint8/uint16 pixels here as they are (and then gives its
    result in that dtype), so the CLI reads 8/16-bit files without a float copy.
    recorded (inputs): the provenance of a file written records the file given here (its name and sha256).
    below (optional inputs): a host with layers may fill this input from the layer directly below the one it works
    on, behind a checkbox labelled so (GIMP: "Second shot: the layer below"); "": not offered.
    """

    name: str
    kind: str
    channels: tuple[int, ...] = (1,)
    optional: bool = False
    help: str = ""
    size: str = "same"
    integers: bool = False
    recorded: bool = False
    below: str = ""

    def describe(self) -> dict:
        described = {
            "name": self.name,
            "kind": self.kind,
            "channels": list(self.channels),
            "optional": self.optional,
            "help": self.help,
            "size": self.size,
        }
        return described | ({"below": self.below} if self.below else {})


BACKDROP = Port("backdrop", "image", (3, 4), optional=True, help="an image to put behind the subject (scaled to cover)")
RESULT = Port("result", "image", (1, 3, 4))  # H x W (alpha), H x W x 3 (foreground, composite) or H x W x 4 (rgba)
SHADOW = Port(
    "shadow",
    "alpha",
    optional=True,
    help="with shadow keep: the shadow the subject casts in the photo (0 none, 1 black), full size",
)  # (absent unless asked: the worker leaves it out)


Models = typing.Mapping[str, Any]  # option name of a model field -> a loaded Predictor
ASK = "ask"  # :meth:`Task.run`'s device: the finish's device asked there


def segment_or_matte(model: ModelChoice | None) -> str:
    """The catalog task of a model option that takes segmentation or trimap-free matting models: "matte"
    for a matting network (its alpha is the answer), "segment" for a segmentation one or the default."""
    return "segment" if model is None else model.task


def model_input(models: Models, inputs: dict, options) -> tuple:
    """The common ``prepare``: the main model's input for the image (1 x 3 x h x w), no context."""
    return models["model"].prepare(inputs["image"]), None


def no_model_input(models: Models, inputs: dict, options) -> tuple:
    """``prepare`` for tasks whose work is all in ``finish`` (no network input, no context)."""
    return None, None


class Declaration:
    """What every declaration has: its options read from the options dataclass, and the one option check
    that the CLI, the worker and the API pass values through (``self.name``, ``self.options``)."""

    kind = None  # what the schema names besides a task on images ("sequence")

    @property
    def declared(self) -> tuple[Option, ...]:
        return options_of(self.options)

    @property
    def api_name(self) -> str:
        """The Python API function's name: ``api``, else the name with dashes as underscores."""
        return self.api or self.name.replace("-", "_")

    def describe(self, host: str = "worker") -> dict:
        """The schema of this task for a front end: its kind (a sequence task's), ports, options (with types, ranges,
        choices, models)."""
        described = {"name": self.name, "summary": self.summary}
        if self.kind is not None:
            described["kind"] = self.kind
        return described | {
            "menu": self.menu,
            "main": self.main,
            "inputs": [p.describe() for p in self.inputs],
            "outputs": [p.describe() for p in self.outputs],
            "options": {o.name: o.describe() for o in self.declared if host in o.hosts},
        }

    def option_table(self) -> dict[str, Option]:
        return {o.name: o for o in self.declared}

    def make_options(self, values: dict | None = None, host: str = "api"):
        """The options dataclass from plain values, each checked (OptionError on the first bad one).

        Unknown names and options not offered to ``host`` are refused, and so is a required option left out. The
        API (``host`` "api") may give a parsed option its value as it is (:meth:`mattekit.options.Option.check`).
        """
        values = dict(values or {})
        table = self.option_table()
        unknown = sorted(k for k in values if k not in table or host not in table[k].hosts)
        if unknown:
            offered = ", ".join(n for n, o in table.items() if host in o.hosts) or "none"
            raise OptionError(f"Task '{self.name}' has no option {', '.join(unknown)}; it knows {offered}.")
        for name, declared in table.items():
            if declared.required and values.get(name) in (None, ""):
                raise OptionError(f"Option '{name}' needs {'a path' if declared.path else 'a value'}.")
        checked = {k: table[k].check(v, values=host == "api") for k, v in values.items()}
        return self.options(**checked)


@dataclass(frozen=True)
class Task(Declaration):
    """One task, declared once.

    name: the CLI subcommand, worker operation and API function stem; summary: one sentence.
    options: the options dataclass. inputs / outputs: pixel ports (the first input is the image).
    main: the option holding the model that ``infer`` runs (None: the task has no main network).
    needs(options, given) -> {model option: catalog task}: the models a run needs, given which
    optional inputs are present (default: the main model).
    prepare / infer / finish: the stages (module docstring).
    streams: prepare gives one network input per image, so :mod:`mattekit.running.runner` runs the main model in
    the pipeline's inference workers (decoding and encoding overlapped); otherwise the whole task runs
    in the pipeline's writer.
    suffix: the CLI's output name suffix, or a function of the options giving it ("{scale}" in it
    stands for the main model's scale factor).
    output_format(options, source suffix, suffix of the -o file) -> ".png" | ...: the CLI's output
    format (default: the input's own format where mattekit writes it, else PNG).
    menu: the label of its entry in host menus (None: not offered there).
    progress: ``finish`` takes a ``progress(done, total)`` keyword (long single images: tiles).
    api: the Python API function's name (default: the task's name).
    """

    name: str
    summary: str
    options: type
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    prepare: Callable
    finish: Callable
    main: str | None = "model"
    needs: Callable | None = None
    streams: bool = False
    progress: bool = False
    suffix: Any = ""
    output_format: Callable | None = None
    menu: str | None = None
    api: str | None = None

    def suffix_for(self, options) -> str:
        return self.suffix(options) if callable(self.suffix) else self.suffix

    def models_needed(self, options, given: set[str] | None = None) -> dict[str, str]:
        """{model option name: catalog task} this run loads."""
        if self.needs is not None:
            return dict(self.needs(options, given or set()))
        if self.main is None:
            return {}
        return {self.main: self.option_table()[self.main].model}

    def files_read(self, options, ports: dict[str, str]) -> list[tuple[str, str]]:
        """(CLI flag, path given) of every file besides the image that a run with ``options`` reads:
        the optional input ports given (``ports``: {port name: file or folder}) and the options that
        name files (``path`` and not ``writes``, e.g. a weights file). No output may land on one of them."""
        found = [(f"--{p.name.replace('_', '-')}", str(ports[p.name])) for p in self.inputs[1:] if ports.get(p.name)]
        found += [
            (o.flag, str(getattr(options, o.name))) for o in self.declared if o.reads and getattr(options, o.name, None)
        ]
        return found

    def run(self, models: Models, inputs: dict, options, progress: Callable | None = None, device: Any = ASK) -> dict:
        """prepare -> infer -> finish for one set of inputs (:meth:`finished`); ``device``: the finish's, where the
        caller asked it (:data:`ASK`: asked here of the main model, :func:`mattekit.finish.device.device_of`)."""
        x, context = self.prepare(models, inputs, options)
        y = None if x is None else models[self.main](x)
        if device is ASK:
            from ..finish.device import device_of

            device = device_of(models.get(self.main), inputs["image"])
        return self.finished(models, inputs, options, context, y, device, progress)

    def finished(self, models: Models, inputs: dict, options, context, y, device, progress=None) -> dict:
        """The outputs of ``finish`` on the prediction ``y`` of prepare's input with its ``context``, on the finish's
        ``device`` (None: the CPU cores); ``progress(done, total)`` where the task reports it."""
        if self.progress:
            return self.finish(models, inputs, options, context, y, device=device, progress=progress)
        return self.finish(models, inputs, options, context, y, device=device)


@dataclass(frozen=True)
class SequenceTask(Declaration):
    """A task over a frame sequence (kind "sequence"; roto), declared once: files in, files out, resumable.

    ``options``: the options dataclass (declared with :func:`option`; its required path options are what the
    API function takes by position). Its job lives a layer above the registry (it builds on the runner's
    pipeline), so the front ends run it themselves: the CLI subcommand ``mattekit.commands.<name>``, the
    worker operation and the API function ``mattekit.<api_name>``.
    """

    name: str
    summary: str
    options: type
    api: str | None = None
    kind: str = "sequence"

    menu, main, inputs, outputs = None, "model", (), ()  # no menu entry, no pixel ports (class attributes)


@functools.lru_cache(maxsize=1)
def declarations() -> dict[str, Task | SequenceTask]:
    """Every declaration by name: the module-level ``TASK`` of each module of ``mattekit.tasks`` (this
    module's folder). Image tasks are :func:`tasks`, sequence tasks :func:`sequences`."""
    found = {}
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
        if info.name == "registry":
            continue
        task = getattr(importlib.import_module(f"mattekit.tasks.{info.name}"), "TASK", None)
        if isinstance(task, (Task, SequenceTask)):
            found[task.name] = task
    return found


def tasks() -> dict[str, Task]:
    """Every declared image task (arrays in, arrays out, run by :mod:`mattekit.running.runner`) by name."""
    return {name: task for name, task in declarations().items() if isinstance(task, Task)}


def sequences() -> dict[str, SequenceTask]:
    """Every declared sequence task (frame files in, frame files out, run by its own job) by name."""
    return {name: task for name, task in declarations().items() if isinstance(task, SequenceTask)}


def get(name: str) -> Task:
    table = tasks()
    if name not in table:
        raise KeyError(f"no task {name!r}; known: {', '.join(table)}")
    return table[name]
