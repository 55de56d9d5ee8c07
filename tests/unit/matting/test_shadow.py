"""The photo's own shadow (:mod:`mattekit.matting.shadow`, ``remove --shadow keep``): found where the subject casts
it, invented nowhere else; kept in the cut-out so that over the photo's own surface it gives the photo back."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mattekit import io
from mattekit.cli import main
from mattekit.finish import cutout
from mattekit.matting import shadow
from mattekit.tasks import common
from mattekit.ops.filters import gaussian_blur
from mattekit.tasks import remove

HEIGHT, WIDTH = 360, 480


def _scene(cast: bool = True, far: bool = False, wall: bool = False, seed: int = 0):
    """(photo H x W x 3, subject alpha, its true shadow): a soft-edged upright ellipse standing on a smooth, lightly
    textured warm floor, its shadow laid down to the right from its base (strength 0.5, blurred 4 px); ``far``: a
    blob's shadow in the far corner too (not the subject's); ``wall``: the upper third a dark blue wall."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    floor = np.stack([0.75 - 0.15 * ys / HEIGHT, 0.62 - 0.1 * xs / WIDTH, 0.5 + 0 * xs], -1)
    floor *= 1.0 + 0.03 * gaussian_blur(rng.standard_normal((HEIGHT, WIDTH)).astype(np.float32), 1.0)[..., None]
    if wall:
        floor[: HEIGHT // 3] = (0.08, 0.1, 0.22)
    alpha = np.zeros((HEIGHT, WIDTH), np.float32)
    cv2.ellipse(alpha, (200, 200), (45, 90), 0, 0, 360, 1.0, -1)
    alpha = gaussian_blur(alpha, 1.0)
    truth = np.zeros_like(alpha)
    if cast:  # the ellipse laid on the floor from its base (row 290) to the right, flattened
        cv2.ellipse(truth, (300, 270), (110, 30), -10, 0, 360, 1.0, -1)
        truth = gaussian_blur(truth, 4.0) * 0.5
    darkening = truth.copy()
    if far:
        blob = np.zeros_like(alpha)
        cv2.ellipse(blob, (430, 50), (30, 18), 0, 0, 360, 1.0, -1)
        darkening = np.maximum(darkening, gaussian_blur(blob, 3.0) * 0.5)
    subject = np.broadcast_to(np.float32([0.2, 0.5, 0.8]), floor.shape)
    photo = subject * alpha[..., None] + floor * (1.0 - darkening[..., None]) * (1.0 - alpha[..., None])
    return np.clip(photo, 0, 1).astype(np.float32), alpha, truth


def _outside(alpha):
    return alpha < 0.01


def test_finds_the_shadow_the_subject_casts():
    photo, alpha, truth = _scene()
    matte = shadow.estimate(photo, alpha)
    out = _outside(alpha)
    found, wanted = (matte >= 0.1) & out, (truth >= 0.1) & out
    iou = (found & wanted).sum() / (found | wanted).sum()
    error, empty = np.abs(matte - truth)[out].mean(), truth[out].mean()
    assert matte.shape == alpha.shape and matte.dtype == np.float32 and 0 <= matte.min() <= matte.max() <= 1
    assert iou >= 0.75 and error <= 0.4 * empty, (iou, error, empty)
    assert abs(matte[270, 330] - 0.5) < 0.1, "as dark as the photo's shadow"


def test_a_soft_light_shadow_is_found_to_its_edge():
    """A soft, light shadow (blurred 6 px, strength 0.3): the matte follows its darkening out to where the photo is
    10 % darker (the region >= 0.1), not only its core; and no further."""
    photo, alpha, _ = _scene(cast=False)
    truth = np.zeros_like(alpha)
    cv2.ellipse(truth, (300, 270), (110, 30), -10, 0, 360, 1.0, -1)
    truth = gaussian_blur(truth, 6.0) * 0.3
    shaded = photo * (1.0 - truth[..., None] * (1.0 - alpha[..., None]))
    matte = shadow.estimate(shaded, alpha)
    found, wanted = (matte >= 0.1) & _outside(alpha), (truth >= 0.1) & _outside(alpha)
    assert (found & wanted).sum() / (found | wanted).sum() >= 0.85


def test_invents_no_shadow_on_a_shadowless_photo():
    photo, alpha, _ = _scene(cast=False)
    assert shadow.estimate(photo, alpha)[_outside(alpha)].mean() <= 0.005
    nothing = np.zeros_like(alpha)
    assert not shadow.estimate(photo, nothing).any(), "no subject, no shadow"


def test_ignores_a_shadow_far_from_the_subject_and_a_dark_wall_behind_it():
    photo, alpha, truth = _scene(far=True, wall=True)
    matte = shadow.estimate(photo, alpha)
    assert matte[30:70, 400:460].max() < 0.05, "something else's shadow in the far corner"
    assert matte[: HEIGHT // 3 - 5].max() < 0.05, "the dark wall behind the subject"
    found, wanted = (matte >= 0.1) & _outside(alpha), (truth >= 0.1) & _outside(alpha)
    assert (found & wanted).sum() / (found | wanted).sum() >= 0.75, "its own shadow still found"


def test_a_floor_of_dark_stripes_gives_no_shadow_rather_than_stripes():
    photo, alpha, _ = _scene(cast=False)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    stripes = np.where(((xs + ys) // 20) % 2 == 0, 1.0, 0.45).astype(np.float32)  # 28 px apart, diagonal
    striped = photo * (1.0 - alpha[..., None]) * stripes[..., None] + photo * alpha[..., None]
    assert shadow.estimate(striped, alpha)[_outside(alpha)].max() < 0.02, "the stripes touching it are no shadow"
    assert shadow.pattern_share(1.0 - stripes, np.zeros_like(alpha, bool)) > 0.4


def test_a_floors_slow_shading_beside_the_subject_is_not_taken_for_its_shadow():
    """A floor shaded in broad bands (half as bright every 200 px, across the subject) around the subject's own
    shadow: next to the subject the surface is guessed from farther out, so the band darkening towards it read as
    shadow (the old estimate: 1.9x as many false region pixels as the true shadow's); the floor's fitted shading is
    taken out, the shadow stays."""
    photo, alpha, truth = _scene()
    xs = np.mgrid[0:HEIGHT, 0:WIDTH][1].astype(np.float32)
    shading = 1.0 - 0.5 * (0.5 + 0.5 * np.cos(2 * np.pi * xs / 200))
    shaded = photo * alpha[..., None] + photo * (1.0 - alpha[..., None]) * shading[..., None]
    matte = shadow.estimate(shaded, alpha)
    found, wanted = (matte >= 0.1) & _outside(alpha), (truth >= 0.1) & _outside(alpha)
    assert (found & ~wanted).sum() < 0.8 * wanted.sum(), "the floor's shading beside the subject is no shadow"
    assert (found & wanted).sum() > 0.9 * wanted.sum(), "its own shadow still found"


def test_a_shadow_under_the_soft_edge_of_a_models_alpha_is_found():
    """A model's alpha often spreads a few pixels past the subject (here: blurred by 6 px): the shadow there, which
    the true alpha leaves outside, still counts."""
    photo, alpha, truth = _scene()
    spread = np.clip(gaussian_blur(alpha, 6.0) * 1.5, 0.0, 1.0)
    fringe = (spread > 0.05) & (spread < 0.9) & _outside(alpha) & (truth > 0.2)
    assert fringe.sum() > 50
    assert shadow.estimate(photo, spread)[fringe].mean() > 0.2, "as dark as the photo's shadow there"


def test_the_kept_shadow_over_the_photos_surface_gives_the_photo_back():
    photo, alpha, truth = _scene()
    options = remove.TASK.make_options({"shadow": "keep", "decontaminate": False})
    assert options.shadow == cutout.KEEP
    made = cutout.outputs(photo, alpha, options)
    cut, matte = made["result"], made["shadow"]
    assert cut.shape == alpha.shape + (4,) and (cut[..., 3] >= alpha - 1e-6).all()
    surface = photo / np.maximum(1.0 - truth[..., None], 1e-3)  # the photo's floor without the shadow
    over = cut[..., :3] * cut[..., 3:] + surface * (1.0 - cut[..., 3:])
    region = (truth > 0.05) & _outside(alpha)
    assert np.abs(over - photo)[region].mean() < 0.02, "the floor darkened as the photo's was"
    plain = cutout.outputs(photo, alpha, remove.TASK.make_options({"decontaminate": False}))
    assert set(plain) == {"result"} and (plain["result"][..., 3] == alpha).all(), "nothing kept unless asked"
    alpha_kept = cutout.outputs(photo, alpha, remove.TASK.make_options({"shadow": "keep", "result": "alpha"}))
    assert np.array_equal(alpha_kept["result"], alpha), "the subject's alpha is the same with the option"
    assert np.array_equal(alpha_kept["shadow"], matte)
    composite = cutout.cut_out(
        photo, alpha, remove.TASK.make_options({"shadow": "keep", "background": "white"}), shadow=matte
    )
    assert composite[region].mean() < 0.85 and composite[:20, :20].mean() > 0.99, "the shadow on the new background"


def test_shadow_option_text_is_checked():
    assert common.parse_shadow("KEEP") == cutout.KEEP and str(common.parse_shadow("1,2,3,0.5")) == "1,2,3,0.5"
    with pytest.raises(Exception, match="neither keep nor DY,DX,BLUR,OPACITY"):
        common.parse_shadow("kep")


@pytest.mark.slow
def test_remove_shadow_keep_and_result_shadow_on_the_command_line(shared, tmp_path, capsys, monkeypatch):
    """A composite with a known shadow (bench.shadow_scenes), the real u2netp: --shadow keep carries the shadow as
    black at partial alpha beside the subject, --result shadow writes the matte alone at the photo's size, a
    composite is darkened there, and a misspelt value is one sentence and exit 2."""
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    from mattekit_bench import shadow_scenes

    scene = shadow_scenes.example(shared / "data")
    src = tmp_path / "photo.png"
    io.write_image(src, scene.photo)
    common = [str(src), "--model", "u2netp"]
    assert main(["remove", *common, "-o", str(tmp_path / "plain.png")]) == 0
    assert main(["remove", *common, "--shadow", "keep", "-o", str(tmp_path / "kept.png")]) == 0
    assert main(["remove", *common, "--result", "shadow"]) == 0
    assert main(["remove", *common, "--shadow", "keep", "--background", "white", "-o", str(tmp_path / "c.png")]) == 0
    plain, kept = io.read_image(tmp_path / "plain.png").pixels, io.read_image(tmp_path / "kept.png").pixels
    matte = io.read_image(tmp_path / "photo_shadow.png")
    assert not matte.has_alpha and matte.pixels.shape[:2] == scene.photo.shape[:2]
    region = (scene.shadow > 0.2) & (scene.alpha < 0.01)
    assert region.sum() > 500
    assert plain[..., 3][region].mean() < 0.05 < 0.15 < kept[..., 3][region].mean(), "the shadow beside the subject"
    assert kept[..., :3][region].mean() < 0.05, "as black"
    assert matte.pixels[..., 0][region].mean() > 0.15
    composite = io.read_image(tmp_path / "c.png").pixels
    assert composite[region].mean() < 0.9 and composite[scene.shadow + scene.alpha < 0.01].mean() > 0.97
    import mattekit  # the Python API: the same options, the matte as a result kind

    photo = io.read_image(src).pixels  # the file's 8-bit values, as the command read them
    by_api = mattekit.remove_background(photo, model="u2netp", result="shadow")
    assert by_api.shape == scene.alpha.shape and np.abs(by_api - matte.pixels[..., 0]).max() < 2 / 255
    cut = mattekit.remove_background(photo, model="u2netp", shadow="keep")
    assert np.abs(cut[..., 3] - kept[..., 3]).max() < 2 / 255
    capsys.readouterr()
    assert main(["remove", *common, "--shadow", "kep", "-o", str(tmp_path / "bad.png")]) == 2
    assert "neither keep nor DY,DX,BLUR,OPACITY" in capsys.readouterr().err
    assert not (tmp_path / "bad.png").exists()


def test_an_empty_shadow_result_says_no_shadow_was_found_not_no_subject():
    """Issue 91: `--result shadow` whose shadow matte came out empty warned "no subject was found", though the
    subject was (the matte holds the shadow alone); now the note says no shadow was found. A cut-out's note is kept."""
    from mattekit.running.runner import transparent_note

    empty = {remove.TASK.outputs[0].name: np.zeros((4, 4), np.float32)}
    assert transparent_note(remove.TASK, empty, remove.TASK.make_options({"result": "shadow"})) == (
        "the result is empty (no shadow of the subject was found in the photo)."
    )
    cut = {remove.TASK.outputs[0].name: np.zeros((4, 4, 4), np.float32)}
    assert "(no subject was found)" in transparent_note(remove.TASK, cut, remove.TASK.make_options({}))


def _hair(cast: bool):
    """(photo, the model's alpha, the true shadow): :func:`_scene`'s subject with brown hair, whose fringe of strands
    (the hair's colour mixed with the floor at up to 0.7, 10 px wide, over the top half) the model's alpha leaves
    out, as it often does."""
    photo, alpha, truth = _scene(cast=cast)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    outside = cv2.distanceTransform((alpha < 0.5).astype(np.uint8), cv2.DIST_L2, 5)
    strands = 0.5 + 0.5 * np.cos(np.arctan2(ys - 200, xs - 200) * 90)  # thin radial strands
    fringe = 0.7 * strands * np.clip(1.0 - outside / 10.0, 0.0, 1.0) * (outside > 0) * (ys < 200)
    hair = np.float32([0.3, 0.16, 0.07])
    photo = np.where(alpha[..., None] > 0.5, hair, photo)
    photo = hair * fringe[..., None] + photo * (1.0 - fringe[..., None])
    return photo.astype(np.float32), alpha, truth, fringe


def test_a_hair_fringe_outside_the_models_alpha_is_not_taken_for_shadow():
    """Hair's fringe is the subject's colour mixed with the surface, darker than it and hugging the outline; a
    shadow is the surface darkened. Brown hair on a beige floor is nearly a darker copy of it (10 degrees apart in
    RGB), the hardest case for colour: without a shadow the matte over the fringe is faint and rarely a region
    (the old estimate: a ring, mean 0.14, 61 % of it a region); with a shadow beside it, the shadow is found."""
    photo, alpha, _, fringe = _hair(cast=False)
    matte = shadow.estimate(photo, alpha)
    strands = fringe > 0.05
    assert matte[strands].mean() < 0.05 and (matte[strands] >= 0.1).mean() < 0.25, "no ring of shadow"
    photo, alpha, truth, _ = _hair(cast=True)
    matte = shadow.estimate(photo, alpha)
    found, wanted = (matte >= 0.1) & _outside(alpha), (truth >= 0.1) & _outside(alpha)
    assert (found & wanted).sum() / (found | wanted).sum() >= 0.75, "the shadow next to the hair still found"


def _lit_rim(width: float = 4.0):
    """(photo, alpha, true shadow, rim): :func:`_scene` whose subject has its own darker edge, of the floor's hue,
    ``width`` px just outside the model's alpha on its upper left (the lit side, away from the shadow laid down to
    its lower right), as a banana's or a book's rim lit from above."""
    photo, alpha, truth = _scene()
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    outside = cv2.distanceTransform((alpha < 0.5).astype(np.uint8), cv2.DIST_L2, 5)
    rim = (outside > 0) & (outside <= width) & ((xs - 200) / 45 + (ys - 200) / 90 < -0.5)
    return np.where(rim[..., None], photo * 0.6, photo).astype(np.float32), alpha, truth, rim


def test_the_subjects_own_rim_on_its_lit_side_is_not_taken_for_shadow():
    """One light casts the shadow to one side: a thin dark line hugging the outline on the other side is the
    subject's own edge of nearly the floor's hue (the old estimate: a line along the lit edge, mean 0.21), its matte
    near empty; the shadow on the far side is kept whole."""
    photo, alpha, truth, rim = _lit_rim()
    matte = shadow.estimate(photo, alpha)
    assert matte[rim].mean() < 0.05, matte[rim].mean()
    found, wanted = (matte >= 0.1) & _outside(alpha), (truth >= 0.1) & _outside(alpha)
    assert (found & wanted).sum() / (found | wanted).sum() >= 0.75, "the shadow on the other side still found"
