"""`mattekit bench hints`: hints derived from the ground truth (a box with a seeded random margin, the
subject's innermost point), one row per model, hint and half, whose figures are IoUs of `remove
--result alpha` computed directly."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import mask_scores
from mattekit.subject import hints
from mattekit_bench import hints as bench_hints
from mattekit.cli import main
from mattekit.errors import InputError


def test_derived_hints_follow_the_ground_truth():
    gt = np.zeros((100, 200), np.uint8)
    gt[20:60, 50:150] = 255
    gt[19, 50:150] = 128  # the ignore band counts as the subject's extent
    boxes = {bench_hints.gt_box(gt, f"image{k}") for k in range(20)}
    assert len(boxes) > 15 and bench_hints.gt_box(gt, "image3") == bench_hints.gt_box(gt, "image3")
    for x0, y0, x1, y1 in boxes:
        assert 50 - 15 <= x0 <= 50 and 19 - 6 <= y0 <= 19 and 150 <= x1 <= 150 + 16 and 60 <= y1 <= 60 + 7
    square = np.zeros((100, 200), np.uint8)
    square[20:61, 80:121] = 255
    assert bench_hints.gt_point(square) == (100, 40)


def test_davis_layout_takes_each_sequences_first_frame_or_every_nth_in_its_half(tmp_path):
    for seq in ("b", "a", "c"):
        for sub, ext in (("im", "jpg"), ("gt", "png")):
            folder = tmp_path / sub / seq
            folder.mkdir(parents=True)
            for frame in ("00002", "00001", "00000", "00003"):
                (folder / f"{frame}.{ext}").write_bytes(b"")
    rows = bench_hints.rows_of(tmp_path)
    assert [(r[0].parent.name, r[0].name, r[1].name, r[2]) for r in rows] == [
        ("a", "00000.jpg", "00000.png", "tuning"),
        ("b", "00000.jpg", "00000.png", "report"),
        ("c", "00000.jpg", "00000.png", "tuning"),
    ]
    (tmp_path / "gt" / "b" / "00002.png").unlink()  # a frame without a mask is left out
    rows = bench_hints.rows_of(tmp_path, every=2)
    assert [(r[0].parent.name, r[0].stem, r[2]) for r in rows] == [
        ("a", "00000", "tuning"),
        ("a", "00002", "tuning"),
        ("b", "00000", "report"),
        ("c", "00000", "tuning"),
        ("c", "00002", "tuning"),
    ]
    with pytest.raises(InputError, match="no im/ folder"):
        bench_hints.rows_of(tmp_path / "gt")
    (tmp_path / "photos" / "im").mkdir(parents=True)
    with pytest.raises(InputError, match="^--every takes frames of sequences"):
        bench_hints.rows_of(tmp_path / "photos", every=2)


def test_composites_pair_photos_within_a_half_and_keep_each_subjects_mask():
    """Each photo of a half is once on the left and once on the right, never beside one of the other half; the
    right photo is scaled to the left one's height and its mask with it, the other photo's part of a mask is 0."""
    rows = [(Path(f"{k}.jpg"), Path(f"{k}.png"), ("tuning", "report")[k % 2]) for k in range(7)]
    pairs = bench_hints.composite_pairs(rows)
    assert [(left[0].stem, right[0].stem, half) for left, right, half in pairs] == [
        ("0", "2", "tuning"),
        ("2", "4", "tuning"),
        ("4", "6", "tuning"),
        ("6", "0", "tuning"),
        ("1", "3", "report"),
        ("3", "5", "report"),
        ("5", "1", "report"),
    ]
    left, right = np.full((40, 30, 3), 0.2, np.float32), np.full((80, 100, 3), 0.7, np.float32)
    left_gt, right_gt = np.zeros((40, 30), np.uint8), np.zeros((80, 100), np.uint8)
    left_gt[10:20, 5:15], right_gt[40:80, 50:100] = 255, 255
    image, on_left, on_right = bench_hints.side_by_side(left, right, left_gt, right_gt)
    assert image.shape == (40, 80, 3) and on_left.shape == on_right.shape == (40, 80)
    np.testing.assert_allclose(image[:, :30], 0.2)
    np.testing.assert_allclose(image[:, 30:], 0.7)
    assert np.array_equal(on_left[:, :30], left_gt) and not on_left[:, 30:].any()
    assert (on_right[20:40, 55:80] == 255).all() and (
        on_right == 255
    ).sum() == 20 * 25  # rows 40-80 x cols 50-100, halved


def _table(text: str) -> dict:
    """{(model, hint, half): (images, IoU, miss->hit or None)} of the printed rows."""
    rows = {}
    for line in text.splitlines()[2:]:
        model, *hint, half, count, iou, turned = line.split()
        rows[(model, " ".join(hint), half)] = (int(count), float(iou), None if turned == "-" else float(turned))
    return rows


@pytest.mark.slow
def test_rows_equal_ious_computed_directly(four_images, capsys, tmp_path):
    """The rows against the alpha files `remove --result alpha --no-matting` writes for each hint, scored by
    numpy here (tests/helpers/mask_scores.py); the hints are the bench's own, checked by the first test above."""
    data, images = four_images
    assert main(["bench", "hints", "--data", str(data), "--model", "csnet-sod", "--no-matting"]) == 0
    out = capsys.readouterr().out
    assert "tuning half = even-indexed (2), report half = odd-indexed (2)" in out and "--no-matting" in out
    table = _table(out)
    assert set(table) == {
        ("csnet-sod", hint, half)
        for hint in bench_hints.HINTS
        if hint != "point"  # (composites')
        for half in ("tuning", "report")
    }

    def remove(name: str, *args: str) -> Path:
        assert (
            main(
                [
                    "remove",
                    *args,
                    "-o",
                    f"{tmp_path / name}/",
                    "--result",
                    "alpha",
                    "--model",
                    "csnet-sod",
                    "--no-matting",
                    "--hint-model",
                    "none",
                    "-q",
                ]
            )
            == 0
        )  # the bench measures the fallback
        return tmp_path / name

    plain = remove("none", *map(str, images))
    direct = {}
    for index, image_path in enumerate(images):
        gt = cv2.imread(str(data / "gt" / f"{image_path.stem}.png"), cv2.IMREAD_GRAYSCALE)
        x, y = bench_hints.gt_point(gt)
        x0, y0, x1, y1 = bench_hints.gt_box(gt, image_path.stem)
        ys, xs = np.nonzero(cv2.imread(str(data / "rect" / f"{image_path.stem}.png"), cv2.IMREAD_GRAYSCALE))
        box = f"{x0},{y0},{x1},{y1}"
        folders = {"none": plain}
        for hint, flags in (
            ("box", ["--box", box]),
            ("box focus", ["--box", box, "--box-focus"]),
            ("box + point", ["--box", box, "--point", f"{x},{y}"]),
            ("paper rect", ["--box", f"{xs.min()},{ys.min()},{xs.max() + 1},{ys.max() + 1}"]),
        ):
            folders[hint] = remove(f"{hint.replace(' ', '_')}_{index}", str(image_path), *flags)
        alphas = {hint: mask_scores.saved_alpha(folder / f"{image_path.stem}.png") for hint, folder in folders.items()}
        alphas["none clipped"] = np.zeros_like(alphas["none"])
        alphas["none clipped"][y0:y1, x0:x1] = alphas["none"][y0:y1, x0:x1]
        # a box alone cuts the plain answer when that answer's subject lies in the box (hints.PICKED)
        if hints.share_in_box(alphas["none"], hints.Hint(box=hints.Box(x0, y0, x1, y1))) >= hints.PICKED:
            assert np.array_equal(alphas["box"], alphas["none clipped"]), image_path.name
        for hint, alpha in alphas.items():
            direct.setdefault((hint, ("tuning", "report")[index % 2]), []).append(mask_scores.iou(alpha, gt))
    assert set(direct) == {key[1:] for key in table}
    for (hint, half), ious in direct.items():
        count, printed, turned = table[("csnet-sod", hint, half)]
        assert count == 2 and printed == pytest.approx(np.mean(ious), abs=6e-5), (hint, half)
        if hint in ("none", "none clipped"):
            assert turned is None
        else:  # a miss (IoU < 0.3) without a hint turned into a hit (IoU > 0.7) with it
            nones = direct[("none", half)]
            assert turned == pytest.approx(np.mean([a < 0.3 and b > 0.7 for a, b in zip(nones, ious)]), abs=6e-4)
