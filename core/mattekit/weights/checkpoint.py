"""Loading checkpoints safely (:func:`load_state_dict_file`): ``torch.load(weights_only=True)``,
safetensors or an ONNX release, and unwrapping the containers they come in (:func:`unwrap_state_dict`).
torch is imported where a state dict is loaded, so that the catalog and the cache start without it."""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from mattekit.errors import WeightsError

if TYPE_CHECKING:
    import torch

_WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "net")


def unwrap_state_dict(obj) -> dict[str, torch.Tensor]:
    """Return the plain tensor dict inside a checkpoint.

    Handles ``{'params_ema'|'params'|'state_dict'|...: sd}`` containers (``params_ema``
    preferred) and strips a DataParallel ``module.`` prefix.
    """
    import torch

    while isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
        else:
            raise ValueError("checkpoint holds no tensors under a known key")
    metadata = getattr(obj, "_metadata", None)
    prefix = "module." if obj and all(k.startswith("module.") for k in obj) else ""
    sd = OrderedDict((k[len(prefix) :], v) for k, v in obj.items() if isinstance(v, torch.Tensor))
    if metadata is not None:
        # Module versions let BatchNorm fill in num_batches_tracked missing from old checkpoints (torch's
        # load_state_dict reads the attribute, which its typing does not declare).
        sd._metadata = OrderedDict(  # type: ignore[attr-defined]
            (k[len(prefix) :] if k.startswith(prefix) else k, v) for k, v in metadata.items()
        )
    return sd


def load_state_dict_file(
    path: str | Path, net: torch.nn.Module | None = None, trace: Callable | None = None
) -> dict[str, torch.Tensor]:
    """Load a .pth/.pt/.tar checkpoint safely (``weights_only=True``), a .safetensors file, or an .onnx
    release (its parameters mapped onto ``net`` by :mod:`mattekit.onnx_import`; float32, keys of ``net``;
    ``trace``: the net family's export call, :attr:`mattekit.nets.Family.trace`; None: ``net(x)``)."""
    import torch

    path = Path(path)
    if path.suffix == ".onnx":
        if net is None:
            raise ValueError("an .onnx weights file needs the module to map its parameters onto")
        from mattekit.onnx_import import import_state_dict

        return import_state_dict(path, net, trace=trace)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError):  # its message suggests weights_only=False: never pass that on
        raise WeightsError(
            f"The weights file {path} cannot be loaded safely: it is not a plain checkpoint of tensors "
            "(it holds other Python objects, or is damaged or in another format); mattekit loads "
            "state dicts (.pth), .safetensors and .onnx files only."
        ) from None
    return unwrap_state_dict(obj)
