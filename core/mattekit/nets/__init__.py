"""Plain torch.nn.Module architectures, one module or package per family, and the registry of families.

No file I/O, no preprocessing, no device logic here. State-dict keys match the official checkpoints so they
load with ``strict=True``. Each family module declares a ``FAMILY`` (:class:`Family`: its classes,
ONNX trace call, recurrent step, output maps). :func:`build` turns a catalog spec such as
``"u2net:U2NET"`` into a module. Importing this package loads no torch (the catalog checks its rows against the
registry without loading a network); :func:`family` imports a family's module on first use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch
    import torch.nn as nn


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


# The registry: catalog ``net`` prefix -> the module declaring its FAMILY (a Family once loaded or registered).
_FAMILIES: dict[str, str | Family] = {
    name: f"{__name__}.{name}"
    for name in (
        "u2net",
        "isnet",
        "csnet",
        "birefnet",
        "sinet",
        "extremec3",
        "modnet",
        "rvm",
        "depth_anything",
        "sam2",
        "srvgg",
        "rrdbnet",
        "rfdn",
    )
}


# Families whose descriptor is plain (:attr:`Family.plain`): what the runtime needs of them is known
# without importing their module, which imports torch, so a run on ONNX Runtime alone never imports it
# (tests/unit/engines/test_without_torch.py checks each against its FAMILY).
PLAIN = frozenset(
    {"u2net", "isnet", "csnet", "birefnet", "sinet", "extremec3", "modnet", "sam2", "srvgg", "rrdbnet", "rfdn"}
)


def plain(name: str) -> bool:
    """Whether the family of ``name`` (a catalog ``net`` prefix or a whole spec) is plain, without importing its
    module where it is not loaded yet (:data:`PLAIN`); a loaded or registered family answers for itself."""
    name = name.partition(":")[0]
    found = _FAMILIES.get(name)
    return found.plain if isinstance(found, Family) else name in PLAIN


def names() -> tuple[str, ...]:
    """The registered family names (the catalog's ``net`` prefixes)."""
    return tuple(_FAMILIES)


def register(family: Family) -> None:
    """Add ``family`` to the registry (a net defined outside this package; replaces one of the same name)."""
    _FAMILIES[family.name] = family


def family(name: str) -> Family:
    """The family called ``name`` (a catalog ``net`` prefix, or a whole ``"prefix:Class"`` spec); ValueError
    when none is registered."""
    name = name.partition(":")[0]
    found = _FAMILIES.get(name)
    if found is None:
        raise ValueError(f"no net family {name!r} is registered; known: {', '.join(_FAMILIES)}")
    if isinstance(found, str):
        found = _FAMILIES[name] = importlib.import_module(found).FAMILY
    return found


def build(spec: str, **kwargs) -> nn.Module:
    """Instantiate the catalog spec ``"family:Class"`` with ``kwargs``."""
    family_name, _, class_name = spec.partition(":")
    if not class_name:
        raise ValueError(f"net spec {spec!r} must look like 'family:Class'")
    return family(family_name).build(class_name, **kwargs)
