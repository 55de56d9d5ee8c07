"""The model catalog: ``catalog.toml`` read into typed entries.

One entry per model: task, net + kwargs, weight files and the pre/post-processing
facts. Adding a model means adding a table to the TOML file (plus a net family in
:mod:`mattekit.nets` when the architecture is new), never a new class.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from functools import lru_cache
import os
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from . import nets
from .errors import MattekitError
from .weights import WeightFile

TASKS = ("segment", "matte", "upscale", "depth", "prompt")  # prompt: promptable models (SAM 2.1) answering hints
BACKENDS = ("torch", "onnx")  # the engines a model may run on (ModelEntry.backends)


@dataclass(frozen=True)
class InputSpec:
    """How an sRGB float image in [0,1] becomes the network's input tensor.

    Sizing (:meth:`net_size`), by the one sizing field a row sets: ``size`` = fixed (H, W), aspect not kept;
    ``ref_size`` = MODNet's demo rule; ``short_side`` = Depth Anything's; none = the image's own size (shrunk,
    aspect kept, until its long side is at most ``max_side`` when one is given) floored to a ``multiple``.
    ``resize``: "bilinear", "area", "cubic", "lanczos" (PIL's, as rembg) or "torch-area" (PyTorch's area mode).
    ``eight_bit``: the reference pipeline reads an 8-bit picture, so every source is first rounded to 8-bit levels
    (:func:`mattekit.ops.pixels.quantise`): a float, 16-bit or linear copy of an 8-bit picture gives the 8-bit
    picture's input, and an 8-bit source is taken as it is. Values: colour order, optional division by the image's
    own max, optional uint8 truncation after resizing (``quantize_uint8``, DIS's), then ``(x - mean) / std *
    extra_scale`` on the 0..1 scale.
    """

    size: tuple[int, int] | None = None
    short_side: int | None = None
    ref_size: int | None = None
    multiple: int = 1
    max_side: int | None = None
    resize: str = "bilinear"
    colour_order: str = "RGB"
    divide_by_max: bool = False
    eight_bit: bool = False
    quantize_uint8: bool = False
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    extra_scale: float = 1.0
    value_scale: float = 1.0  # SR nets fed on 0..255 (RFDN) use 255

    def sizing(self) -> tuple[str, ...]:
        """The sizing fields set, of "size", "ref_size", "short_side" in that order; a catalog row sets at most one."""
        return tuple(k for k in ("size", "ref_size", "short_side") if getattr(self, k) is not None)

    def net_size(self, height: int, width: int) -> tuple[int, int]:
        """The (H, W) in pixels the net sees for a ``height`` x ``width`` image, by the rule of the sizing field
        set (the first of :meth:`sizing` where several are)."""
        if self.size is not None:
            return self.size
        if self.ref_size is not None:
            return self._ref_size_rule(height, width)
        if self.short_side is not None:
            return self._short_side_rule(height, width)
        m = self.multiple
        if self.max_side is not None and max(height, width) > self.max_side:
            scale = self.max_side / max(height, width)
            height, width = round(height * scale), round(width * scale)
        return height - height % m or m, width - width % m or m

    def _ref_size_rule(self, height: int, width: int) -> tuple[int, int]:
        """MODNet's demo: an image whose sides are not both within ``ref_size`` is scaled (aspect kept) so its short
        side is ``ref_size``; then each side is floored to ``multiple`` (at least one multiple)."""
        ref, m = self.ref_size, self.multiple
        if max(height, width) < ref or min(height, width) > ref:
            if width >= height:
                height, width = ref, int(width / height * ref)
            else:
                height, width = int(height / width * ref), ref
        return max(m, height - height % m), max(m, width - width % m)

    def _short_side_rule(self, height: int, width: int) -> tuple[int, int]:
        """Depth Anything's: aspect kept, the short side scaled to ``short_side``, each side rounded to the nearest
        ``multiple`` but never below ``short_side`` when it reached it."""
        scale, m = self.short_side / min(height, width), self.multiple

        def fit(x: float) -> int:
            y = int(round(x / m) * m)
            return y if y >= self.short_side or x < self.short_side else int(math.ceil(x / m) * m)

        return fit(height * scale), fit(width * scale)


@dataclass(frozen=True)
class OutputSpec:
    """Which element of the net's return value is the prediction and how to read it.

    ``index``: path into nested tuples/lists (``[0]`` = first element, ``[0, 0]`` = first of first).
    ``activation``: "none" (already a probability / image), "sigmoid", or "softmax:K"
    (probability of class K); ``logit_scale`` multiplies logits first (nets trained with a hinge
    loss give uncalibrated, narrow logits). ``normalize``: "minmax" rescales the map to [0,1] (U^2-Net).
    ``quantize_uint8``: the map floored to 8-bit levels (rembg's ``(pred * 255).astype("uint8")``).
    ``upsample``: how the map is resized to the photo (an :func:`mattekit.ops.resizing.resize` method: "bilinear";
    "lanczos" as rembg; "torch-area" as MODNet's demo).
    """

    index: tuple[int, ...] = ()
    activation: str = "none"
    logit_scale: float = 1.0
    normalize: str = "none"
    quantize_uint8: bool = False
    upsample: str = "bilinear"
    value_scale: float = 1.0


@dataclass(frozen=True)
class Terms:
    """What a model's publishers say of its use (``[terms.NAME]`` in catalog.toml, shared by a family).

    weights: the weights' licence in the publisher's own words, quoted (None: they published the weights with no
    licence); weights_url: where they say it; code: the code's licence (SPDX) and code_url its LICENSE;
    note: one line on what else the user should know; verified: the quote was checked against the publisher's page
    (False: taken from our earlier records, not checked again)."""

    weights_url: str
    code: str
    code_url: str
    weights: str | None = None
    note: str = ""
    verified: bool = False

    @property
    def stated(self) -> bool:
        """Whether the weights carry a licence their publisher stated."""
        return self.weights is not None


@dataclass(frozen=True)
class ModelEntry:
    """One catalog row (``[models.NAME]`` in catalog.toml); the comment beside each field says what it means.

    backends: the engines the model may run on, of :data:`BACKENDS` (SAM 2.1: torch only, no single-tensor forward
    to export). onnx_as_is: an .onnx file of its weights runs through ONNX Runtime as it is
    (:func:`mattekit.engines.from_onnx_file`) rather than being mapped onto the net: its net has layers
    :mod:`mattekit.onnx_import` cannot map, takes a fixed input size and is not recurrent (rembg's BiRefNet files;
    tests/unit/test_catalog.py checks the flag against the net of every row)."""

    name: str
    task: str
    description: str
    net: str
    kwargs: dict
    licence: str
    files: tuple[WeightFile, ...]
    input: InputSpec
    output: OutputSpec
    scale: int = 1  # upscaling factor of SR nets
    pad_multiple: int = 1  # SR nets that need even sizes (pixel-unshuffle)
    half: bool = False  # fp16 on CUDA gives this net's answer (measured on real weights, or the model's own reference
    # runs fp16 there): auto uses it there
    cpu_bf16: bool = False  # bf16 on CPUs with native bf16 keeps the answer (measured): auto uses it there
    notice: str | None = None  # printed once when the model is used (licence terms)
    terms: Terms | None = None  # the weights' and the code's licences as published (catalog.toml's `terms` name)
    training_data: str = ""  # the data the weights were trained on, and its terms, where the authors name them
    recurrent: bool = False  # a video net carrying state from frame to frame (Predictor.step); sequences in order
    warmup: int = 0  # recurrent: frames run before a chunk's first frame to settle the state
    memory_gb: float | None = None  # GiB a whole run of a 50 MP photo peaks at on the CPU (measured); None: it fits
    edge_matting: bool = True  # segment: remove / select-subject matte the mask's uncertain edge by default (measured)
    overlap: int | None = None  # upscale: pixels tiles overlap by so that tiled = untiled (None: the default)
    temporal: dict = field(
        default_factory=dict
    )  # sequences: fields of mattekit.roto.temporal.TemporalOptions it overrides
    backends: tuple[str, ...] = BACKENDS  # the engines it may run on; one: pinned to it
    onnx_as_is: bool = False  # an .onnx file of its weights runs as it is, not mapped onto the net

    @property
    def weights(self) -> WeightFile:
        return self.files[0]

    @property
    def trace_size(self) -> tuple[int, int]:
        """An input (H, W) in pixels the net takes, to trace its ONNX export at: its sizing rule's answer for a
        64 x 64 image, each side rounded up to ``pad_multiple``."""
        return tuple(-(-v // self.pad_multiple) * self.pad_multiple for v in self.input.net_size(64, 64))


def _entry(name: str, table: dict, terms: dict[str, Terms]) -> ModelEntry:
    table = dict(table)
    if "terms" in table:
        if table["terms"] not in terms:
            raise ValueError(f"catalog entry {name!r} names unknown terms {table['terms']!r}")
        table["terms"] = terms[table["terms"]]
    try:
        files = tuple(WeightFile(**f) for f in table.pop("files"))
        spec_in = table.pop("input", {})
        spec_out = table.pop("output", {})
        for key in ("size", "mean", "std"):
            if key in spec_in:
                spec_in[key] = tuple(spec_in[key])
        if "index" in spec_out:
            spec_out["index"] = tuple(spec_out["index"])
        if isinstance(table.get("backends"), list):
            table["backends"] = tuple(table["backends"])
        entry = ModelEntry(name=name, files=files, input=InputSpec(**spec_in), output=OutputSpec(**spec_out), **table)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"catalog entry {name!r} is malformed: {exc}") from exc
    if entry.task not in TASKS:
        raise ValueError(f"catalog entry {name!r} has unknown task {entry.task!r}")
    if entry.net.partition(":")[0] not in nets.names():
        raise ValueError(
            f"catalog entry {name!r} names net {entry.net!r} of no registered family ({', '.join(nets.names())})"
        )
    _check_facts(name, entry)
    return entry


def _check_facts(name: str, entry: ModelEntry) -> None:
    """ValueError, one sentence, for a row whose sizing, backends or onnx_as_is cannot hold."""
    if len(entry.input.sizing()) > 1:
        raise ValueError(
            f"catalog entry {name!r} sets {' and '.join(entry.input.sizing())} in its input; "
            "a model takes one sizing rule: size, ref_size or short_side."
        )
    backends = entry.backends
    if not isinstance(backends, tuple) or not backends or any(b not in BACKENDS for b in backends):
        shown = list(backends) if isinstance(backends, tuple) else backends
        raise ValueError(
            f"catalog entry {name!r} names backends {shown!r}; choose one or more of {', '.join(BACKENDS)}."
        )
    if entry.onnx_as_is and (entry.input.size is None or entry.recurrent):
        raise ValueError(
            f"catalog entry {name!r} sets onnx_as_is without a fixed input size or on a recurrent net; "
            "only a fixed-size, non-recurrent model runs an .onnx file as it is."
        )


@dataclass(frozen=True)
class Catalog:
    """models: entries by name; defaults: {task: model name}; aliases: {alias: model name} (``people``, ``objects``)."""

    models: dict[str, ModelEntry]
    defaults: dict[str, str]
    aliases: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, task: str | tuple[str, ...] | None = None) -> ModelEntry:
        """The entry called ``name`` (or that the alias ``name`` stands for), of ``task`` (one task or a
        tuple of accepted tasks); a MattekitError sentence when unknown or of another task."""
        tasks = (task,) if isinstance(task, str) else task
        entry = self.models.get(self.aliases.get(name, name))
        if entry is None:
            choices = ", ".join(
                [*self.aliases_for(tasks)] + [n for n, m in self.models.items() if tasks is None or m.task in tasks]
            )
            raise MattekitError(f"Unknown model '{name}'; choose one of: {choices}.")
        if tasks is not None and entry.task not in tasks:
            wanted = " or ".join(f"{_article(t)} {t}" for t in tasks)
            raise MattekitError(f"Model '{name}' is {_article(entry.task)} {entry.task} model, not {wanted} model.")
        return entry

    def aliases_for(self, task: str | tuple[str, ...] | None) -> dict[str, ModelEntry]:
        """{alias: the entry it stands for} among the models of ``task`` (one task or a tuple)."""
        tasks = (task,) if isinstance(task, str) else task
        return {
            alias: self.models[name]
            for alias, name in self.aliases.items()
            if tasks is None or self.models[name].task in tasks
        }

    def unlicensed_notice(self, entry: ModelEntry, config: str) -> str | None:
        """The one line for a model whose weights were published with no licence (None for any other): where that
        is said, the code's licence, and a model of the same task to pin in the ``config`` file instead."""
        if entry.terms is None or entry.terms.stated:
            return None
        other = next((m.name for m in self.for_task(entry.task) if m.terms and m.terms.stated and not m.notice), None)
        instead = (
            f'; to use one whose weights state a licence, set [defaults] {entry.task} = "{other}" in {config}'
            if other
            else ""
        )
        return (
            f"model {entry.name}: its weights were published with no licence ({entry.terms.weights_url}; its code "
            f"is {entry.terms.code}){instead}."
        )

    def default(self, task: str) -> ModelEntry:
        return self.models[self.defaults[task]]

    def for_task(self, task: str) -> list[ModelEntry]:
        return [m for m in self.models.values() if m.task == task]

    def availability(self, entry: ModelEntry) -> str:
        """ "on disk" (in the cache, or added with ``models add``), "in mirror" / "in rembg folder" (that local
        folder holds a catalog file, its hash checked; see :func:`weights.local_folder`), "bad in mirror" /
        "bad in rembg folder" (a file of that name there is not the catalog's: not usable) or "missing"."""
        from . import weights

        if weights.added(entry.name) or any(weights.is_cached(f) for f in entry.files):
            return "on disk"
        where = next((w for w in map(weights.local_folder, entry.files) if w), None)
        if where:
            return f"in {where}"
        bad = next((w for w in (weights.local_folder(f, verified=False) for f in entry.files) if w), None)
        return f"bad in {bad}" if bad else "missing"

    def available(self, task: str) -> list[tuple[ModelEntry, str]]:
        """(entry, "on disk" | "in mirror" | "in rembg folder") of the ``task`` models that can run without a
        download."""
        found = [(m, self.availability(m)) for m in self.for_task(task)]
        return [(m, where) for m, where in found if where == "on disk" or where.startswith("in ")]


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def parse(text: str, pins: dict[str, str] | None = None, pinned_in: str = "") -> Catalog:
    """The catalog in TOML ``text``; ``pins``: {task: model} the user chose as defaults (read from the config file
    ``pinned_in``), checked: a MattekitError sentence for a model that is unknown or of another task."""
    data = tomllib.loads(text)
    terms = {name: Terms(**table) for name, table in data.get("terms", {}).items()}
    models = {name: _entry(name, table, terms) for name, table in data["models"].items()}
    defaults = dict(data.get("defaults", {}))
    for task, name in defaults.items():
        if name not in models or models[name].task != task:
            raise ValueError(f"default {task} model {name!r} is not a {task} entry")
    for task, name in (pins or {}).items():
        if task not in TASKS or name not in models or models[name].task != task:
            choices = ", ".join(m for m, e in models.items() if e.task == task) or ", ".join(TASKS)
            raise MattekitError(
                f"The config file {pinned_in} pins {task} = {name!r}, which is no {task} model; "
                f"choose one of: {choices}."
            )
        defaults[task] = name
    aliases = {}
    for alias, target in data.get("aliases", {}).items():  # a task name stands for that task's default model
        aliases[alias] = defaults.get(target, target)
        if aliases[alias] not in models or alias in models:
            raise ValueError(f"alias {alias!r} names no model ({target!r}) or shadows one")
    return Catalog(models=models, defaults=defaults, aliases=aliases)


CATALOG_PATH = Path(__file__).resolve().with_name("catalog.toml")  # package data, shipped in the wheel


@lru_cache(maxsize=4)
def load(path: str | None = None) -> Catalog:
    """The catalog at ``path``, else ``$MATTEKIT_CATALOG``, else the packaged ``mattekit/catalog.toml``, with the
    default models the user pinned in the config file (:func:`mattekit.settings.pinned_defaults`). A file that
    cannot be read or whose rows do not hold (:func:`parse`'s ValueError): one MattekitError sentence."""
    from .settings import config_path, pinned_defaults

    path = Path(path or os.environ.get("MATTEKIT_CATALOG") or CATALOG_PATH)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MattekitError(
            f"Cannot read the model catalog {path} ({exc.strerror or exc}); "
            "check MATTEKIT_CATALOG or reinstall mattekit."
        ) from None
    try:
        return parse(text, pinned_defaults(), str(config_path()))
    except ValueError as exc:  # a TOML syntax error too
        raise MattekitError(f"The model catalog {path} is not valid: {exc}".rstrip(".") + ".") from None
