"""Hints: a box, include / exclude points and a hint mask restrict the subject (mattekit.subject.hints)."""

from __future__ import annotations

import numpy as np
import pytest

from mattekit.subject import hint_text, hints
from mattekit.subject.colour_model import colour_refine
from mattekit.errors import InputError


def _make(height, width, box=None, include=None, exclude=None, mask=None):
    """:func:`hints.make` from the texts a user types (parsed as the options parse them)."""
    return hints.make(
        height,
        width,
        None if box is None else hint_text.parse_box(box),
        hint_text.parse_points(include),
        hint_text.parse_points(exclude),
        mask,
    )


def _two_blobs() -> np.ndarray:
    mask = np.zeros((60, 100), np.float32)
    mask[10:40, 5:35] = 1.0
    mask[20:50, 60:95] = 1.0
    return mask


def test_parsing_and_checks_speak_in_one_sentence():
    assert hint_text.parse_box("1,2,30,40.4") == (1, 2, 30, 40)
    assert hint_text.parse_points("3,4; 5,6;") == ((3, 4), (5, 6))
    for bad, words in (("1,2,3", "not x0,y0,x1,y1"), ("5,5,5,9", "empty"), ("a,b,c,d", "not x0")):
        with pytest.raises(InputError, match=words):
            hint_text.parse_box(bad)
    with pytest.raises(InputError, match="outside the 100x60 image"):
        _make(60, 100, box="200,0,300,50")
    with pytest.raises(InputError, match="point 100,5 lies outside"):
        _make(60, 100, include="100,5")
    with pytest.raises(InputError, match="same size"):
        _make(60, 100, mask=np.ones((10, 10), np.float32))
    with pytest.raises(InputError, match="selects nothing"):
        _make(60, 100, mask=np.zeros((60, 100), np.float32))
    assert _make(60, 100, box="-5,-5,50,500").box == (0, 0, 50, 60)
    assert not _make(60, 100)


def test_a_box_or_point_in_fractions_of_the_image_is_said_to_be_one():
    """Issue 70: ``--box 0.2,0,0.4,50`` rounded to 0,0,0,50 and was refused as "x1 must be greater than x0"; the
    real problem is values below one pixel, read as fractions of the image's size."""
    with pytest.raises(InputError) as said:
        hint_text.parse_box("0.2,0,0.4,50")
    assert str(said.value) == (
        "The box '0.2,0,0.4,50' has 0.2 and 0.4, which would round to pixel 0 or 1: it takes "
        "pixels of the image, not fractions of its size (x0,y0,x1,y1 in pixels, e.g. "
        "40,30,400,380)."
    )
    with pytest.raises(InputError, match=r"^The point '0.5,0.5' has 0.5 and 0.5, which would round"):
        hint_text.parse_points("0.5,0.5")
    assert hint_text.parse_box("0,0,1,50.6") == (0, 0, 1, 51) and hint_text.parse_points("0,1") == ((0, 1),)


def test_box_keeps_only_what_lies_inside_and_region_grows_it():
    hint = _make(60, 100, box="50,15,98,55")
    kept = hints.constrain(_two_blobs(), hint)
    assert kept[:, :50].max() == 0 and kept[20:50, 60:95].min() == 1
    assert hints.region(hint, 60, 100) == hints.Box(42, 7, 100, 60)
    assert hints.region(_make(60, 100, include="3,3"), 60, 100) == hints.Box(0, 0, 100, 60)


def test_points_pick_and_drop_parts_with_their_soft_edge():
    mask = _two_blobs()
    mask[10:40, 35] = 0.3  # a soft fringe of the left blob
    only_right = hints.constrain(mask, _make(60, 100, include="70,30"))
    assert only_right[:, :50].max() == 0 and only_right[20:50, 60:95].min() == 1
    no_left = hints.constrain(mask, _make(60, 100, exclude="10,20"))
    np.testing.assert_array_equal(no_left, only_right)
    both = hints.constrain(mask, _make(60, 100, include="10,20;70,30"))
    np.testing.assert_array_equal(both, mask)


def test_hint_mask_allows_its_neighbourhood_only():
    selection = np.zeros((60, 100), np.float32)
    selection[12:38, 8:33] = 1.0  # a little inside the left blob
    kept = hints.constrain(_two_blobs(), _make(60, 100, mask=selection))
    assert kept[10:40, 5:35].min() == 1 and kept[:, 60:].max() == 0


def test_region_grows_the_hint_and_within_shifts_it():
    hint = _make(60, 100, box="40,20,60,30")  # 20 x 10 -> grown by 8 px a side -> 36 x 26
    assert hints.region(hint, 60, 100) == hints.Box(32, 12, 68, 38)
    assert hints.region(_make(60, 100, box="2,50,30,58"), 60, 100) == hints.Box(0, 42, 38, 60)  # clipped to the image
    inner = hints.within(_make(60, 100, box="40,20,60,30", include="45,25", exclude="1,1"), hints.Box(32, 12, 68, 38))
    assert inner.box == (8, 8, 28, 18) and inner.include == ((13, 13),) and inner.exclude == ()


