"""Options declared once, as dataclass fields carrying what every front end needs (:func:`option`), read back as
:class:`Option` (:func:`options_of`), and checked one way for the CLI, the worker and the API (:meth:`Option.check`).

This module imports neither numpy nor torch: ``mattekit --help`` and the worker's schema are cheap.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math
import os
import typing
from dataclasses import dataclass, field
from typing import Any

NONE = "none"  # the value of a model option declared with ``none``: no model of its kind (the fallback on purpose)


class OptionError(ValueError):
    """An option value outside its declaration; the message is one sentence naming the option."""


@dataclass(frozen=True)
class ModelChoice:
    """A model option's value once checked (:meth:`Option.check`): the name as given (a model or an alias such as
    ``people``; it prints, and is recorded, as that name), the catalog row it stands for (``entry``, a
    :class:`mattekit.catalog.ModelEntry`) and, given from the Python API, the loaded model (``predictor``, a
    :class:`mattekit.runtime.Predictor`; None: loaded by name when a run needs it). Every step after the check
    reads it: the model is looked up in the catalog once."""

    name: str
    entry: Any = field(repr=False)
    predictor: Any = field(default=None, repr=False, compare=False)

    task = property(lambda self: self.entry.task, doc='What the model does: "segment", "matte", "upscale", ...')
    scale = property(lambda self: self.entry.scale, doc="Its upscaling factor (1 but for super-resolution).")
    model = property(lambda self: self.entry.name, doc="The catalog model it stands for (an alias's model).")
    recurrent = property(lambda self: self.entry.recurrent, doc="A video net carrying state from frame to frame.")
    warmup = property(lambda self: self.entry.warmup, doc="Recurrent: frames run before a chunk's first frame.")

    def __str__(self) -> str:
        return self.name

    def stands_for(self) -> str | None:
        """What an alias stands for, "MODEL (LICENCE)"; None for a model's own name."""
        return None if self.name == self.entry.name else f"{self.entry.name} ({self.entry.licence})"


def model_choice(value: ModelChoice | str | None, task: str | tuple) -> ModelChoice:
    """The :class:`ModelChoice` ``value`` stands for where no option's check made it (the edges: the API's
    ``load_model``, a bench's ``--model``, a model option left unset): a choice as it is, a model's name looked up in
    the catalog (a model of ``task``), None the catalog's default ``task`` model: the one rule for the default."""
    if isinstance(value, ModelChoice):
        return value
    from . import catalog

    found = catalog.load()
    entry = found.default(task) if value is None else found.get(value, task)
    return ModelChoice(entry.name if value is None else value, entry)


