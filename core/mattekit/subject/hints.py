"""What the user says the subject is: a box, points to include or exclude, a rough mask.

Coordinates are pixels of the full image: ``x`` to the right, ``y`` down, from the top-left
corner. Every rectangle here, a user's box or a region the model answers, is a :class:`Box` ``x0,y0,x1,y1``
covering columns x0..x1-1 and rows y0..y1-1 (``image[box.slices]`` is its pixels). A hint mask is
H x W float32 in [0,1] (a selection, a scribble; above 0.5 = inside).

The segmentation model runs on the hinted region (:func:`region`) so the subject fills its
input; :func:`colour_refine` decides the pixels the model was unsure of by the colours of the
subject and the background (GrabCut, :func:`mattekit.subject.colour_model.colour_refine`); :func:`constrain` then keeps what the hint says: nothing outside the box or the hint
mask's neighbourhood, only the parts connected to include points, nothing connected to an
exclude point; a box alone or include points alone keep the whole image's answer when that answer holds the
subject they point at (:func:`picked`; else the model answers their region, :func:`around`), and :func:`with_plain_answer` joins it to the region's answer when the box is focused. Pure numpy/OpenCV; no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from ..ops.regions import bounding_box
from ..errors import InputError

MARGIN = 0.15  # the model sees the region grown by this fraction of its size on each side
MASK_REACH = 0.05  # a hint mask's subject may reach this fraction of the image's size beyond it
CONTAINED = 0.95  # the plain answer joins a box's answer only when this share of its subject lies in the box
#                   (chosen on the tuning halves with IS-Net, U2-Netp and CSNet, 2026-11-25: the box fallback,
#                   docs/quality.md "Hints in photos")
WINDOW = 0.5  # an include point alone that the whole image's answer missed: the model looks at a window around it
#               of this share of the image's width and height (chosen on the tuning halves over 0.3 and 0.7)
PICKED = 0.8  # a box alone cuts the whole photo's answer when this share of its subject lies in the box, else the
#               region's answer leads (chosen on the tuning halves, two-subject composites and single photos:
#               docs/quality.md "Hints in photos")


class Box(NamedTuple):
    """A rectangle in image pixels: columns x0..x1-1, rows y0..y1-1 (x1, y1 exclusive); prints as its text form."""

    x0: int
    y0: int
    x1: int
    y1: int

    def __str__(self) -> str:
        return f"{self.x0},{self.y0},{self.x1},{self.y1}"

    @classmethod
    def around(cls, mask: np.ndarray, threshold: float = 0.5) -> "Box | None":
        """The box around the pixels of ``mask`` (H x W) above ``threshold``; None when there are none."""
        bounds = bounding_box(mask, threshold=threshold)  # (top, left, bottom, right): read here only
        if bounds is None:
            return None
        top, left, bottom, right = map(int, bounds)
        return cls(left, top, right, bottom)

    @property
    def slices(self) -> tuple[slice, slice]:
        """(rows, columns): ``image[box.slices]`` is the box's pixels."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0


class Point(NamedTuple):
    """A point in image pixels; prints as its text form ``x,y``."""

    x: int
    y: int

    def __str__(self) -> str:
        return f"{self.x},{self.y}"


@dataclass(frozen=True)
class Hint:
    """A user's hint in image pixels. box: a :class:`Box` or None; include / exclude: :class:`Point` s; mask:
    H x W float32 [0,1] or None."""

    box: Box | None = None
    include: tuple[Point, ...] = ()
    exclude: tuple[Point, ...] = ()
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        _refuse_bare(self.box, "A hint's box")

    def __bool__(self) -> bool:
        return self.box is not None or bool(self.include) or bool(self.exclude) or self.mask is not None


@dataclass(frozen=True)
class Hinted:
    """A hint and the region of the image the network answers it on (a :class:`Box`), or None where the whole image
    answers first (:func:`mattekit.subject.answer.whole_first`)."""

    hint: Hint
    region: Box | None

    def __post_init__(self) -> None:
        _refuse_bare(self.region, "A hinted region")


def _refuse_bare(box, what: str) -> None:
    """TypeError unless ``box`` is a :class:`Box` or None: four bare numbers say neither their order nor their
    ends (a region was once (top, left, bottom, right) beside boxes x0, y0, x1, y1)."""
    if box is not None and not isinstance(box, Box):
        raise TypeError(f"{what} is a Box (x0, y0, x1, y1 in pixels), not {box!r}.")


