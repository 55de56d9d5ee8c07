"""`mattekit bench segment`: one row per model, method and half (even-indexed images tune, odd-indexed
ones report), whose figures are the mask metrics of the plain model and of `remove --result alpha`."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import mask_scores
from mattekit.cli import main


def _table(text: str) -> dict:
    """{(model, method, half): (images, [IoU, MAE, boundary F])} of the printed rows."""
    rows = {}
    for line in text.splitlines()[2:]:
        words = line.split()
        *label, half, count, iou, mae, bf = words
        model, method = label[0], " ".join(label[1:])
        rows[(model, method, half)] = (int(count), [float(iou), float(mae), float(bf)])
    return rows


EIGHT_BIT = 1 / 510  # the most rounding an alpha to 8 bits moves a pixel, so a mean; IoU and boundary F keep
# alpha >= 0.5 exactly (round(255 a) >= 128 where a >= 0.5 and only there)


def _saved_scores(folder, data, images) -> list[list[float]]:
    """[IoU, MAE, boundary F] per image of the alpha files in ``folder``, by tests/helpers/mask_scores.py's numpy."""
    found = []
    for image_path in images:
        alpha = mask_scores.saved_alpha(folder / f"{image_path.stem}.png")
        gt = cv2.imread(str(data / "gt" / f"{image_path.stem}.png"), cv2.IMREAD_GRAYSCALE)
        assert alpha.shape == gt.shape
        found.append([mask_scores.iou(alpha, gt), mask_scores.mae(alpha, gt), mask_scores.boundary_f(alpha, gt)])
    return found


def _check_rows(table, model, method, per_image) -> None:
    """The printed rows of ``method``: each half's image count and mean figures (4 decimals printed)."""
    for half, rows in (("tuning", per_image[0::2]), ("report", per_image[1::2])):
        count, printed = table[(model, method, half)]
        assert count == len(rows)
        expected = np.mean(rows, axis=0)
        assert np.all(np.abs(np.subtract(printed, expected)) <= [6e-5, EIGHT_BIT + 6e-5, 6e-5]), (
            model,
            method,
            half,
            printed,
            expected,
        )


@pytest.mark.slow
def test_rows_equal_metrics_computed_directly(four_images, capsys, tmp_path):
    """The rows against the alpha files the commands users run write (the plain model: remove --no-refine
    --no-matting, its bilinear upsampling alone; the default pipeline: remove), scored by numpy here."""
    data, images = four_images
    assert main(["bench", "segment", "--data", str(data), "--model", "csnet-sod"]) == 0
    out = capsys.readouterr().out
    assert "tuning half = even-indexed (2), report half = odd-indexed (2)" in out
    table = _table(out)
    methods = {"plain model": ["--no-refine", "--no-matting"], "default pipeline": []}
    assert set(table) == {("csnet-sod", m, h) for m in methods for h in ("tuning", "report")}  # no ONNX source

    for method, flags in methods.items():
        folder = tmp_path / method.replace(" ", "_")
        assert (
            main(
                [
                    "remove",
                    *map(str, images),
                    "-o",
                    f"{folder}/",
                    "--result",
                    "alpha",
                    "--model",
                    "csnet-sod",
                    "-q",
                    *flags,
                ]
            )
            == 0
        )
        _check_rows(table, "csnet-sod", method, _saved_scores(folder, data, images))
    for image_path in images:  # the pipeline changes the mask
        plain, pipeline = (
            mask_scores.saved_alpha(tmp_path / m / f"{image_path.stem}.png")
            for m in ("plain_model", "default_pipeline")
        )
        assert np.abs(pipeline - plain).max() > 0.05, image_path.name


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_onnx_reference_row_for_u2netp(four_images, capsys):
    pytest.importorskip("onnxruntime")
    data, _ = four_images
    assert main(["bench", "segment", "--data", str(data), "--model", "u2netp", "--limit", "2"]) == 0
    table = _table(capsys.readouterr().out)
    assert {m for _, m, _ in table} == {"plain model", "default pipeline", "onnxruntime (rembg)"}
    for half in ("tuning", "report"):  # the same weights and rembg's own pipeline: the same figures (2e-3)
        reference, plain = table[("u2netp", "onnxruntime (rembg)", half)][1], table[("u2netp", "plain model", half)][1]
        assert np.abs(np.subtract(reference, plain)).max() <= 2e-3, (reference, plain)


@pytest.mark.slow
def test_a_matting_model_is_scored_on_its_own_alpha(four_images, capsys, tmp_path):
    """modnet-portrait (a matting model): one "default pipeline" row per half, the alpha of `matte --model`."""
    data, images = four_images
    assert main(["bench", "segment", "--data", str(data), "--model", "modnet-portrait", "--limit", "2"]) == 0
    table = _table(capsys.readouterr().out)
    assert set(table) == {("modnet-portrait", "default pipeline", h) for h in ("tuning", "report")}
    assert (
        main(
            [
                "matte",
                *map(str, images[:2]),
                "-o",
                f"{tmp_path}/",
                "--model",
                "modnet-portrait",
                "--result",
                "alpha",
                "-q",
            ]
        )
        == 0
    )
    _check_rows(table, "modnet-portrait", "default pipeline", _saved_scores(tmp_path, data, images[:2]))


def test_no_onnx_reference_row_when_the_onnx_source_cannot_be_had(monkeypatch):
    """isnet-general-use lists rembg's ONNX release; offline and not cached, its row is left out with a warning."""
    pytest.importorskip("onnxruntime")
    from mattekit import catalog
    from mattekit_bench import segment as bench_segment

    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    monkeypatch.delenv("MATTEKIT_MIRROR", raising=False)
    entry = catalog.load().get("isnet-general-use")
    with pytest.warns(UserWarning, match="no onnxruntime \\(rembg\\) row for isnet-general-use: .*MATTEKIT_OFFLINE=1"):
        assert bench_segment.reference_for(entry) is None