def option(
    default: Any = None,
    help: str = "",
    *,
    choices: tuple | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    model: str | tuple | None = None,
    flag: str | None = None,
    label: str | None = None,
    hosts: tuple[str, ...] = ("cli", "worker", "api"),
    path: bool = False,
    bare: Any = None,
    missing: str | None = None,
    none: str | None = None,
    repeat: bool = False,
    writes: bool = False,
    parse: str | None = None,
    keywords: tuple[str, ...] | None = None,
):
    """A dataclass field with the metadata every front end needs.

    choices / minimum / maximum: the allowed values (checked everywhere by :meth:`Option.check`).
    model: the catalog task whose model names this option takes ("segment", "depth", ...), or a tuple of
    them; the catalog's aliases of those tasks' models (``people``, ``objects``) are accepted too. The option holds a
    :class:`ModelChoice` (its field's type), or the text ``none`` where ``none`` allows it.
    flag: the CLI flag when not ``--<name with dashes>``.
    default: ``dataclasses.MISSING`` for a required option.
    label: the short name a dialog shows (default: from the name). hosts: the front ends that offer
    it ("cli", "worker", "api"; GIMP and Blender show what the worker offers). path: a file path (the
    worker confines paths to the folders its user allowed) naming files the run reads (an input: no
    output may land on one, see :meth:`mattekit.tasks.registry.Task.files_read`), or with ``writes`` where the run writes.
    bare: the value of the CLI flag given without one.
    missing: for a model option, what the user can do instead when its weights are missing.
    none: for a model option that the value :data:`NONE` may turn off, what then answers instead (its words).
    repeat: a text option the CLI flag may be given several times; the values are joined with ";".
    parse: ``"package.module:function"`` turning the text a host hands in (or the value itself, from the API) into
    the option's value (a box, a colour, a weights file), or a one-sentence MattekitError or ValueError naming it;
    :meth:`Option.check` calls it before any model loads and the options hold what it returns. The field's type
    is the value's; the option's :attr:`Option.type` is ``str``, the text form (:meth:`Option.text`).
    keywords: the words a parsed option takes besides its text form, each checked to itself (case and surrounding
    spaces aside), e.g. the shadow's ``keep``; the schema names them, so hosts need no copy.
    """
    meta = {name: value for name, value in locals().items() if name != "default"}  # the parameters, as given
    meta.update(hosts=tuple(hosts), choices=None if choices is None else tuple(choices))
    meta.update(keywords=None if keywords is None else tuple(keywords))
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
    parse: str | None = None  # "package.module:function" turning the text into the option's value
    keywords: tuple[str, ...] | None = None  # words the parsed option takes besides its text form, e.g. "keep"

    @property
    def reads(self) -> bool:
        """The option names a file (or folder or pattern of files) the run reads: an input of the run."""
        return self.path and not self.writes

    def check(self, value: Any, values: bool = False) -> Any:
        """``value`` converted to the declared type and checked, as the options hold it (a parsed option's value:
        what its ``parse`` gives for the text, or with ``values`` (the Python API) for a value given as it is, such
        as a tuple for a box); OptionError otherwise."""
        if value is None:
            if self.nullable:
                return None
            raise OptionError(f"Option '{self.name}' needs a value.")
        if self.model and (isinstance(value, ModelChoice) or (values and hasattr(value, "as_choice"))):
            return self._model(value)
        if self.parse and values and not isinstance(value, str):
            return self._parsed(value)
        kind = self.type
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise OptionError(f"Option '{self.name}' must be {_type_words(kind)}, not {value!r}.")
        if kind is float and not math.isfinite(value):
            raise OptionError(f"Option '{self.name}' must be a finite number, not {value!r}.")
        if self.choices is not None and value not in self.choices:
            raise OptionError(
                f"Option '{self.name}' must be one of {', '.join(map(str, self.choices))}, not {value!r}."
            )
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
        if kind is str and self.parse:
            return self._parsed(value)
        if kind is str and self.model:  # the name of a catalog model (or alias), found without loading it
            return self._model(value)
        return value

    def _model(self, value: Any) -> ModelChoice:
        """The :class:`ModelChoice` of a model's name (looked up in the catalog: the one lookup of a run), of a loaded
        Predictor given from the API or of a choice already made (their task checked); OptionError in the catalog's
        words for a name it lacks or a model of another task."""
        from . import catalog, errors

        try:
            if isinstance(value, str):
                return ModelChoice(value, catalog.load().get(value, self.model))
            choice = value if isinstance(value, ModelChoice) else value.as_choice()
            if choice.task not in ((self.model,) if isinstance(self.model, str) else self.model):
                catalog.Catalog({choice.name: choice.entry}, {}).get(choice.name, self.model)  # its sentence
            return choice
        except (errors.MattekitError, ValueError) as exc:
            raise OptionError(str(exc)) from None

    def _parsed(self, value: Any) -> Any:
        """The option's value that ``parse`` gives for ``value`` (its text, or a value as it is); OptionError in the
        parser's words otherwise."""
        from . import errors

        try:
            return resolve(self.parse)(value)
        except (errors.MattekitError, ValueError, TypeError) as exc:
            raise OptionError(str(exc)) from None

    def text(self, value: Any) -> Any:
        """``value`` as a host writes it (provenance, the CLI): a parsed value as its text (the values print so),
        a repeatable option's values, or a tuple of values (roto's hint masks), joined with ";"; other values as
        they are."""
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if self.repeat or type(value) is tuple:
            return ";".join(map(str, value))
        return str(value)

    def paths(self, value: Any) -> list[str]:
        """The paths a path option's ``value`` names: its text (or a Path), or each value of a tuple as a path
        (``os.fspath``: roto's hint masks give their patterns); none for no value or an option that is no path."""
        if not self.path or not value:
            return []
        return [os.fspath(v) for v in value] if isinstance(value, tuple) else [os.fspath(value)]

    def describe(self) -> dict:
        out = {
            "type": self.type.__name__,
            "default": self.default,
            "nullable": self.nullable,
            "help": self.help,
            "label": self.label,
            "required": self.required,
            "path": self.path,
        }
        if self.repeat:
            out["repeat"] = True  # several values joined with ";"
        for key in ("choices", "minimum", "maximum", "model", "none", "keywords"):
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        if self.model is not None:  # names a menu offers besides the catalog's models: people, objects
            from . import catalog

            out["model_aliases"] = [
                {"name": alias, "model": entry.name, "licence": entry.licence}
                for alias, entry in catalog.load().aliases_for(self.model).items()
            ]
        return out


def _type_words(kind: type) -> str:
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}[kind]


def _field_type(hint: Any, parsed: bool = False) -> tuple[type, bool]:
    """(base type, accepts None) of an annotation such as ``float | None``; a ``parsed`` option's base type is
    ``str`` (the text form hosts hand in), whatever its value's type."""
    args = typing.get_args(hint)
    if parsed:
        return str, type(None) in args
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
        kind, nullable = _field_type(hints[f.name], parsed=meta["parse"] is not None or meta["model"] is not None)
        required = f.default is dataclasses.MISSING
        nullable = (nullable or f.default is None) and not required
        named = {"flag": meta["flag"] or "--" + f.name.replace("_", "-")}
        named["label"] = meta["label"] or f.name.replace("_", " ").capitalize()
        default = None if required else f.default
        out.append(Option(f.name, kind, default, nullable, required=required, **(meta | named)))
    return tuple(out)


def resolve(path: str):
    """The object a ``"package.module:name"`` path names, its module imported on first use."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)
