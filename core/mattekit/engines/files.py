"""A catalog model's weights file and the identity of its ONNX export: what both the builder
(:mod:`mattekit.engines`) and the plan (:mod:`mattekit.engines.plan`) ask of a model's files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .. import weights
from ..catalog import ModelEntry
from ..errors import WeightsCheckFailed

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
