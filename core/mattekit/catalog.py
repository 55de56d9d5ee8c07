"""The model catalog: ``catalog.toml`` read into typed entries.

One entry per model: task, net + kwargs, weight files and the pre/post-processing
facts. Adding a model means adding a table to the TOML file (plus a net when the
architecture is new), never a new class.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import lru_cache
import os
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import MattekitError
from .weights import WeightFile

TASKS = ("segment", "matte", "upscale", "depth")


@dataclass(frozen=True)
class InputSpec:
    """How an sRGB float image in [0,1] becomes the network's input tensor.

    Sizing: ``size`` = fixed (H, W), aspect not kept; otherwise the image is scaled so
    its short side is ``short_side`` (or, with ``ref_size``, the MODNet rule) and each side
    is rounded to a ``multiple``. ``resize``: "bilinear", "area" or "cubic".
    Values: colour order, optional division by the image's own max, optional uint8
    truncation after resizing, then ``(x - mean) / std * extra_scale`` on the 0..1 scale.
    """

    size: tuple[int, int] | None = None
    short_side: int | None = None
    ref_size: int | None = None
    multiple: int = 1
    resize: str = "bilinear"
    colour_order: str = "RGB"
    divide_by_max: bool = False
    quantize_uint8: bool = False
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    extra_scale: float = 1.0
    value_scale: float = 1.0  # SR nets fed on 0..255 (RFDN) use 255


@dataclass(frozen=True)
class OutputSpec:
    """Which element of the net's return value is the prediction and how to read it.

    ``index``: path into nested tuples/lists (``[0]`` = first element, ``[0, 0]`` = first of first).
    ``activation``: "none" (already a probability / image), "sigmoid", or "softmax:K"
    (probability of class K); ``logit_scale`` multiplies logits first (nets trained with a hinge
    loss give uncalibrated, narrow logits). ``normalize``: "minmax" rescales the map to [0,1] (U^2-Net).
    """

    index: tuple[int, ...] = ()
    activation: str = "none"
    logit_scale: float = 1.0
    normalize: str = "none"
    value_scale: float = 1.0


@dataclass(frozen=True)
class ModelEntry:
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
    half: bool = True  # fp16 on CUDA is accurate for this net
    cpu_bf16: bool = False  # bf16 on CPUs with native bf16 is accurate for this net (measured): auto uses it
    notice: str | None = None  # printed once when the model is used (licence terms)
    extra: dict = field(default_factory=dict)

    @property
    def weights(self) -> WeightFile:
        return self.files[0]


def _entry(name: str, table: dict) -> ModelEntry:
    table = dict(table)
    try:
        files = tuple(WeightFile(**f) for f in table.pop("files"))
        spec_in = table.pop("input", {})
        spec_out = table.pop("output", {})
        for key in ("size", "mean", "std"):
            if key in spec_in:
                spec_in[key] = tuple(spec_in[key])
        if "index" in spec_out:
            spec_out["index"] = tuple(spec_out["index"])
        known = {f for f in ModelEntry.__dataclass_fields__} - {"name", "files", "input", "output", "extra"}
        extra = {k: table.pop(k) for k in list(table) if k not in known}
        entry = ModelEntry(
            name=name, files=files, input=InputSpec(**spec_in), output=OutputSpec(**spec_out),
            extra=extra, **table,
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"catalog entry {name!r} is malformed: {exc}") from exc
    if entry.task not in TASKS:
        raise ValueError(f"catalog entry {name!r} has unknown task {entry.task!r}")
    return entry


@dataclass(frozen=True)
class Catalog:
    models: dict[str, ModelEntry]
    defaults: dict[str, str]

    def get(self, name: str, task: str | None = None) -> ModelEntry:
        """The entry called ``name``; a MattekitError sentence when unknown or of another task."""
        if name not in self.models:
            choices = ", ".join(n for n, m in self.models.items() if task in (None, m.task))
            raise MattekitError(f"Unknown model '{name}'; choose one of: {choices}.")
        entry = self.models[name]
        if task is not None and entry.task != task:
            raise MattekitError(f"Model '{name}' is a {entry.task} model, not a {task} model.")
        return entry

    def default(self, task: str) -> ModelEntry:
        return self.models[self.defaults[task]]

    def for_task(self, task: str) -> list[ModelEntry]:
        return [m for m in self.models.values() if m.task == task]


def parse(text: str) -> Catalog:
    data = tomllib.loads(text)
    models = {name: _entry(name, table) for name, table in data["models"].items()}
    defaults = dict(data.get("defaults", {}))
    for task, name in defaults.items():
        if name not in models or models[name].task != task:
            raise ValueError(f"default {task} model {name!r} is not a {task} entry")
    return Catalog(models=models, defaults=defaults)


CATALOG_PATH = Path(__file__).resolve().with_name("catalog.toml")  # package data, shipped in the wheel


@lru_cache(maxsize=4)
def load(path: str | None = None) -> Catalog:
    """The catalog at ``path``, else ``$MATTEKIT_CATALOG``, else the packaged ``mattekit/catalog.toml``."""
    path = Path(path or os.environ.get("MATTEKIT_CATALOG") or CATALOG_PATH)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MattekitError(f"Cannot read the model catalog {path} ({exc.strerror or exc}); "
                            "check MATTEKIT_CATALOG or reinstall mattekit.") from None
    return parse(text)
