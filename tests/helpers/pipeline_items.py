"""Items for the pipeline tests: item i read as a 1 x 1 x 2 x 2 tensor of i (its context names it), and the doubling
that stands in for a network."""

from __future__ import annotations

import torch


def _read(i):
    return torch.full((1, 1, 2, 2), float(i)), {"item": i}


def _double(x):
    return x * 2
