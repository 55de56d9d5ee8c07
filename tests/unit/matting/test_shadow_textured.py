"""The photo's own shadow on a textured surface (issue 93, item 4): the backdrop's confidence
(:func:`mattekit.matting.backdrop.backdrop_behind`) says the surface is textured, and the matte is left empty with
one note saying why, on every path a user reads notes from."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mattekit import io
from mattekit.cli import main
from mattekit.finish import cutout
from mattekit.matting import shadow
from mattekit.ops.filters import gaussian_blur
from mattekit.running.runner import transparent_note
from mattekit.tasks import remove

HEIGHT, WIDTH = 360, 480


def _scene(texture: float, seed: int = 0):
    """(photo H x W x 3, subject alpha): an upright ellipse on a grey floor whose brightness varies by ``texture``
    (a fraction, blobs of about 6 px: stone, gravel), its shadow laid down to the right (strength 0.5)."""
    rng = np.random.default_rng(seed)
    blobs = gaussian_blur(rng.standard_normal((HEIGHT, WIDTH)).astype(np.float32), 3.0)
    floor = np.clip(0.6 * (1.0 + texture * blobs / blobs.std()), 0.0, 1.0)[..., None] * np.float32([1.0, 0.95, 0.85])
    alpha = np.zeros((HEIGHT, WIDTH), np.float32)
    cv2.ellipse(alpha, (200, 200), (45, 90), 0, 0, 360, 1.0, -1)
    alpha = gaussian_blur(alpha, 1.0)
    cast = np.zeros_like(alpha)
    cv2.ellipse(cast, (300, 270), (110, 30), -10, 0, 360, 1.0, -1)
    cast = gaussian_blur(cast, 4.0) * 0.5
    subject = np.float32([0.2, 0.5, 0.8])
    photo = subject * alpha[..., None] + floor * (1.0 - cast[..., None]) * (1.0 - alpha[..., None])
    return np.clip(photo, 0, 1).astype(np.float32), alpha


def test_a_textured_floor_leaves_the_matte_empty_and_says_why():
    photo, alpha = _scene(texture=0.3)
    got = shadow.found(photo, alpha)
    assert not got.matte.any() and got.matte.shape == alpha.shape
    assert got.note == shadow.TEXTURED_NOTE
    assert not shadow.estimate(photo, alpha).any(), "roto's frames read the same estimate"


def test_a_floor_whose_own_dark_patches_are_many_away_from_the_subject_is_left_empty_with_the_note():
    """Blotches of 12 %: the backdrop fit's spread is under the textured limit, but many of the floor's own patches,
    of its colour, are as dark as a shadow away from the subject; they would be taken for shadow beside it too (the
    old estimate kept a faded matte there, its MAE worse than an empty one on such floors)."""
    photo, alpha = _scene(texture=0.12)
    got = shadow.found(photo, alpha)
    assert not got.matte.any() and got.note == shadow.TEXTURED_NOTE


def test_a_lightly_textured_floor_still_gives_its_shadow_and_no_note():
    photo, alpha = _scene(texture=0.02)
    got = shadow.found(photo, alpha)
    assert got.note is None and got.matte[270, 330] > 0.3


def test_the_note_reaches_the_user_once_with_shadow_keep_and_result_shadow():
    """The cut-out's outputs carry the note; the runner's note on the result is that sentence, in place of the
    empty shadow result's own (one notice, not two)."""
    photo, alpha = _scene(texture=0.3)
    for given in ({"shadow": "keep"}, {"result": "shadow"}):
        options = remove.TASK.make_options(given)
        made = cutout.outputs(photo, alpha, options)
        assert transparent_note(remove.TASK, made, options) == shadow.TEXTURED_NOTE, given
    plain = remove.TASK.make_options({})
    assert transparent_note(remove.TASK, cutout.outputs(photo, alpha, plain), plain) is None, "not asked: no note"


@pytest.mark.slow
def test_the_command_says_why_once_on_a_textured_floor(shared, tmp_path, capsys, monkeypatch):
    """The real u2netp on a composite of the cast generator's textured kind: ``--shadow keep`` writes the cut-out
    without a shadow and says why on stderr, once; ``--result shadow`` writes the empty matte with that one note."""
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    from mattekit_bench import shadow_cast, shadow_scenes
    from mattekit_bench.segment import pairs

    image, gt = pairs(shared / "data" / "alphamatting")[1]
    photos = shadow_scenes.surfaces([shared / "data" / "grabcut50" / "im", shared / "data" / "sr"])
    scene = shadow_cast.scene(image, gt, "textured", photos)
    src = tmp_path / "photo.png"
    io.write_image(src, scene.photo)
    capsys.readouterr()
    assert main(["remove", str(src), "--model", "u2netp", "--shadow", "keep", "-o", str(tmp_path / "k.png")]) == 0
    assert capsys.readouterr().err.count("textured") == 1
    assert main(["remove", str(src), "--model", "u2netp", "--result", "shadow"]) == 0
    err = capsys.readouterr().err
    assert err.count("textured") == 1 and "no shadow of the subject was found" not in err
    assert not io.read_image(tmp_path / "photo_shadow.png").pixels.any()
