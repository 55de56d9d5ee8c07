"""`mattekit bench shadow`'s composites (:mod:`mattekit_bench.shadow_scenes`): the same for the same subject, kind
and draw; ``--draws`` makes other composites of the same subjects, in the half their subject belongs to."""

from __future__ import annotations

import numpy as np
import pytest

from mattekit_bench import shadow as bench

pytestmark = pytest.mark.slow  # (builds every composite of a half: ~30 s on a shared 2-core machine)


def test_more_draws_are_other_composites_of_the_same_subjects_and_draw_0_is_unchanged(shared):
    one = bench.scenes(shared / "data", "tuning", ("floor",))
    three = bench.scenes(shared / "data", "tuning", ("floor",), draws=3)
    assert len(three) == 3 * len(one) and {h for h, _ in three} == {"tuning"}
    first = three[0][1]
    assert first.name == one[0][1].name and np.array_equal(first.photo, one[0][1].photo), "draw 0: as before"
    others = [s for _, s in three[1:3]]
    assert [s.name for s in others] == [first.name + "/1", first.name + "/2"]
    assert all(not np.array_equal(s.shadow, first.shadow) for s in others), "another shadow drawn"
