"""The task registry: each task is declared once, and every front end is derived from it.

A task is a :class:`Task`: pixel inputs and outputs (:class:`Port`), an options dataclass whose
fields carry their metadata (:func:`option`), and three stages that take the loaded models
explicitly (segment-anything style: the predictor is passed in, never looked up):

    prepare(models, inputs, options) -> (x, context)      decode-free preprocessing; x: 1 x C x h x w or None
    infer: models[task.main](x) -> y                      the main network (none when prepare gives None)
    finish(models, inputs, options, context, y) -> dict   postprocessing: {output name: array}

From the declaration come the CLI subcommand and flags (``mattekit.commands.tasks``), the worker's
operations, their validation and the schema that the GIMP plug-in and the Blender add-on read at
run time (``mattekit.worker.operations``), and the Python API (``mattekit.api``).

This module imports neither numpy nor torch: ``mattekit --help`` and the worker's schema are cheap.
Arrays: float32 in [0,1], H x W x C images (straight alpha, sRGB), H x W masks and alphas.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import math
import pkgutil
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


NONE = "none"  # the value of a model option declared with ``none``: no model of its kind (the fallback on purpose)


class OptionError(ValueError):
    """An option value outside its declaration; the message is one sentence naming the option."""


@dataclass(frozen=True)
class Port:
    """A pixel input or output of a task.

    kind: "image" (H x W x C colour, C in ``channels``), "mask" (H x W subject probability),
    "alpha" (H x W matte), "trimap" (H x W, 0 / 0.5 / 1) or "depth" (H x W, 1 = nearest).
    size (outputs): "same" as the first input, or "scaled" (a task option says the factor).
    integers (inputs): the task also takes uint8/uint16 pixels here as they are (and then gives its
    result in that dtype), so the CLI reads 8/16-bit files without a float copy.
    """

    name: str
    kind: str
    channels: tuple[int, ...] = (1,)
    optional: bool = False
    help: str = ""
    size: str = "same"
    integers: bool = False

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "channels": list(self.channels), "optional": self.optional,
                "help": self.help, "size": self.size}


def option(default: Any = None, help: str = "", *, choices: tuple | None = None, minimum: float | None = None,
           maximum: float | None = None, model: str | tuple | None = None, flag: str | None = None, label: str | None = None,
           hosts: tuple[str, ...] = ("cli", "worker", "api"), path: bool = False,
           bare: Any = None, missing: str | None = None, none: str | None = None, repeat: bool = False,
           writes: bool = False, parse: str | None = None):
    """A dataclass field with the metadata every front end needs.

    choices / minimum / maximum: the allowed values (checked everywhere by :meth:`Task.check`).
    model: the catalog task whose model names this option holds ("segment", "depth", ...), or a tuple of
    them; the catalog's aliases of those tasks' models (``people``, ``objects``) are accepted too.
    flag: the CLI flag when not ``--<name with dashes>``.
    default: ``dataclasses.MISSING`` for a required option.
    label: the short name a dialog shows (default: from the name). hosts: the front ends that offer
    it ("cli", "worker", "api"; GIMP and Blender show what the worker offers). path: a file path (the
    worker confines paths to the folders its user allowed) naming files the run reads (an input: no
    output may land on one, see :meth:`Task.files_read`), or with ``writes`` where the run writes.
    bare: the value of the CLI flag given without one.
    missing: for a model option, what the user can do instead when its weights are missing.
    none: for a model option that the value :data:`NONE` may turn off, what then answers instead (its words).
    repeat: a text option the CLI flag may be given several times; the values are joined with ";".
    parse: ``"package.module:function"`` checking a text's syntax (a colour, a point, a weights file) with a
    one-sentence MattekitError or ValueError naming it; :meth:`Option.check` calls it before any model loads.
    """
    meta = {"help": help, "choices": tuple(choices) if choices is not None else None, "minimum": minimum,
            "maximum": maximum, "model": model, "flag": flag, "label": label, "hosts": tuple(hosts),
            "path": path, "bare": bare, "missing": missing, "none": none, "repeat": repeat,
            "writes": writes, "parse": parse}
    if default is dataclasses.MISSING:
        return field(metadata={"mattekit": meta})
    return field(default=default, metadata={"mattekit": meta})


@dataclass(frozen=True)
class Option:
    """One declared option, read back from its dataclass field."""

    name: str
    type: type  # bool, int, float or str
    default: Any
    nullable: bool
    help: str
    choices: tuple | None
    minimum: float | None
    maximum: float | None
    model: str | tuple[str, ...] | None
    flag: str
    label: str
    hosts: tuple[str, ...]
    path: bool
    bare: Any
    missing: str | None
    none: str | None = None  # the value NONE chooses no model: what answers instead
    required: bool = False
    repeat: bool = False
    writes: bool = False  # a path option the run writes to; other path options name files it reads
    parse: str | None = None  # "package.module:function" checking the text's syntax

    @property
    def reads(self) -> bool:
        """The option names a file (or folder or pattern of files) the run reads: an input of the run."""
        return self.path and not self.writes

    def check(self, value: Any) -> Any:
        """``value`` converted to the declared type and checked; OptionError otherwise."""
        if value is None:
            if self.nullable:
                return None
            raise OptionError(f"Option '{self.name}' needs a value.")
        kind = self.type
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise OptionError(f"Option '{self.name}' must be {_type_words(kind)}, not {value!r}.")
        if kind is float and not math.isfinite(value):
            raise OptionError(f"Option '{self.name}' must be a finite number, not {value!r}.")
        if self.choices is not None and value not in self.choices:
            raise OptionError(f"Option '{self.name}' must be one of {', '.join(map(str, self.choices))}, not {value!r}.")
        if self.minimum is not None and value < self.minimum:
            raise OptionError(f"Option '{self.name}' must be at least {self.minimum:g}, not {value!r}.")
        if self.maximum is not None and value > self.maximum:
            raise OptionError(f"Option '{self.name}' must be at most {self.maximum:g}, not {value!r}.")
        if kind is str and len(value) > 4096:
            raise OptionError(f"Option '{self.name}' is longer than 4096 characters.")
        if kind is str and "\0" in value:  # no name or text may hold one (the OS refuses it in paths)
            raise OptionError(f"Option '{self.name}' holds a null character, which no file name or text may hold.")
        if kind is str and self.none and value == NONE:
            return value
        if kind is str and (self.model or self.parse):  # checks that need no model, in the checker's words
            from .. import catalog, errors

            try:
                _resolve(self.parse)(value) if self.parse else catalog.load().get(value, self.model)
            except (errors.MattekitError, ValueError) as exc:
                raise OptionError(str(exc)) from None
        return value

    def describe(self) -> dict:
        out = {"type": self.type.__name__, "default": self.default, "nullable": self.nullable, "help": self.help,
               "label": self.label, "required": self.required, "path": self.path}
        if self.repeat:
            out["repeat"] = True  # several values joined with ";"
        for key in ("choices", "minimum", "maximum", "model", "none"):
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        if self.model is not None:  # names a menu offers besides the catalog's models: people, objects
            from .. import catalog

            out["model_aliases"] = [{"name": alias, "model": entry.name, "licence": entry.licence}
                                    for alias, entry in catalog.load().aliases_for(self.model).items()]
        return out


def _type_words(kind: type) -> str:
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}[kind]


def _field_type(hint: Any) -> tuple[type, bool]:
    """(base type, accepts None) of an annotation such as ``float | None``."""
    args = typing.get_args(hint)
    if args:
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and inner[0] in (bool, int, float, str):
            return inner[0], type(None) in args
    if hint in (bool, int, float, str):
        return hint, False
    raise TypeError(f"option type {hint!r} is not bool, int, float or str (optionally | None)")


@functools.lru_cache(maxsize=None)
def options_of(cls: type) -> tuple[Option, ...]:
    """The declared options of an options dataclass, in field order (fields without metadata are skipped);
    read once per class (the worker checks every request against them)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("mattekit")
        if meta is None:
            continue
        kind, nullable = _field_type(hints[f.name])
        required = f.default is dataclasses.MISSING
        nullable = (nullable or f.default is None) and not required
        out.append(Option(
            name=f.name, type=kind, default=None if required else f.default, nullable=nullable, required=required,
            help=meta["help"], choices=meta["choices"],
            minimum=meta["minimum"], maximum=meta["maximum"], model=meta["model"],
            flag=meta["flag"] or "--" + f.name.replace("_", "-"),
            label=meta["label"] or f.name.replace("_", " ").capitalize(), hosts=meta["hosts"], path=meta["path"],
            bare=meta["bare"], missing=meta["missing"], none=meta["none"], repeat=meta["repeat"],
            writes=meta["writes"], parse=meta["parse"]))
    return tuple(out)


