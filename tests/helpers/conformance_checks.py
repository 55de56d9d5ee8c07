"""What the conformance and engine tests compare with: a tensor's largest error against a golden array, asserted
within a tolerance, and parametrize values marked ``slow`` by name. (Test modules import them from here, not from
conftest.py: a folder's own conftest.py takes that module name.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch


def slow_params(values, slow) -> list:
    """``values`` for ``pytest.mark.parametrize``, those whose first item is in ``slow`` marked ``slow``."""

    def first(v):
        return v[0] if isinstance(v, tuple) else v

    return [
        pytest.param(*(v if isinstance(v, tuple) else (v,)), marks=pytest.mark.slow) if first(v) in slow else v
        for v in values
    ]


def assert_close(actual: torch.Tensor, expected, atol: float, what: str = "") -> float:
    """Assert max |actual - expected| <= atol; return the max error for reporting."""
    expected = torch.as_tensor(np.asarray(expected))
    assert tuple(actual.shape) == tuple(expected.shape), (
        f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    )
    err = (actual.detach().float() - expected.float()).abs().max().item()
    assert err <= atol, f"{what}: max abs error {err:.3g} > {atol:g}"
    return err
