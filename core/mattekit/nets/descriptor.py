"""What a network family is and how the runtime runs it: :class:`Family`, one per architecture, declared
beside the net's code (a ``FAMILY`` in its module) and listed in :mod:`mattekit.nets`' registry.

Imports no torch: the catalog checks its rows against the registry without loading a network.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch


def plain_call(net: torch.nn.Module, x: torch.Tensor) -> object:
    """``net(x)``: how a family's ONNX release was exported unless it says otherwise."""
    return net(x)


def as_is(out: torch.Tensor) -> torch.Tensor:
    """The selected output unchanged (already N x C x H x W)."""
    return out


@dataclass(frozen=True)
class Family:
    """One network architecture, as the runtime needs to know it.

    name: the catalog's ``net`` prefix (``"u2net"`` in ``net = "u2net:U2NETP"``); classes: {class name: the
    ``torch.nn.Module`` class (or a function building one) taking the catalog row's ``kwargs``}.
    trace: (net, x) -> the forward call its ONNX release was exported with, x a 1 x 3 x h x w tensor
    (:mod:`mattekit.onnx_import` replays it to order the layers).
    step: recurrent families only: (net, x, state or None) -> (the net's outputs, the state for the next frame).
    as_maps: the selected output -> N x C x H x W. What a model's catalog row says is not here: its input size
    (:meth:`mattekit.catalog.InputSpec.net_size`), its engines and whether an .onnx file of it runs as it is
    (:class:`mattekit.catalog.ModelEntry`).
    """

    name: str
    classes: dict[str, Callable[..., torch.nn.Module]]
    trace: Callable[[torch.nn.Module, torch.Tensor], object] = plain_call
    step: Callable[[torch.nn.Module, torch.Tensor, tuple | None], tuple[object, tuple]] | None = None
    as_maps: Callable[[torch.Tensor], torch.Tensor] = as_is

    @property
    def plain(self) -> bool:
        """Every default the runtime reads: maps as they are, no step (the ONNX trace call may be its own)."""
        return self.as_maps is as_is and self.step is None

    def build(self, class_name: str, **kwargs) -> torch.nn.Module:
        """The module ``class_name`` of this family built with ``kwargs`` (ValueError for an unknown class)."""
        if class_name not in self.classes:
            raise ValueError(f"net family {self.name!r} has no class {class_name!r}; it has {', '.join(self.classes)}")
        return self.classes[class_name](**kwargs)
