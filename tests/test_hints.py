"""Hints: a box, include / exclude points and a hint mask restrict the subject (mattekit.hints)."""
from __future__ import annotations

import numpy as np
import pytest

from mattekit import hints
from mattekit.errors import InputError


def _two_blobs() -> np.ndarray:
    mask = np.zeros((60, 100), np.float32)
    mask[10:40, 5:35] = 1.0
    mask[20:50, 60:95] = 1.0
    return mask


def test_parsing_and_checks_speak_in_one_sentence():
    assert hints.parse_box("1,2,30,40.4") == (1, 2, 30, 40)
    assert hints.parse_points("3,4; 5,6;") == ((3, 4), (5, 6))
    for bad, words in (("1,2,3", "not x0,y0,x1,y1"), ("5,5,5,9", "empty"), ("a,b,c,d", "not x0")):
        with pytest.raises(InputError, match=words):
            hints.parse_box(bad)
    with pytest.raises(InputError, match="outside the 100x60 image"):
        hints.make(60, 100, box="200,0,300,50")
    with pytest.raises(InputError, match="point 100,5 lies outside"):
        hints.make(60, 100, include="100,5")
    with pytest.raises(InputError, match="same size"):
        hints.make(60, 100, mask=np.ones((10, 10), np.float32))
    with pytest.raises(InputError, match="selects nothing"):
        hints.make(60, 100, mask=np.zeros((60, 100), np.float32))
    assert hints.make(60, 100, box="-5,-5,50,500").box == (0, 0, 50, 60)
    assert not hints.make(60, 100)


def test_box_keeps_only_what_lies_inside_and_region_grows_it():
    hint = hints.make(60, 100, box="50,15,98,55")
    kept = hints.constrain(_two_blobs(), hint)
    assert kept[:, :50].max() == 0 and kept[20:50, 60:95].min() == 1
    top, left, bottom, right = hints.region(hint, 60, 100)
    assert (top, left, bottom, right) == (7, 42, 60, 100)
    assert hints.region(hints.make(60, 100, include="3,3"), 60, 100) == (0, 0, 60, 100)


def test_points_pick_and_drop_parts_with_their_soft_edge():
    mask = _two_blobs()
    mask[10:40, 35] = 0.3  # a soft fringe of the left blob
    only_right = hints.constrain(mask, hints.make(60, 100, include="70,30"))
    assert only_right[:, :50].max() == 0 and only_right[20:50, 60:95].min() == 1
    no_left = hints.constrain(mask, hints.make(60, 100, exclude="10,20"))
    np.testing.assert_array_equal(no_left, only_right)
    both = hints.constrain(mask, hints.make(60, 100, include="10,20;70,30"))
    np.testing.assert_array_equal(both, mask)


def test_hint_mask_allows_its_neighbourhood_only():
    selection = np.zeros((60, 100), np.float32)
    selection[12:38, 8:33] = 1.0  # a little inside the left blob
    kept = hints.constrain(_two_blobs(), hints.make(60, 100, mask=selection))
    assert kept[10:40, 5:35].min() == 1 and kept[:, 60:].max() == 0