def test_every_rectangle_is_a_box_x0_y0_x1_y1():
    """Issue 82: hints mixed boxes (x0, y0, x1, y1) with regions (top, left, bottom, right), both bare tuples. Every
    rectangle is a :class:`hints.Box` now, the region the model answers included, read from a mask once
    (:meth:`hints.Box.around`); four bare numbers are refused where a hint or a hinted region is made."""
    from mattekit.roto import tracking
    from mattekit.subject import prompting

    selection = np.zeros((60, 100), np.float32)
    selection[12:38, 8:33] = 1.0  # rows 12..37, columns 8..32
    assert hints.Box.around(selection) == hints.Box(8, 12, 33, 38) == tracking.box_of(selection)
    assert hints.Box.around(np.zeros((4, 4), np.float32)) is None
    region = hints.region(_make(60, 100, mask=selection), 60, 100)
    assert isinstance(region, hints.Box) and region == hints.Box(0, 4, 41, 46)  # grown 8 px a side, clipped
    assert selection[region.slices].shape == (region.height, region.width) == (42, 41)
    assert prompting.prompts_of(_make(60, 100, box="40,20,60,30", mask=selection)).box == hints.Box(8, 12, 60, 38)
    assert hints.around(_make(60, 100, include="50,30"), 60, 100, share=0.2).box == hints.Box(40, 24, 61, 37)
    inner = hints.within(_make(60, 100, box="40,20,60,30", include="45,25"), hints.Box(32, 12, 68, 38))
    assert isinstance(inner.box, hints.Box) and isinstance(inner.include[0], hints.Point)
    for bare in ((0, 0, 60, 100), [8, 12, 33, 38]):
        with pytest.raises(TypeError, match="is a Box"):
            hints.Hint(box=bare)
        with pytest.raises(TypeError, match="is a Box"):
            hints.Hinted(hints.Hint(mask=selection), bare)


def _two_colours() -> tuple[np.ndarray, np.ndarray]:
    """A red disc on a blue-green background, 80 x 80, and its true mask."""
    yy, xx = np.mgrid[:80, :80]
    truth = ((yy - 40) ** 2 + (xx - 40) ** 2 < 20**2).astype(np.float32)
    image = np.where(truth[..., None] > 0, [0.85, 0.15, 0.1], [0.1, 0.5, 0.6]).astype(np.float32)
    image += np.random.default_rng(0).normal(0, 0.03, image.shape).astype(np.float32)
    return np.clip(image, 0, 1), truth


def test_colour_refine_decides_the_unsure_pixels_by_colour():
    image, truth = _two_colours()
    unsure = np.full_like(truth, 0.45)  # the network hesitates over a wide ring around the disc
    unsure[truth > 0] = 0.95
    unsure[np.hypot(*np.mgrid[-40:40, -40:40]) > 32] = 0.02
    hint = _make(80, 80, box="5,5,75,75")
    refined = colour_refine(image, unsure, hint)
    assert ((refined >= 0.5) == (truth > 0)).mean() > 0.99
    assert refined[truth > 0].min() == pytest.approx(0.95)  # where the model was sure, its value stays


def test_an_include_point_where_the_model_saw_nothing_grows_the_subject_by_colour():
    image, truth = _two_colours()
    missed = np.zeros_like(truth)  # the model found nothing at all
    refined = colour_refine(image, missed, _make(80, 80, include="40,40"))
    kept = hints.constrain(refined, _make(80, 80, include="40,40"))
    assert ((kept >= 0.5) == (truth > 0)).mean() > 0.98


def test_an_exclude_point_splits_a_part_that_also_holds_an_include_point():
    image, truth = _two_colours()
    image[:, 60:] = [0.9, 0.9, 0.2]  # a yellow band on the right, which the model took for the subject too
    mask = truth.copy()
    mask[25:55, 45:80] = 0.8  # the model's subject runs from the disc into the band
    hint = _make(80, 80, include="40,40", exclude="70,40")
    kept = hints.constrain(colour_refine(image, mask, hint), hint)
    assert kept[:, 62:].max() < 0.5 and (kept[truth > 0] >= 0.5).mean() > 0.98


def test_an_include_point_on_what_the_model_missed_drops_none_of_its_parts():
    from mattekit.subject import answer

    image = np.zeros((60, 100, 3), np.float32)
    prediction = _two_blobs()
    on_a_part = _make(60, 100, include="70,30")
    missed = _make(60, 100, include="45,5")  # between the blobs: the model saw background there
    picked = answer.hinted_mask(image, prediction, False, hints.Hinted(on_a_part, hints.Box(0, 0, 100, 60)))
    kept = answer.hinted_mask(image, prediction, False, hints.Hinted(missed, hints.Box(0, 0, 100, 60)))
    assert picked[:, :50].max() == 0 and picked[20:50, 60:95].min() == 1
    np.testing.assert_array_equal(kept, prediction)


