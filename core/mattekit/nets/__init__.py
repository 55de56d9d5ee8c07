"""Plain torch.nn.Module architectures, one module or package per family, and the registry of families.

No file I/O, no preprocessing, no device logic here. State-dict keys match the official checkpoints so they
load with ``strict=True``. Each family module declares a ``FAMILY`` (:class:`.descriptor.Family`: its classes,
ONNX trace call, recurrent step, output maps). :func:`build` turns a catalog spec such as
``"u2net:U2NET"`` into a module. Importing this package loads no torch; :func:`family` imports a family's
module on first use.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .descriptor import Family

if TYPE_CHECKING:
    import torch.nn as nn

# The registry: catalog ``net`` prefix -> the module declaring its FAMILY (a Family once loaded or registered).
_FAMILIES: dict[str, str | Family] = {name: f"{__name__}.{name}" for name in (
    "u2net", "isnet", "csnet", "birefnet", "sinet", "extremec3", "modnet", "rvm", "depth_anything", "sam2",
    "srvgg", "rrdbnet", "rfdn")}


# Families whose descriptor is plain (:attr:`.descriptor.Family.plain`): what the runtime needs of them is known
# without importing their module, which imports torch, so a run on ONNX Runtime alone never imports it
# (tests/unit/engines/test_without_torch.py checks each against its FAMILY).
PLAIN = frozenset({"u2net", "isnet", "csnet", "birefnet", "sinet", "extremec3", "modnet", "sam2", "srvgg", "rrdbnet",
                   "rfdn"})


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
