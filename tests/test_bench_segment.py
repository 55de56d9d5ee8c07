"""`mattekit bench segment`: one row per model, method and half (even-indexed images tune, odd-indexed
ones report), whose figures are the mask metrics of the plain model and of `remove --result alpha`."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from mattekit import io, metrics, ops, runtime
from mattekit.cli import main
from mattekit.tasks import matte, segment


def _table(text: str) -> dict:
    """{(model, method, half): (images, [IoU, MAE, boundary F])} of the printed rows."""
    rows = {}
    for line in text.splitlines()[2:]:
        words = line.split()
        *label, half, count, iou, mae, bf = words
        model, method = label[0], " ".join(label[1:])
        rows[(model, method, half)] = (int(count), [float(iou), float(mae), float(bf)])
    return rows


@pytest.mark.slow
def test_rows_equal_metrics_computed_directly(four_images, capsys):
    data, images = four_images
    assert main(["bench", "segment", "--data", str(data), "--model", "csnet-sod"]) == 0
    out = capsys.readouterr().out
    assert "tuning half = even-indexed (2), report half = odd-indexed (2)" in out
    table = _table(out)
    methods = ("plain model", "default pipeline")
    assert set(table) == {("csnet-sod", m, h) for m in methods for h in ("tuning", "report")}  # no ONNX source

    predictor = runtime.ModelCache().get("csnet-sod", "segment")
    options = segment.TASK.make_options({"model": "csnet-sod", "result": "alpha"})
    direct = {}
    for index, image_path in enumerate(images):
        image = io.read_image(image_path, integers=True).pixels[..., :3]  # as the bench and the CLI read it
        gt = cv2.imread(str(data / "gt" / f"{image_path.stem}.png"), cv2.IMREAD_GRAYSCALE)
        plain = np.clip(ops.resize(predictor.predict_map(image), *image.shape[:2], "bilinear"), 0, 1)
        pipeline = segment.TASK.run({"model": predictor}, {"image": image}, options)["result"]
        assert pipeline.shape == gt.shape and np.abs(pipeline - plain).max() > 0.05  # the pipeline changes the mask
        half = ("tuning", "report")[index % 2]
        for method, alpha in zip(methods, (plain, pipeline)):
            direct.setdefault((method, half), []).append(
                [metrics.iou(alpha, gt), metrics.mae(alpha, gt), metrics.boundary_f(alpha, gt)])
    for (method, half), per_image in direct.items():
        count, printed = table[("csnet-sod", method, half)]
        assert count == 2
        np.testing.assert_allclose(printed, np.mean(per_image, axis=0), atol=6e-5, err_msg=f"{method}, {half}")


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
def test_a_matting_model_is_scored_on_its_own_alpha(four_images, capsys):
    """modnet-portrait (a matting model): one "default pipeline" row per half, the alpha of `matte --model`."""
    data, images = four_images
    assert main(["bench", "segment", "--data", str(data), "--model", "modnet-portrait", "--limit", "2"]) == 0
    table = _table(capsys.readouterr().out)
    assert set(table) == {("modnet-portrait", "default pipeline", h) for h in ("tuning", "report")}
    predictor = runtime.ModelCache().get("modnet-portrait", "matte")
    options = matte.TASK.make_options({"model": "modnet-portrait", "result": "alpha"})
    for image_path, half in zip(images, ("tuning", "report")):
        alpha = matte.TASK.run({"model": predictor}, {"image": io.read_image(image_path).pixels[..., :3]}, options)["result"]
        gt = cv2.imread(str(data / "gt" / f"{image_path.stem}.png"), cv2.IMREAD_GRAYSCALE)
        direct = [metrics.iou(alpha, gt), metrics.mae(alpha, gt), metrics.boundary_f(alpha, gt)]
        np.testing.assert_allclose(table[("modnet-portrait", "default pipeline", half)][1], direct, atol=6e-5)


def test_no_onnx_reference_row_when_the_onnx_source_cannot_be_had(monkeypatch):
    """isnet-general-use lists rembg's ONNX release; offline and not cached, its row is left out with a warning."""
    pytest.importorskip("onnxruntime")
    from mattekit import catalog
    from mattekit.bench import segment as bench_segment

    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    monkeypatch.delenv("MATTEKIT_MIRROR", raising=False)
    entry = catalog.load().get("isnet-general-use")
    with pytest.warns(UserWarning, match="no onnxruntime \\(rembg\\) row for isnet-general-use: .*MATTEKIT_OFFLINE=1"):
        assert bench_segment.reference_for(entry) is None