def make(
    height: int,
    width: int,
    box: Box | None = None,
    include: tuple[Point, ...] = (),
    exclude: tuple[Point, ...] = (),
    mask: np.ndarray | None = None,
) -> Hint:
    """A checked :class:`Hint` for an image of ``height`` x ``width`` from the options' values
    (:func:`mattekit.subject.hint_text.parse_box`, :func:`~mattekit.subject.hint_text.parse_points`) and a mask.

    The box is clipped to the image (one wholly outside is an error); points must lie in the image;
    the mask must have the image's size.
    """
    clipped = None
    if box is not None:
        clipped = Box(max(0, box.x0), max(0, box.y0), min(width, box.x1), min(height, box.y1))
        if clipped.x1 <= clipped.x0 or clipped.y1 <= clipped.y0:
            raise InputError(f"The box '{box}' lies outside the {width}x{height} image.")
    for x, y in (*(include or ()), *(exclude or ())):
        if not (0 <= x < width and 0 <= y < height):
            raise InputError(f"The point {x},{y} lies outside the {width}x{height} image.")
    if mask is not None:
        if mask.shape[:2] != (height, width):
            raise InputError(
                f"The hint mask is {mask.shape[1]}x{mask.shape[0]} but the image is {width}x{height}; "
                "they must have the same size."
            )
        mask = np.clip(np.asarray(mask, np.float32), 0.0, 1.0)
        if not (mask > 0.5).any():
            raise InputError("The hint mask selects nothing (no pixel above half).")
    return Hint(clipped, tuple(include or ()), tuple(exclude or ()), mask)


def _bounds(hint: Hint) -> Box | None:
    """The box around what the hint outlines (box, mask, include points), or None."""
    mask_box = None if hint.mask is None else Box.around(hint.mask)  # not empty: make() refuses that
    boxes = [box for box in (hint.box, mask_box) if box is not None]
    if not boxes:
        return None
    boxes += [Box(x, y, x + 1, y + 1) for x, y in hint.include]
    return Box(
        int(min(b.x0 for b in boxes)),
        int(min(b.y0 for b in boxes)),
        int(max(b.x1 for b in boxes)),
        int(max(b.y1 for b in boxes)),
    )


def region(hint: Hint, height: int, width: int, margin: float = MARGIN) -> Box:
    """The crop the model runs on: what the hint outlines grown by ``margin`` of its size on each side (at
    least 8 px), clipped to the image; the whole image when the hint outlines nothing (points only). Not made
    square: a square crop was worse on the tuning halves (grabcut50, box: IoU 0.9005 vs 0.9025 with csnet-sod,
    0.8633 vs 0.8758 with u2netp)."""
    bounds = _bounds(hint)
    if bounds is None:
        return Box(0, 0, width, height)
    grow_y = max(8, int(round(margin * bounds.height)))
    grow_x = max(8, int(round(margin * bounds.width)))
    return Box(
        max(0, bounds.x0 - grow_x),
        max(0, bounds.y0 - grow_y),
        min(width, bounds.x1 + grow_x),
        min(height, bounds.y1 + grow_y),
    )


def within(hint: Hint, crop: Box) -> Hint:
    """``hint`` in the coordinates of ``crop``: the box clipped to it (None when it covers the crop), points
    outside it left out, the mask cropped."""
    box = None
    if hint.box is not None:
        box = Box(
            max(0, hint.box.x0 - crop.x0),
            max(0, hint.box.y0 - crop.y0),
            min(crop.x1, hint.box.x1) - crop.x0,
            min(crop.y1, hint.box.y1) - crop.y0,
        )
        if box == (0, 0, crop.width, crop.height):
            box = None

    def inside(points):
        return tuple(
            Point(x - crop.x0, y - crop.y0) for x, y in points if crop.x0 <= x < crop.x1 and crop.y0 <= y < crop.y1
        )

    mask = None if hint.mask is None else hint.mask[crop.slices]
    return Hint(box, inside(hint.include), inside(hint.exclude), mask)


def allowed(hint: Hint, height: int, width: int) -> np.ndarray | None:
    """H x W bool: where the subject may be (inside the box, near the hint mask), or None for anywhere."""
    inside = None
    if hint.box is not None:
        inside = np.zeros((height, width), bool)
        inside[hint.box.slices] = True
    if hint.mask is not None:
        reach = max(1, int(round(MASK_REACH * max(height, width))))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
        near = cv2.dilate((hint.mask > 0.5).astype(np.uint8), kernel).astype(bool)
        inside = near if inside is None else inside | near
    return inside


