"""What tests/cuda's modules share: their marks (``cuda``, and skipped with the reason where torch sees no CUDA GPU,
as in CI) and the grabcut50 photos they run."""

from __future__ import annotations

import pytest
import torch

CUDA_ONLY = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here (CI has none)"),
]


def _grabcut(shared, n):
    return sorted((shared / "data" / "grabcut50" / "im").iterdir())[:n]
