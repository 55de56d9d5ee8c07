"""The temporal filter carries a shadow matte beside the matte (mattekit.roto.ordered, .temporal,
.temporal_device): the flicker of a per-frame shadow estimate goes, a still shadow stays where it is, the mattes are
the same bytes as without it, and a chunk's shadows are the whole run's."""

from __future__ import annotations

import numpy as np
import pytest

from mattekit.roto import ordered, temporal

FRAMES = 12
SIZE = (96, 160)  # h, w
REGION = (slice(60, 80), slice(70, 130))  # the shadow, right of the subject's feet


def _still_shot():
    """A still textured floor with a subject, its matte, and a shadow matte that flickers as a per-frame estimate
    does on a noisy floor (its strength and a few blobs change from frame to frame): (plates, mattes, shadows,
    the true shadow), each {frame: float32}."""
    rng = np.random.default_rng(8)
    floor = 0.5 + 0.2 * rng.random((*SIZE, 3)).astype(np.float32)
    truth = np.zeros(SIZE, np.float32)
    truth[REGION] = 0.4
    subject = np.zeros(SIZE, np.float32)
    subject[20:80, 40:70] = 1.0
    plates, mattes, shadows = {}, {}, {}
    for t in range(FRAMES):
        plate = floor * (1 - truth[..., None]) + rng.normal(0, 0.01, (*SIZE, 3)).astype(np.float32)
        plate[subject > 0] = 0.9
        cast = truth * (1 + 0.3 * rng.standard_normal()) + rng.normal(0, 0.05, SIZE) * (truth > 0)
        for _ in range(3):  # specks of floor noise taken for shadow in this frame only
            y, x = rng.integers(0, SIZE[0] - 4), rng.integers(80, SIZE[1] - 4)
            cast[y : y + 4, x : x + 4] = 0.2
        plates[t], mattes[t], shadows[t] = np.clip(plate, 0, 1), subject.copy(), np.clip(cast, 0, 1).astype(np.float32)
    return plates, mattes, shadows, truth


def _run(plates, mattes, shadows, wanted, device=None):
    """{frame: (matte, shadow)} of the filter (radius 2) over ``wanted`` (shadows None: the mattes alone)."""
    out = {}
    stage = ordered.OrderedSmoother(
        temporal.TemporalOptions(radius=2),
        list(plates),
        wanted,
        lambda f, _, a, s: out.__setitem__(f, (a, s)),
        device=device,
    )
    for f in stage.frames:
        stage.push(f, None, mattes[f], kept=stage.keep(plates[f], mattes[f], None if shadows is None else shadows[f]))
    return out


def _flicker(series: list[np.ndarray]) -> float:
    """Mean |difference| between consecutive frames' shadow mattes in the shadow's region."""
    return float(np.mean([np.abs(b - a)[REGION].mean() for a, b in zip(series, series[1:])]))


def test_the_shadow_is_filtered_beside_the_matte_steadier_and_where_it_was():
    plates, mattes, shadows, truth = _still_shot()
    frames = list(plates)
    both = _run(plates, mattes, shadows, frames)
    alone = _run(plates, mattes, None, frames)
    for f in frames:  # the mattes do not change with the shadow beside them
        assert np.array_equal(both[f][0], alone[f][0]) and alone[f][1] is None
    before = _flicker([shadows[f] for f in frames])
    after = _flicker([both[f][1] for f in frames])
    assert after < 0.5 * before, (before, after)
    still = float(np.mean([both[f][1][REGION].mean() for f in frames]))
    given = float(np.mean([shadows[f][REGION].mean() for f in frames]))
    assert abs(still - given) < 0.02, (still, given)  # no smearing: the same darkness where the shadow is
    outside = np.ones(SIZE, bool)
    outside[55:85, 65:135] = False
    specks = float(np.mean([shadows[f][outside].mean() for f in frames]))
    assert np.mean([both[f][1][outside].mean() for f in frames]) < 0.5 * specks, "one frame's specks are dropped"


def test_a_chunks_shadows_are_the_whole_runs():
    plates, mattes, shadows, _ = _still_shot()
    whole = _run(plates, mattes, shadows, list(plates))
    for chunk in ([0, 1, 2], [5, 6, 7], [10, 11]):
        part = _run(plates, mattes, shadows, chunk)
        for f in chunk:
            assert np.array_equal(part[f][0], whole[f][0]) and np.array_equal(part[f][1], whole[f][1]), f


def test_without_a_filter_the_shadow_passes_through():
    plates, mattes, shadows, _ = _still_shot()
    out = {}
    stage = ordered.OrderedSmoother(None, list(plates), [3, 4], lambda f, _, a, s: out.__setitem__(f, (a, s)))
    for f in stage.frames:
        stage.push(f, None, mattes[f], kept=stage.keep(plates[f], mattes[f], shadows[f]))
    assert sorted(out) == [3, 4] and all(out[f][1] is shadows[f] and out[f][0] is mattes[f] for f in out)


def test_the_devices_shadow_is_the_cpus():
    torch = pytest.importorskip("torch")
    plates, mattes, shadows, _ = _still_shot()
    frames = list(plates)
    cpu = _run(plates, mattes, shadows, frames)
    device = _run(plates, mattes, shadows, frames, device=torch.device("cpu"))
    for f in frames:
        assert np.abs(device[f][1] - cpu[f][1]).max() < 0.02, f
        assert np.abs(device[f][0] - cpu[f][0]).max() < 0.02, f