def constrain(mask: np.ndarray, hint: Hint, select: bool = True) -> np.ndarray:
    """``mask`` (H x W float32 [0,1], the model's subject) as the hint says: zero outside
    :func:`allowed`, none of the parts (above 0.5) connected to an exclude point and, with ``select``,
    only the parts connected to an include point. Soft edges of the kept parts stay as they were."""
    height, width = mask.shape
    out = mask.astype(np.float32, copy=True)
    where = allowed(hint, height, width)
    if where is not None:
        out[~where] = 0.0
    if not ((hint.include and select) or hint.exclude):
        return out
    solid = (out > 0.5).astype(np.uint8)
    count, labels = cv2.connectedComponents(solid, connectivity=8)
    keep = np.ones(count, bool) if not (hint.include and select) else np.zeros(count, bool)
    for x, y in hint.exclude:
        keep[labels[y, x]] = False
    for x, y in (
        hint.include if select else ()
    ):  # a part holding both kinds of point is kept (the colour model splits it)
        keep[labels[y, x]] = True
    keep[0] = True  # the soft edge around the parts (below 0.5) is decided by its nearest part
    if keep.all():
        return out
    dropped = ~keep[labels]
    # the soft fringe of a dropped part goes with it: pixels nearer to a dropped part than to a kept one
    kept_distance = cv2.distanceTransform((~(keep[labels] & (labels > 0))).astype(np.uint8), cv2.DIST_L2, 3)
    dropped_distance = cv2.distanceTransform((~dropped).astype(np.uint8), cv2.DIST_L2, 3)
    out[dropped | ((labels == 0) & (dropped_distance < kept_distance))] = 0.0
    return out


def with_plain_answer(mask: np.ndarray, plain: np.ndarray, hint: Hint, contained: float = CONTAINED) -> np.ndarray:
    """``mask`` (the model's answer on a box's region, H x W float32 [0,1]) joined, pixel by pixel the larger value,
    with ``plain`` (its answer on the whole image, H x W [0,1]) where the hint allows it (:func:`constrain`, nothing
    selected), when at least ``contained`` of ``plain``'s subject (above 0.5) lies in the box: the whole image's
    answer then saw the same subject with its surroundings, and the region's answer may have cut off a part (a tail
    at the box's edge) or lost the subject in clutter. ``mask`` as it is without a box or otherwise."""
    if share_in_box(plain, hint) < contained:
        return mask
    return np.maximum(mask, constrain(plain, hint, select=False))


def around(hint: Hint, height: int, width: int, share: float = WINDOW) -> Hint:
    """A hint holding only a box around ``hint``'s include points (some), reaching ``share`` / 2 of the image's width
    and height beyond them on each side, clipped to the image: where to look for a subject the whole image's answer
    left out at those points."""
    xs, ys = [x for x, _ in hint.include], [y for _, y in hint.include]
    reach_x, reach_y = share * width / 2, share * height / 2
    return Hint(
        box=Box(
            max(0, int(min(xs) - reach_x)),
            max(0, int(min(ys) - reach_y)),
            min(width, int(max(xs) + reach_x) + 1),
            min(height, int(max(ys) + reach_y) + 1),
        )
    )


def share_in_box(plain: np.ndarray, hint: Hint) -> float:
    """The share (0-1) of ``plain``'s subject (H x W [0,1], above 0.5) that lies in the hint's box; 0 when it has no
    subject or the hint no box."""
    subject = plain >= 0.5
    total = np.count_nonzero(subject)
    if hint.box is None or total == 0:
        return 0.0
    return np.count_nonzero(subject[hint.box.slices]) / total


def picked(low: np.ndarray, hint: Hint, height: int, width: int, share: float = PICKED) -> bool:
    """Whether the network's answer on the whole height x width image holds the subject ``hint`` points at, read on
    its prediction ``low`` (h x w in [0, 1], the network's grid, so that no full-size mask is made for an answer
    that is not used): at least ``share`` of its subject (above 0.5) lies in the hint's box (on the grid, the cells
    the box touches), or, without a box, every include point lands on its subject."""
    h, w = low.shape
    if hint.box is None:
        return all(low[min(h - 1, y * h // height), min(w - 1, x * w // width)] >= 0.5 for x, y in hint.include)
    x0, y0, x1, y1 = hint.box
    on_grid = Hint(box=Box(x0 * w // width, y0 * h // height, -(-x1 * w // width), -(-y1 * h // height)))
    return share_in_box(low, on_grid) >= share
