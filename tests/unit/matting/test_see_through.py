"""remove --see-through: a see-through subject on one shot over a plain backdrop gets the alpha of the light it
lets through, its opaque parts and highlights stay, and the option reaches the API and the CLI (with u2netp from
the mirror)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mattekit import io
from mattekit_bench import backdrop_scenes
from mattekit.cli import main
from mattekit.matting.see_through import see_through
from mattekit.ops.pixels import linear_to_srgb


def outline(alpha: np.ndarray) -> np.ndarray:
    """The opaque silhouette a segmentation model gives a glass subject: 1 wherever any of it is, edge softened."""
    return cv2.GaussianBlur((alpha > 0.01).astype(np.float32), (0, 0), 1.0)


def glass() -> backdrop_scenes.ShotPair:
    return backdrop_scenes.drawn(1, "glass")


def test_a_glass_bottle_on_a_sweep_gets_its_true_transmission_not_opaque():
    shot = glass()
    alpha, colours = see_through(shot.first, outline(shot.alpha))
    body = (shot.alpha > 0.03) & (shot.alpha < 0.4)  # the glass itself: no label, cap nor highlight
    error = np.abs(alpha - shot.alpha)[body]
    print(
        f"\nglass body: true mean {shot.alpha[body].mean():.3f}, found {alpha[body].mean():.3f}, error {error.mean():.4f}"
    )
    assert error.mean() < 0.05 and np.median(alpha[body]) < 0.3
    assert colours.shape == shot.first.shape and colours.dtype == np.float32


def test_labels_caps_and_highlights_stay():
    shot = glass()
    alpha, _ = see_through(shot.first, outline(shot.alpha))
    label = cv2.erode((shot.alpha > 0.99).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # labels and the cap
    highlight = cv2.erode(((shot.alpha > 0.85) & (shot.alpha < 0.95)).astype(np.uint8), np.ones((3, 3))) > 0
    print(f"\nlabel and cap alpha {alpha[label].mean():.3f}, highlight {alpha[highlight].mean():.3f} (true 0.9)")
    assert label.any() and highlight.any()
    assert alpha[label].mean() > 0.9 and alpha[highlight].mean() > 0.75


@pytest.mark.parametrize("colour", [(0.8, 0.1, 0.1), (0.15, 0.15, 0.15), (0.1, 0.3, 0.7)])
def test_an_opaque_subject_that_does_not_look_like_the_backdrop_stays_opaque(colour):
    h, w = 240, 320
    ys = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    sweep = np.broadcast_to(0.8 - 0.25 * ys, (h, w, 3))  # linear light, darker towards the top
    disc = cv2.circle(np.zeros((h, w), np.float32), (160, 130), 60, 1.0, -1)
    photo = linear_to_srgb(sweep * (1 - disc[..., None]) + disc[..., None] * np.float32(colour) ** 2.2)
    alpha, _ = see_through(photo, disc)
    inside = cv2.erode(disc, np.ones((5, 5))) > 0
    assert alpha[inside].min() > 0.95


def test_a_textured_backdrop_keeps_the_models_alpha_and_a_mark_limits_it():
    shot = glass()
    rough = np.random.default_rng(0).uniform(0.1, 0.9, shot.first.shape).astype(np.float32)
    photo = np.where((shot.alpha > 0.01)[..., None], shot.first, rough)
    model = outline(shot.alpha)
    assert np.array_equal(see_through(photo, model)[0], model)
    marked = np.zeros(model.shape, np.float32)
    marked[:, : model.shape[1] // 2] = 1.0
    alpha, _ = see_through(shot.first, model, marked)
    assert np.array_equal(alpha[:, model.shape[1] // 2 :], model[:, model.shape[1] // 2 :])
    assert alpha[:, : model.shape[1] // 2].mean() < 0.8 * model[:, : model.shape[1] // 2].mean()


def test_the_option_is_declared_once_for_the_cli_the_api_and_the_worker_gimps_checkbox(capsys):
    from mattekit.options import OptionError
    from mattekit.tasks import remove

    offered = remove.TASK.describe("worker")["options"]["see_through"]
    assert offered["type"] == "bool" and offered["default"] is False and offered["label"] == "See-through subject"
    assert remove.TASK.make_options({"see_through": True}).see_through is True
    with pytest.raises(OptionError, match="see_through"):
        remove.TASK.make_options({"see_through": 3})
    with pytest.raises(SystemExit) as ended:
        main(["remove", "--help"])
    assert ended.value.code == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "--see-through" in said and "dark clear glass from grey opaque plastic" in said  # its limit, plainly


@pytest.mark.slow
def test_the_api_and_the_cli_take_it(shared, tmp_path, monkeypatch):
    import mattekit

    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))

    shot = glass()
    plain = mattekit.remove_background(shot.first, model="u2netp", device="cpu", result="alpha")
    seen = mattekit.remove_background(shot.first, model="u2netp", device="cpu", result="alpha", see_through=True)
    body = (shot.alpha > 0.03) & (shot.alpha < 0.4)
    print(f"\nAPI alpha on the glass body: {plain[body].mean():.3f} without, {seen[body].mean():.3f} with see-through")
    assert plain[body].mean() > 0.8 and np.abs(seen - shot.alpha)[body].mean() < 0.08
    half = shot.alpha.shape[1] // 2
    left = np.zeros(shot.alpha.shape, np.float32)
    left[:, :half] = 1.0  # a mask (GIMP: a selection) marks the see-through part; the rest is the model's
    part = mattekit.remove_background(
        shot.first, model="u2netp", device="cpu", result="alpha", see_through=True, see_through_mask=left
    )
    assert np.array_equal(part[:, half:], plain[:, half:]) and np.array_equal(part[:, :half], seen[:, :half])
    photo, out = tmp_path / "glass.png", tmp_path / "glass_cutout.png"
    io.write_image(photo, shot.first)
    assert main(["remove", str(photo), "-o", str(out), "--model", "u2netp", "--device", "cpu", "--see-through"]) == 0
    written = io.read_image(out)
    assert io.read_provenance(out)["options"]["see_through"] is True
    assert np.abs(written.pixels[..., 3] - seen).max() < 1.5 / 255


def test_a_second_shot_refuses_see_through_in_one_sentence(tmp_path, capsys):
    shot = glass()
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    io.write_image(first, shot.first)
    io.write_image(second, shot.second)
    assert main(["remove", str(first), "--second-shot", str(second), "--see-through"]) == 2
    said = capsys.readouterr().err.strip()
    assert "see through" in said and said.count("\n") == 0 and not (tmp_path / "a_cutout.png").exists()


def test_a_see_through_mask_without_see_through_is_refused_in_one_sentence(tmp_path, capsys):
    shot = glass()
    photo, mask = tmp_path / "a.png", tmp_path / "m.png"
    io.write_image(photo, shot.first)
    io.write_image(mask, (shot.alpha > 0.01).astype(np.float32))
    assert main(["remove", str(photo), "--see-through-mask", str(mask)]) == 2
    said = capsys.readouterr().err.strip()
    assert "--see-through" in said and said.count("\n") == 0 and not (tmp_path / "a_cutout.png").exists()
