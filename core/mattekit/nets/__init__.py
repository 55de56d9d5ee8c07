"""Plain torch.nn.Module architectures, one file per family.

No file I/O, no preprocessing, no device logic here. State-dict keys match the
official checkpoints so they load with ``strict=True``. ``build(spec, **kwargs)``
turns a catalog spec such as ``"u2net:U2NET"`` into a module; a family may be a package
(``"sam2:SAM2"`` with ``variant="hiera_t"``, ``"hiera_s"``, ``"hiera_b+"`` or ``"hiera_l"``).
"""
from __future__ import annotations

import importlib

import torch.nn as nn


def build(spec: str, **kwargs) -> nn.Module:
    """Instantiate ``"module:Class"`` from this package with ``kwargs``."""
    module_name, _, class_name = spec.partition(":")
    if not class_name:
        raise ValueError(f"net spec {spec!r} must look like 'module:Class'")
    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, class_name)(**kwargs)
