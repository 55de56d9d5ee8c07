"""A catalog model's pieces as the engines need them: its weights file, its net loaded with them, its ONNX export's
recipe, and :func:`build`, the engine a plan names."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import nets, weights
from ..catalog import ModelEntry
from ..errors import MattekitError
from . import threads


def weights_file(entry: ModelEntry, weights_path: str | Path | None = None) -> Path:
    """The weights file ``entry`` loads: the one given, else the catalog's (fetched and verified on first use)."""
    return weights.given_file(weights_path) if weights_path else weights.model_file(entry.name, entry.files)


def export_recipe(entry: ModelEntry, path: Path) -> dict:
    """The keyword arguments that identify and shape ``entry``'s ONNX export (:func:`mattekit.engines.create`)."""
    example = entry.input.net_size(64, 64)
    return dict(index=entry.output.index, weights_path=path, recipe={"net": entry.net, "kwargs": entry.kwargs},
                example=tuple(-(-v // entry.pad_multiple) * entry.pad_multiple for v in example),
                dynamic_size=entry.input.size is None)


def _empty_net(entry: ModelEntry, path: Path):
    """``entry``'s net built on the meta device (its layers' random initialisation skipped: BiRefNet's took 1.7 s
    of a 5 s load), or None where its weights could not fill it all: an .onnx release (mapped through a traced net),
    a net holding a non-persistent buffer or a plain tensor attribute made in a constructor."""
    import torch

    if path.suffix.lower() == ".onnx":
        return None
    try:
        with torch.device("meta"):
            net = nets.build(entry.net, **entry.kwargs)
    except Exception:  # noqa: BLE001 - a constructor that reads its own tensors' values: built as before
        return None
    for module in net.modules():  # a tensor no state dict fills: a non-persistent buffer, a plain attribute
        if module._non_persistent_buffers_set:
            return None
        for name, value in vars(module).items():
            if name in ("_parameters", "_buffers", "_modules"):
                continue
            values = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else (value,)
            if any(isinstance(v, torch.Tensor) for v in values):
                return None
    return net


def load_net(entry: ModelEntry, path: Path):
    """``entry``'s net (eval mode, fp32, CPU) with the weights at ``path``; one sentence when they do not fit. The
    checkpoint's tensors (cast to fp32 where they are not) become the parameters themselves: no second copy, and no
    random initialisation where the net can be built empty (:func:`_empty_net`)."""
    import torch

    empty = _empty_net(entry, path)
    net = empty if empty is not None else nets.build(entry.net, **entry.kwargs)
    try:
        state = weights.load_state_dict_file(path, net, nets.family(entry.net).trace)
        fp32 = all(t.dtype is torch.float32 for t in state.values() if t.is_floating_point())
        if empty is not None and not fp32:
            state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        net.load_state_dict(state, strict=True, assign=fp32 or empty is not None)
        del state
    except (RuntimeError, ValueError, OSError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MattekitError(f"Weights file {path.name} does not fit model '{entry.name}' ({first[:160]}).") from None
    return net.eval()


def build(entry: ModelEntry, plan):
    """(the engine ``plan`` names for ``entry``, the plan as built, the weights file): the weights fetched and checked
    (:func:`weights_file`), then :func:`mattekit.engines.create`; weights that are an ONNX release whose layers the
    net does not take (rembg's BiRefNet files: the catalog's ``onnx_as_is``) run as they are, on ONNX Runtime on the
    CPU (the catalog's pre- and postprocessing apply either way), and the plan returned says so
    (:func:`mattekit.engines.plan.release_as_is`)."""
    from .. import engines
    from .plan import release_as_is

    path = weights_file(entry, plan.weights or None)
    made = export_recipe(entry, path)
    exported = plan.engine == "onnx" and engines.onnx_export_path(**made).is_file()  # then not a release as it is
    if path.suffix.lower() == ".onnx" and not exported and entry.onnx_as_is:
        return engines.from_onnx_file(path), release_as_is(plan, entry), path
    return engines.create(plan, lambda: load_net(entry, path), label=entry.name, **made), plan, path