# --------------------------------------------------------------- option groups that tasks share

DEVICE_HELP = "auto (default), cpu, cuda, cuda:N or mps"
WEIGHTS_HELP = "use this weights file instead of the catalog's download"
DEVICE_PARSE, WEIGHTS_PARSE = "mattekit.machine:check_device", "mattekit.weights.added:given_file"
RESULTS = ("rgba", "alpha", "foreground", "composite")


@dataclass
class ModelOptions:
    """The model a task runs: its name, a weights file instead of the catalog's, the device.

    A task redeclares ``model`` with its own help and catalog task (the field keeps its place). The
    options of a task inherit this group first, so fields come in the order of the bases from the
    last one: ``SegmentOptions(ModelOptions, CutoutOptions)`` has the cut-out fields, then these.
    """

    model: str | None = option(None, "model (see `mattekit models list`); default: the catalog's")
    weights: str | None = option(None, WEIGHTS_HELP, path=True, parse=WEIGHTS_PARSE, hosts=("cli", "api"))
    device: str = option("auto", DEVICE_HELP, parse=DEVICE_PARSE)


@dataclass
class CutoutOptions:
    """What a task that ends in a cut-out gives (``remove``, ``matte``): read by :func:`mattekit.cutout.assemble`."""

    result: str | None = option(
        None, "what to produce: rgba (cut-out, straight alpha), alpha (greyscale matte), foreground (the "
        "subject's colours, no alpha) or composite (over --background / --backdrop); default rgba, or "
        "composite when a background is given", choices=RESULTS)
    background: str | None = option(
        None, "composite background: a colour (#rrggbb, r,g,b or a name) or blur[:SIGMA] (the photo's own "
        "background, blurred); implies result composite", parse="mattekit.cutout:parse_background")
    shadow: str | None = option(None, "with a composite: a drop shadow DY,DX,BLUR,OPACITY under the subject "
                                "(the flag alone: 12,12,8,0.5)", bare="12,12,8,0.5", parse="mattekit.cutout:parse_shadow")
    crop: float | None = option(None, "crop to the subject's box grown by this fraction of its size (e.g. 0.05)",
                                minimum=0.0, maximum=10.0, bare=0.05)
    decontaminate: bool = option(True, "give partially transparent pixels the subject's own colours "
                                 "(no old background in hair and soft edges)")


