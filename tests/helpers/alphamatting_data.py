"""The alphamatting.com set of the shared data (``data/alphamatting``), as the matting tests read it."""

from __future__ import annotations

from mattekit import io
from mattekit.matting import trimap as trimaps


def alphamatting(shared, name: str, trimap_set: str = "Trimap1"):
    root = shared / "data/alphamatting"
    image = io.read_image(root / "im" / name).pixels[..., :3]
    gt = io.read_image(root / "gt" / name).pixels[..., 0]
    trimap = trimaps.normalise(io.read_image(root / "trimap" / trimap_set / name).pixels)
    return image, trimap, gt
