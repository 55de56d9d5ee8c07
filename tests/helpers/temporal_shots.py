"""A real shot for the temporal filter's tests: DAVIS blackswan with blobs that come and go as a per-frame network's
do, and the filter (radius 2) run over it on the CPU or a torch device."""

from __future__ import annotations

import cv2
import numpy as np

from mattekit.roto import ordered, temporal


def _trembling_shot(shared, frames: int = 10, size: tuple[int, int] = (427, 240)):
    """DAVIS blackswan (854 x 480) at ``size`` (w, h): its plates, and its ground-truth masks softened (the truth)
    and with blobs that come and go from frame to frame as a per-frame network's do (something for the filter to
    remove): (plates, mattes, truth), each {frame: float32 [0,1]}."""
    rng = np.random.default_rng(3)
    plates, mattes, truth = {}, {}, {}
    blob = max(2, size[0] // 100)
    for t in range(frames):
        plate = cv2.imread(str(shared / f"data/davis/im/blackswan/{t:05d}.jpg"))[..., ::-1]
        mask = cv2.imread(str(shared / f"data/davis/gt/blackswan/{t:05d}.png"), cv2.IMREAD_GRAYSCALE)
        plates[t] = cv2.resize(plate, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        truth[t] = cv2.GaussianBlur(cv2.resize((mask > 127).astype(np.float32), size), (0, 0), size[0] / 280)
        mattes[t] = matte = truth[t].copy()
        for _ in range(6):
            y, x = rng.integers(2 * blob, size[1] - 2 * blob), rng.integers(2 * blob, size[0] - 2 * blob)
            matte[y - blob : y + blob, x - blob : x + blob] = 1.0 - matte[y, x]
    return plates, mattes, truth


def _filtered(plates, mattes, device=None):
    """The temporal filter (radius 2) over the shot, on ``device`` (None: the CPU filter): ({frame: matte}, its
    smoother)."""
    out, frames = {}, list(plates)
    stage = ordered.OrderedSmoother(
        temporal.TemporalOptions(radius=2), frames, frames, lambda f, _, a, __: out.__setitem__(f, a), device=device
    )
    for f in stage.frames:
        stage.push(f, plates[f], mattes[f])
    return out, stage.smoother