BACKDROP = Port("backdrop", "image", (3, 4), optional=True, help="an image to put behind the subject (scaled to cover)")
RESULT = Port("result", "image", (1, 3, 4))  # H x W (alpha), H x W x 3 (foreground, composite) or H x W x 4 (rgba)


Models = typing.Mapping[str, Any]  # option name of a model field -> a loaded Predictor


def segment_or_matte(model: str | None) -> str:
    """The catalog task of a model option that takes segmentation or trimap-free matting models: "matte"
    for a matting network (its alpha is the answer), "segment" for a segmentation one or the default."""
    from .. import catalog

    return "segment" if model is None else catalog.load().get(model, ("segment", "matte")).task


def model_input(models: Models, inputs: dict, options) -> tuple:
    """The common ``prepare``: the main model's input for the image (1 x 3 x h x w), no context."""
    return models["model"].prepare(inputs["image"]), None


def no_model_input(models: Models, inputs: dict, options) -> tuple:
    """``prepare`` for tasks whose work is all in ``finish`` (no network input, no context)."""
    return None, None


class Declaration:
    """What every declaration has: its options read from the options dataclass, and the one option check
    that the CLI, the worker and the API pass values through (``self.name``, ``self.options``)."""

    @property
    def declared(self) -> tuple[Option, ...]:
        return options_of(self.options)

    def option_table(self) -> dict[str, Option]:
        return {o.name: o for o in self.declared}

    def make_options(self, values: dict | None = None, host: str = "api"):
        """The options dataclass from plain values, each checked (OptionError on the first bad one).

        Unknown names and options not offered to ``host`` are refused, and so is a required option left out.
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
        checked = {k: table[k].check(v) for k, v in values.items()}
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
    streams: prepare gives one network input per image, so :mod:`mattekit.runner` runs the main model in
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

    @property
    def api_name(self) -> str:
        return self.api or self.name.replace("-", "_")

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
        found += [(o.flag, str(getattr(options, o.name))) for o in self.declared
                  if o.reads and getattr(options, o.name, None)]
        return found

    def run(self, models: Models, inputs: dict, options, progress: Callable | None = None) -> dict:
        """prepare -> infer -> finish for one set of inputs; ``progress(done, total)`` where the task reports it."""
        x, context = self.prepare(models, inputs, options)
        y = None if x is None else models[self.main](x)
        if self.progress:
            return self.finish(models, inputs, options, context, y, progress=progress)
        return self.finish(models, inputs, options, context, y)

    def describe(self, host: str = "worker") -> dict:
        """The schema of this task for a front end: ports, options (with types, ranges, choices, models)."""
        return {"name": self.name, "summary": self.summary, "menu": self.menu, "main": self.main,
                "inputs": [p.describe() for p in self.inputs], "outputs": [p.describe() for p in self.outputs],
                "options": {o.name: o.describe() for o in self.declared if host in o.hosts}}


def _resolve(path: str):
    """The object a ``"package.module:name"`` path names, its module imported on first use."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class SequenceTask(Declaration):
    """A task over a frame sequence (kind "sequence"; roto), declared once: files in, files out, resumable.

    Its code lives a layer above the registry (it builds on the runner's pipeline and imports this
    module), so the declaration names it by ``"package.module:name"`` paths, imported on first use:
    ``spec`` the options dataclass (declared with :func:`option`; its required path options are what
    the API function takes by position), ``runner`` the job class, run as
    ``runner(options, models).run(progress=callback)`` -> a summary, and ``operation`` the worker's
    function ``operation(options as a dict, progress(fraction, message), models)``. ``models`` is the
    caller's ``mattekit.runtime.ModelCache``, so a model it holds is reused.
    From it come the CLI subcommand's options (``mattekit.commands.<name>``), the worker operation
    and the API function ``mattekit.<api_name>``.
    """

    name: str
    summary: str
    spec: str
    runner: str
    operation: str
    api: str | None = None
    kind: str = "sequence"

    @property
    def api_name(self) -> str:
        return self.api or self.name.replace("-", "_")

    @property
    def options(self) -> type:
        return _resolve(self.spec)

    def make_runner(self, options, models=None):
        """The job that runs ``options`` (from :meth:`make_options`), loading into ``models``."""
        return _resolve(self.runner)(options, models)

    def run_operation(self, options, progress: Callable[[float, str], None], models=None):
        """The worker's run of ``options`` (see the class docstring)."""
        return _resolve(self.operation)(dataclasses.asdict(options), progress, models)

    def describe(self, host: str = "worker") -> dict:
        """The schema of this task for a front end: no pixel ports; options as :meth:`Task.describe`'s."""
        return {"name": self.name, "summary": self.summary, "kind": self.kind, "menu": None, "main": "model",
                "inputs": [], "outputs": [],
                "options": {o.name: o.describe() for o in self.declared if host in o.hosts}}


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
    """Every declared image task (arrays in, arrays out, run by :mod:`mattekit.runner`) by name."""
    return {name: task for name, task in declarations().items() if isinstance(task, Task)}


def sequences() -> dict[str, SequenceTask]:
    """Every declared sequence task (frame files in, frame files out, run by its own job) by name."""
    return {name: task for name, task in declarations().items() if isinstance(task, SequenceTask)}


def get(name: str) -> Task:
    table = tasks()
    if name not in table:
        raise KeyError(f"no task {name!r}; known: {', '.join(table)}")
    return table[name]
