"""A catalog model's files as its engine is built from them, resolved once per load: :class:`Recipe` (the weights
file, and what shapes and names the net's ONNX export: :func:`recipe_for`), which a load's plan holds
(:attr:`mattekit.engines.plan.Plan.recipe`) and the builder (:func:`mattekit.engines.build`) and roto's manifest read;
and the check that an export is built only from the bytes it is named by (:func:`as_read`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .. import weights
from ..catalog import ModelEntry
from ..errors import WeightsCheckFailed

if TYPE_CHECKING:
    import torch.nn as nn


@dataclass(frozen=True)
class Recipe:
    """What builds one catalog model's engine: ``name`` (the catalog's; it labels the export and the compiled
    artefacts), ``net`` and ``kwargs`` (the net family and its arguments: :func:`mattekit.nets.build`), ``weights``
    (the file it loads), ``index`` (the prediction's path in the net's output), ``example`` (an input (h, w) in
    pixels the net takes: its export is traced at it) and ``dynamic_size`` (inputs of other sizes come: the export
    keeps height and width free)."""

    name: str
    net: str
    kwargs: dict
    weights: Path
    index: tuple = ()
    example: tuple[int, int] = (64, 64)
    dynamic_size: bool = True

    @property
    def spec(self) -> dict:
        """{"net": ..., "kwargs": ...}: what names its export and compiled artefacts (roto's manifest records it)."""
        return {"net": self.net, "kwargs": self.kwargs}

    def export_path(self) -> Path:
        """Where its ONNX export is cached (:func:`onnx_export_path`)."""
        return onnx_export_path(self.index, self.weights, self.spec, self.example, self.dynamic_size)


def recipe_for(entry: ModelEntry, weights_path: str | Path | None = None) -> Recipe:
    """``entry``'s recipe, with the weights file it loads: the one given, else the catalog's (fetched and verified on
    first use; a WeightsError where it cannot be had)."""
    path = weights.given_file(weights_path) if weights_path else weights.model_file(entry.name, entry.files)
    return Recipe(
        entry.name, entry.net, entry.kwargs, path, entry.output.index, entry.trace_size, entry.input.size is None
    )


def onnx_export_path(
    index: tuple = (),
    weights_path: str | Path | None = None,
    recipe: dict | None = None,
    example: tuple[int, int] = (64, 64),
    dynamic_size: bool = True,
    net: nn.Module | None = None,
) -> Path:
    """Where :func:`onnx_engine` keeps the export for these arguments (:func:`mattekit.engines.onnx.onnx_path`)."""
    from .onnx import onnx_path

    return onnx_path(net, index, weights_path, dict(recipe or {}, size=None if dynamic_size else list(example)))


def as_read(load: Callable[[], nn.Module], path: Path, named: str) -> Callable[[], nn.Module]:
    """``load`` (which reads the weights file at ``path``) for an ONNX export named by the sha256 ``named`` of that
    file: the file read whole just before (:func:`mattekit.weights.read_sha256`, whatever is remembered), and the net
    kept only when those bytes are the ones named and nothing wrote to the file until ``load`` returned; else
    WeightsCheckFailed, and no export is made (an export is named by the bytes it was built from, as read then)."""

    def checked() -> nn.Module:
        digest, identity = weights.read_sha256(path)
        net = load()
        if digest != named or not weights.unchanged(path, identity):
            raise WeightsCheckFailed(
                f"The weights file {path} changed after it was checked (its sha256 is now {digest}, not {named}), "
                "so it was not used and no ONNX export was made from it; run again to check it anew."
            )
        return net

    return checked
