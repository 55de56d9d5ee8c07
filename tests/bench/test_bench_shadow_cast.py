"""The second shadow generator (:mod:`mattekit_bench.shadow_cast`, ``bench shadow --generator cast``): shadows cast
by a point light from the subject's base, on sweeps and on textured photo floors."""

from __future__ import annotations

import numpy as np

from mattekit_bench import shadow_cast


def test_a_cast_shadow_starts_at_the_base_and_is_the_same_for_the_same_draw():
    alpha = np.zeros((300, 400), np.float32)
    alpha[100:200, 190:210] = 1.0  # a pole 100 px tall standing on row 199
    cast = shadow_cast.cast(alpha, np.random.default_rng(3))
    found = (cast > 0.1) & (alpha < 0.01)
    ys, _ = np.nonzero(found)
    assert found.sum() > 300 and np.abs(ys - 199).min() <= 3, "a shadow of some size, from the base"
    assert np.array_equal(cast, shadow_cast.cast(alpha, np.random.default_rng(3)))
    assert not shadow_cast.cast(np.zeros_like(alpha), np.random.default_rng(3)).any(), "no subject, no shadow"
