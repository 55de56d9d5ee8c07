"""What a network family is and how the runtime runs it: :class:`Family`, one per architecture, declared
beside the net's code (a ``FAMILY`` in its module) and listed in :mod:`mattekit.nets`' registry.

Imports no torch: the catalog checks its rows against the registry without loading a network.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:
    import torch


class InputSpec(Protocol):
    """What a size rule reads of a catalog row's input spec (the catalog's ``InputSpec``, which imports this
    module): a fixed (H, W) ``size`` or None, the ``multiple`` a free size is floored to, and its ``max_side``."""

    size: tuple[int, int] | None
    multiple: int
    max_side: int | None


def own_size(spec: InputSpec, height: int, width: int) -> tuple[int, int]:
    """The (H, W) in pixels a net sees for a ``height`` x ``width`` image, the default rule: ``spec.size`` when
    fixed, else the image's own size (shrunk, aspect kept, until its long side is at most ``spec.max_side``
    when one is given) floored to ``spec.multiple`` (at least one multiple)."""
    if spec.size is not None:
        return spec.size
    m = spec.multiple
    if spec.max_side is not None and max(height, width) > spec.max_side:
        scale = spec.max_side / max(height, width)
        height, width = round(height * scale), round(width * scale)
    return height - height % m or m, width - width % m or m


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
    input_size: (spec, height, width) -> the (H, W) in pixels the net sees (the family's sizing rule, its
    parameters from the row's ``[input]``). trace: (net, x) -> the forward call its ONNX release was exported
    with, x a 1 x 3 x h x w tensor (:mod:`mattekit.onnx_import` replays it to order the layers).
    step: recurrent families only: (net, x, state or None) -> (the net's outputs, the state for the next frame).
    as_maps: the selected output -> N x C x H x W. backends: the engines that may run it ("torch", "onnx").
    """

    name: str
    classes: dict[str, Callable[..., torch.nn.Module]]
    input_size: Callable[[InputSpec, int, int], tuple[int, int]] = own_size
    trace: Callable[[torch.nn.Module, torch.Tensor], object] = plain_call
    step: Callable[[torch.nn.Module, torch.Tensor, tuple | None], tuple[object, tuple]] | None = None
    as_maps: Callable[[torch.Tensor], torch.Tensor] = as_is
    backends: tuple[str, ...] = ("torch", "onnx")

    @property
    def plain(self) -> bool:
        """Every default the runtime reads: the own-size rule, maps as they are, no step, either backend."""
        return self.input_size is own_size and self.as_maps is as_is and self.step is None and len(self.backends) > 1

    def build(self, class_name: str, **kwargs) -> torch.nn.Module:
        """The module ``class_name`` of this family built with ``kwargs`` (ValueError for an unknown class)."""
        if class_name not in self.classes:
            raise ValueError(f"net family {self.name!r} has no class {class_name!r}; it has {', '.join(self.classes)}")
        return self.classes[class_name](**kwargs)
