"""A GPU where the tests have none: the plan a CUDA machine gets (:func:`planned_on_a_gpu`), and the bench's simulated
GPU installed in this process's model loading (:func:`simulated_gpu`), both undone with the test; the devices the
finish and roto's filter are handed (:func:`recorded_devices`)."""

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
    simulated GPU of ``ms`` milliseconds an image, as ``python -m mattekit_bench.simulated`` runs a command; its
    figures start afresh. Returns the double's module."""
    from mattekit import runtime
    from mattekit_bench import simulated

    monkeypatch.setattr(runtime, "decide", simulated.deciding(ms))
    monkeypatch.setattr(runtime, "Predictor", simulated.predictor)
    simulated.reset()
    return simulated


def recorded_devices(monkeypatch) -> tuple[list, list]:
    """(finishes, filters): the ``device`` each cut-out's finish (:func:`mattekit.finish.cutout.cut_out`) and each
    running roto temporal filter (:class:`mattekit.roto.ordered.OrderedSmoother`) is handed from now on, in order,
    the work itself done as it is."""
    from mattekit.finish import cutout
    from mattekit.roto import ordered

    finishes, filters = [], []
    cut_out = cutout.cut_out
    monkeypatch.setattr(cutout, "cut_out", lambda *a, **k: finishes.append(k.get("device")) or cut_out(*a, **k))

    class Recorded(ordered.OrderedSmoother):
        def __init__(self, *a, **k):
            if "device" in k:  # the filter that runs (frames_read's schedule, which filters nothing, gives none)
                filters.append(k["device"])
            super().__init__(*a, **k)

    monkeypatch.setattr(ordered, "OrderedSmoother", Recorded)
    return finishes, filters
