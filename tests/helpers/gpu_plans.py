"""A GPU where the tests have none: the plan a CUDA machine gets (:func:`planned_on_a_gpu`), and the bench's simulated
GPU installed in this process's model loading (:func:`simulated_gpu`), both undone with the test."""

from __future__ import annotations


def planned_on_a_gpu(monkeypatch) -> None:
    """mattekit.engines.plan.decide plans ``auto`` and ``cuda`` as on a machine whose torch uses a CUDA GPU (the
    device policy answers as there); nothing runs on it."""
    import torch

    from mattekit.engines import policy

    monkeypatch.setattr(policy, "gpu_possible", lambda: True)
    monkeypatch.setattr(
        policy, "select_device", lambda name="auto": torch.device("cuda" if name in (None, "auto") else name)
    )


def simulated_gpu(monkeypatch, ms: float = 0.0):
    """Models this process loads (mattekit.runtime's ModelCache, the command line's too) planned and run on the bench's
    simulated GPU of ``ms`` milliseconds an image, as ``python -m mattekit.bench.simulated`` runs a command; its
    figures start afresh. Returns the double's module."""
    from mattekit import runtime
    from mattekit.bench import simulated

    monkeypatch.setattr(runtime, "decide", simulated.deciding(ms))
    monkeypatch.setattr(runtime, "Predictor", simulated.predictor)
    simulated.reset()
    return simulated
