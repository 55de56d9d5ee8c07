"""The temporal filter's full-resolution work on a torch device (:class:`DeviceSmoother`), for a model that runs
on a GPU: the frame's and its neighbours' mattes stay there, and only the filtered matte comes back to the host.

What is made at the flow's size (a long side of ``flow_side`` px) is made as :class:`~mattekit.roto.temporal.Smoother`
makes it, on the CPU: OpenCV's DIS flow between adjacent frames, its chaining, and each neighbour's plate agreement.
At the frame's size, where the CPU filter works on the blocks where mattes vary (:mod:`mattekit.roto.flow_blocks`),
the device works on every pixel at once: the flow and the agreement are enlarged bilinearly (pixel centres aligned),
the neighbours' mattes sampled along the flow with ``grid_sample`` (bilinear, edges repeated), then the median and the
weighted mean of :meth:`~mattekit.roto.temporal.Smoother.matte`. The result differs from the CPU filter's by the
interpolation's rounding only (OpenCV's remap weighs in 1/32 px steps, ``grid_sample`` exactly).
"""

from __future__ import annotations

import numpy as np

from .temporal import Smoother, median


def device_for(predictor):
    """Where roto's temporal filter does its full-resolution work for the frames of ``predictor``'s model: the torch
    device its plan names (:attr:`mattekit.engines.plan.Plan.temporal`: the model's GPU), whatever the frame's size;
    None (the CPU's filter) for a plan that names none (a model elsewhere), or without a predictor. Unlike the finish
    (1 MP and up: :func:`mattekit.finish.device.device_of`), the filter costs the CPU much at any size: 90-130 ms a
    frame at 854x480 on the build machine's 2 cores (64 ms of it in the pushing thread, with the plate-only work
    ahead), where the device's passes are about 150 kernels a frame (counted on torch's CPU device) and the flow's
    work stays the CPU's either way. Not yet timed on a GPU at that size: tests/cuda prints both."""
    temporal = getattr(getattr(predictor, "plan", None), "temporal", "")
    if not temporal:
        return None
    import torch

    return torch.device(temporal)


class DeviceSmoother(Smoother):
    """:class:`~mattekit.roto.temporal.Smoother` whose passes run on ``device`` (a torch device), every pixel at
    once; :meth:`smooth` returns the host's float32 H x W matte in [0,1] as the CPU filter does."""

    def __init__(self, options, load, frames, device):
        super().__init__(options, load, frames)
        self.device = device
        self.reads_at: dict[tuple[int, int], tuple] = {}  # (a, b) -> (grid_sample's grid, agreement) at a's size

    def smooth(self, frame: int) -> tuple[np.ndarray, np.ndarray | None]:
        alpha, cast = super().smooth(frame)
        return alpha.cpu().numpy(), None if cast is None else cast.cpu().numpy()

    def ahead(self, a: int, b: int) -> None:
        """The flow a -> b and its agreement (the device reads no rectangles), unless the filter is past them."""
        if not self.forgotten(a, b):
            self.pair(a, b)

    def full_size(self, a: int, b: int, height: int, width: int) -> tuple:
        """The flow a -> b and the agreement of b's warped plate with a's, enlarged to the H x W frame on the device:
        (grid_sample's sampling grid, 1 x H x W x 2 in [-1, 1] with corners aligned; agreement, H x W in [0,1])."""
        if (a, b) not in self.reads_at:
            import torch
            import torch.nn.functional as F

            field, agreement = self.pair(a, b)
            fh, fw = agreement.shape
            small = torch.from_numpy(np.dstack([field, agreement])).to(self.device).permute(2, 0, 1)[None]
            big = F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)[0]
            xs = torch.arange(width, device=self.device, dtype=torch.float32)
            ys = torch.arange(height, device=self.device, dtype=torch.float32)[:, None]
            x = (big[0] * (width / fw) + xs) * (2 / max(width - 1, 1)) - 1
            y = (big[1] * (height / fh) + ys) * (2 / max(height - 1, 1)) - 1
            self.reads_at[a, b] = (torch.stack([x, y], dim=-1)[None], big[2])
        return self.reads_at[a, b]

    def matte(self, level: int, frame: int, plane: str = "alpha"):
        """:meth:`Smoother.matte` as an H x W float32 tensor on the device, computed on every pixel."""
        import torch
        import torch.nn.functional as F

        if (level, frame, plane) in self.averaged:
            return self.averaged[level, frame, plane]
        if level == 0:
            result = torch.from_numpy(getattr(self.state(frame), plane)).to(self.device)
        else:
            own = self.matte(level - 1, frame, plane)
            values, weights = [own], [torch.ones_like(own)]
            for other in self.neighbours(frame):
                grid, agreement = self.full_size(frame, other, *own.shape)
                warped = F.grid_sample(
                    self.matte(level - 1, other, plane)[None, None],
                    grid,
                    mode="bilinear",
                    padding_mode="border",
                    align_corners=True,
                )[0, 0]
                if level == 1:
                    values.append(torch.where(agreement > 0.5, warped, own))
                else:
                    decay = float(self.options.decay ** abs(other - frame))
                    values.append(warped * agreement * decay)
                    weights.append(agreement * decay)
            combined = (
                median(values, torch.minimum, torch.maximum)
                if level == 1
                else sum(values[1:], values[0]) / sum(weights[1:], weights[0])
            )
            result = combined.clamp(0.0, 1.0)
        self.averaged[level, frame, plane] = result
        return result

    def _forget(self, frame: int) -> None:
        super()._forget(frame)
        for key in [k for k in self.reads_at if k not in self.pairs]:
            del self.reads_at[key]