def test_the_whole_images_answer_joins_the_boxs_answer_when_its_subject_is_in_the_box():
    """with_plain_answer: the region's answer (a body) joined, pixel by pixel the larger value, with the whole
    image's answer inside the box (a tail the region cut off, a part the region lost, their soft edges), not outside
    it nor at an exclude point's part; nothing when less than 95 % of the whole image's subject lies in the box."""
    boxed = np.zeros((60, 100), np.float32)
    boxed[20:40, 30:60] = 0.9  # the body, as the model saw the box's region
    plain = np.zeros_like(boxed)
    plain[20:40, 30:60] = 0.8  # the body, less sure on the whole image: the region's 0.9 stays
    plain[5:20, 40:44] = 0.7  # a tail reaching the box's top edge, which the region's answer cut off
    plain[10:20, 44] = 0.3  # its soft edge
    plain[45:50, 70:80] = 1.0  # a part the region's answer lost
    plain[3, 40:44] = 0.7  # above the box: never kept
    hint = _make(60, 100, box="20,5,90,55")
    joined = hints.with_plain_answer(boxed, plain, hint)
    expected = np.maximum(boxed, plain)
    expected[3] = 0.0
    np.testing.assert_array_equal(joined, expected)
    assert joined.dtype == np.float32
    excluded = hints.with_plain_answer(boxed, plain, _make(60, 100, box="20,5,90,55", exclude="75,47"))
    assert excluded[45:50, 70:80].max() == 0 and excluded[5:20, 40:44].min() == 0.7  # the excluded part only
    outside = plain.copy()
    outside[0:60, 0:4] = 1.0  # 240 px outside the box: over a fifth of the subject
    np.testing.assert_array_equal(hints.with_plain_answer(boxed, outside, hint), boxed)
    np.testing.assert_array_equal(hints.with_plain_answer(boxed, plain, _make(60, 100, include="41,8")), boxed)
    np.testing.assert_array_equal(hints.with_plain_answer(boxed, np.zeros_like(plain), hint), boxed)


def test_picked_reads_the_networks_grid_for_the_share_in_the_box_and_the_points():
    low = np.zeros((10, 20), np.float32)  # the network's grid for a 100 x 400 photo: 10 x 20 photo px a cell
    low[2:6, 3:8] = 0.9  # its subject: photo rows 20-59, columns 60-159 (40 x 100 px)
    assert hints.picked(low, hints.Hint(box=hints.Box(60, 20, 160, 60)), 100, 400)  # all of it in the box
    assert hints.picked(low, hints.Hint(box=hints.Box(50, 10, 140, 70)), 100, 400)  # 4 of its 5 columns of cells: 0.8
    assert not hints.picked(
        low, hints.Hint(box=hints.Box(50, 10, 120, 70)), 100, 400
    )  # 3 of 5: it picked another subject
    assert hints.picked(
        low, hints.Hint(box=hints.Box(75, 25, 81, 29)), 100, 400, share=0.05
    )  # a box inside one cell reads it
    assert not hints.picked(low, hints.Hint(box=hints.Box(200, 0, 400, 100)), 100, 400, share=0.05)  # the other side
    assert hints.picked(low, hints.Hint(include=((100, 40), (159, 59))), 100, 400)  # both points on its subject
    assert not hints.picked(low, hints.Hint(include=((100, 40), (300, 40))), 100, 400)  # one on the background
    assert not hints.picked(
        np.zeros_like(low), hints.Hint(box=hints.Box(0, 0, 400, 100)), 100, 400
    )  # no subject at all


@pytest.mark.parametrize(
    "hint, task, box_focus, first",
    [
        (hints.Hint(box=hints.Box(0, 0, 10, 10)), "segment", False, True),  # a box alone
        (
            hints.Hint(box=hints.Box(0, 0, 10, 10), exclude=((5, 5),)),
            "matte",
            False,
            True,
        ),  # with exclude points, any network
        (hints.Hint(box=hints.Box(0, 0, 10, 10)), "segment", True, False),  # focused on the box
        (
            hints.Hint(box=hints.Box(0, 0, 10, 10), include=((5, 5),)),
            "segment",
            False,
            False,
        ),  # a point says where in the box
        (hints.Hint(include=((5, 5),)), "segment", False, True),  # include points alone on a segmentation network
        (hints.Hint(include=((5, 5),)), "matte", False, False),
        (hints.Hint(include=((5, 5),), mask=np.ones((10, 10), np.float32)), "segment", False, False),  # a hint mask
        (
            hints.Hint(exclude=((5, 5),)),
            "segment",
            False,
            False,
        ),  # exclude points alone: their region is the whole image
    ],
)
def test_whole_first_takes_a_box_alone_or_include_points_alone(hint, task, box_focus, first):
    """Which hints have the network answer the whole image first (mattekit.subject.answer.whole_first)."""
    from mattekit.subject import answer

    assert answer.whole_first(hint, task, box_focus) is first
