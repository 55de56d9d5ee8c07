"""Where the finish runs: on the model's GPU for a photo large enough, else on the CPU cores (:func:`device_of`); the
finish's device steps there (:class:`OnDevice`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FINISH_ON_GPU_PIXELS = 1 << 20  # photos this large or larger are finished on the model's GPU


def device_of(predictor, image: np.ndarray):
    """The device where the finish's refinement, the edge matte's solve and the decontamination of ``image``
    (H x W x C) run (:func:`mattekit.finish.refine.refine_mask`, :func:`mattekit.finish.edge.alpha_from_mask`,
    :func:`mattekit.matting.estimate_foreground`):
    the one ``predictor``'s plan names for its finish (:attr:`mattekit.engines.plan.Plan.finish`: the model's GPU,
    an :class:`OnDevice`; a device value the plan holds itself, as it is), where ``image`` has at least
    :data:`FINISH_ON_GPU_PIXELS` (1 MP); None (the CPU cores' own path) for a smaller image, a plan that names none
    (a model on the CPU or Apple's MPS) and without a predictor. The evidence (H200, 16 cores, u2netp, 50 photos of
    0.15 MP): finishing on the GPU took 10.2 s beyond the unfinished run, the CPU's finish 5.0 s; a single 1 MP photo
    finished in 0.45 s on the GPU against 0.55 s on the CPU, 50 MP in 2.15 s against 3.50 s. A task's run asks it once
    per item (:meth:`mattekit.running.layout.RunLayout.device_for`) and passes the answer to the task's finish."""
    finish = getattr(getattr(predictor, "plan", None), "finish", "")
    if not finish or image.shape[0] * image.shape[1] < FINISH_ON_GPU_PIXELS:
        return None
    return OnDevice(finish) if isinstance(finish, str) else finish


@dataclass(frozen=True)
class OnDevice:
    """The finish's three device steps as torch operations on the device named ``name`` ("cuda:0"; the tests:
    "cpu"). Each gives its caller's answer, or None / False where the device's memory runs out (the caller then does
    the work on the CPU cores). Arrays as the steps' own modules take them."""

    name: str

    def refine_band(self, image, mask, grow: int, radius: int, eps: float, subsample: int) -> bool:
        """:func:`mattekit.finish.refine_device.refine_band_on` here: ``mask`` refined in place."""
        from .refine_device import refine_band_on

        return refine_band_on(self.torch(), image, mask, grow, radius, eps, subsample)

    def solve(self, image, fg, unknown, prior, weight, x0, eps: float, iterations: int):
        """:func:`mattekit.matting.solve_device.solve_on` here: the edge matte's alpha, h x w float32."""
        from ..matting.solve_device import solve_on

        return solve_on(self.torch(), image, fg, unknown, prior, weight, x0, eps, iterations)

    def foreground(self, image, alpha, *, out=None, **sweeps):
        """:func:`mattekit.matting.foreground_device.estimate_foreground_on` here: H x W x 3 colours."""
        from ..matting.foreground_device import estimate_foreground_on

        return estimate_foreground_on(self.torch(), image, alpha, out=out, **sweeps)

    def torch(self):
        """This device as a torch.device (imports torch)."""
        import torch

        return torch.device(self.name)
