"""A catalog model's weights file and the identity of its ONNX export: what both the builder
(:mod:`mattekit.engines`) and the plan (:mod:`mattekit.engines.plan`) ask of a model's files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .. import weights
from ..catalog import ModelEntry

if TYPE_CHECKING:
    import torch.nn as nn


def weights_file(entry: ModelEntry, weights_path: str | Path | None = None) -> Path:
    """The weights file ``entry`` loads: the one given, else the catalog's (fetched and verified on first use)."""
    return weights.given_file(weights_path) if weights_path else weights.model_file(entry.name, entry.files)


def export_recipe(entry: ModelEntry, path: Path) -> dict:
    """The keyword arguments that identify and shape ``entry``'s ONNX export (:func:`mattekit.engines.create`)."""
    return dict(
        index=entry.output.index,
        weights_path=path,
        recipe={"net": entry.net, "kwargs": entry.kwargs},
        example=entry.trace_size,
        dynamic_size=entry.input.size is None,
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
