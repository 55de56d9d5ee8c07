"""Background removal end to end: the library call and the `mattekit remove` command, real weights."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from mattekit import io
from mattekit_bench import metrics
from mattekit.ops.pixels import quantise, unit_float
from mattekit.cli import main
from mattekit.tasks import remove
from mask_scores import gt_mask
from console_runs import one_sentence, run_cli


def test_sinet_portrait_cutout_matches_ground_truth(shared, mirror, tmp_path):
    src = shared / "data/grabcut50/im/person1.jpg"
    out = tmp_path / "person1.png"
    assert main(["remove", str(src), "-o", str(out), "--model", "sinet-portrait"]) == 0
    rgba = io.read_image(out)
    assert rgba.has_alpha and rgba.pixels.shape[:2] == io.read_image(src).pixels.shape[:2]
    score = metrics.iou(rgba.pixels[..., 3], gt_mask(shared, "person1"))
    print(f"sinet-portrait person1 IoU {score:.4f}")
    assert score > 0.85
    # The colour under the subject is the photo's own colour.
    inside = rgba.pixels[..., 3] > 0.99
    assert np.abs(rgba.pixels[..., :3][inside] - io.read_image(src).pixels[..., :3][inside]).max() < 0.02


@pytest.mark.slow
def test_a_matting_model_gives_remove_its_own_soft_alpha(shared, mirror, tmp_path):
    """A trimap-free matting network (here MODNet's real weights; BiRefNet-matting alike) answers
    `remove` with its own alpha, exactly as `matte --model` gives it: soft, not rounded nor matted again; a box
    only cuts away what lies outside it."""
    import mattekit

    photo = io.read_image(shared / "data/grabcut50/im/person1.jpg").pixels[..., :3]
    removed = mattekit.remove_background(photo, model="modnet-portrait", result="alpha")
    matted = mattekit.matte(photo, model="modnet-portrait", result="alpha")
    soft = float(((removed > 0.02) & (removed < 0.98)).mean())
    print(
        f"\nremove --model modnet-portrait on person1: max |remove - matte| {np.abs(removed - matted).max():.2e}, "
        f"{soft:.3%} soft pixels, IoU {metrics.iou(removed, gt_mask(shared, 'person1')):.4f}"
    )
    assert np.abs(removed - matted).max() < 1e-6 and soft > 0.005
    h, w = photo.shape[:2]
    boxed = mattekit.remove_background(
        photo, model="people", hint_model="none", result="alpha", box=f"0,0,{w // 2},{h}"
    )
    assert not boxed[:, w // 2 :].any() and boxed[:, : w // 2].any()
    for model in ("rvm-people", "sinet-portrait"):  # the other kinds still take their own paths
        assert (
            main(
                [
                    "remove",
                    str(shared / "data/grabcut50/im/person1.jpg"),
                    "-o",
                    str(tmp_path / f"{model}.png"),
                    "--model",
                    model,
                ]
            )
            == 0
        )
    assert main(["remove", str(shared / "data/grabcut50/im/person1.jpg"), "--model", "realesr-general-x4v3"]) == 2


def test_output_modes(shared, mirror, tmp_path):
    src = shared / "data/grabcut50/im/person2.png"
    mask_out, bg_out, crop_out = tmp_path / "m.png", tmp_path / "bg.png", tmp_path / "c.png"
    assert main(["remove", str(src), "-o", str(mask_out), "--model", "extremec3-portrait", "--result", "alpha"]) == 0
    assert (
        main(["remove", str(src), "-o", str(bg_out), "--model", "extremec3-portrait", "--background", "#00ff00"]) == 0
    )
    assert main(["remove", str(src), "-o", str(crop_out), "--model", "extremec3-portrait", "--crop", "0"]) == 0
    mask = io.read_image(mask_out).pixels
    assert not io.read_image(mask_out).has_alpha
    composite = io.read_image(bg_out).pixels
    background = mask[..., 0] < 0.01
    assert np.allclose(composite[background], [0, 1, 0], atol=0.01)
    cropped = io.read_image(crop_out).pixels
    full = io.read_image(src).pixels
    assert cropped.shape[0] < full.shape[0] or cropped.shape[1] < full.shape[1]


def test_sixteen_bit_input_gives_sixteen_bit_output(shared, mirror, tmp_path):
    image = io.read_image(shared / "data/grabcut50/im/person1.jpg").pixels
    src = tmp_path / "deep.png"
    io.write_image(src, image, bit_depth=16)
    assert main(["remove", str(src), "--model", "sinet-portrait"]) == 0
    assert io.read_image(tmp_path / "deep_cutout.png").bit_depth == 16


def _disc_photo(height, width, dtype=np.uint8, channels=3, seed=0):
    """A noisy photo of an elliptic subject (the middle sixth of the frame) and a blurred 320 x 320
    prediction of it: (photo as ``dtype`` H x W x ``channels``, prediction float32 320 x 320)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    inside = ((yy - height / 2) / (0.12 * height)) ** 2 + ((xx - width / 2) / (0.08 * width)) ** 2 < 1
    colours = np.where(inside[..., None], np.float32([0.8, 0.3, 0.25]), np.float32([0.15, 0.5, 0.8]))
    colours = np.clip(colours + rng.normal(0, 0.04, colours.shape), 0, 1)
    if channels == 4:
        colours = np.concatenate([colours, np.where(xx < width // 10, 0.5, 1.0)[..., None]], axis=2)
    photo = quantise(colours, 16 if dtype == np.uint16 else 8)
    low = cv2.resize(
        cv2.GaussianBlur(inside.astype(np.float32), (0, 0), 0.01 * width), (320, 320), interpolation=cv2.INTER_AREA
    )
    return photo, low


@pytest.mark.parametrize("dtype, channels", [(np.uint8, 3), (np.uint16, 3), (np.uint8, 4)])
def test_an_integer_photo_gives_the_float_photos_cutout(dtype, channels):
    """remove keeps an 8/16-bit photo as integers (the CLI reads it so): its RGBA cut-out, of the photo's
    dtype, is exactly the float pipeline's rounded as the PNG writer rounds it (refinement, matting and
    decontamination on); other results are float as before."""
    photo, low = _disc_photo(300, 400, dtype, channels)
    options = remove.TASK.make_options({})
    as_ints = remove.TASK.finish({}, {"image": photo}, options, None, low)["result"]
    as_floats = remove.TASK.finish({}, {"image": unit_float(photo)}, options, None, low)["result"]
    assert as_ints.dtype == dtype and as_ints.shape == photo.shape[:2] + (4,)
    assert np.array_equal(as_ints, quantise(as_floats, 16 if dtype == np.uint16 else 8))
    alpha = remove.TASK.finish({}, {"image": photo}, remove.TASK.make_options({"result": "alpha"}), None, low)
    assert alpha["result"].dtype == np.float32 and np.array_equal(alpha["result"], as_floats[..., 3])


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
@pytest.mark.parametrize("matting, bound", [(False, 10), (True, 28)])
def test_cutout_memory_follows_the_photos_integers(tmp_path, matting, bound):
    """A 6 MP 8-bit cut-out, from the full-size mask to the written PNG, allocates under ``bound`` bytes
    per pixel (traced): the mask (4) and the uint8 RGBA result (4), plus, with matting, the matting
    windows and the decontamination's coarser levels. A float copy of the photo (12 bytes per pixel)
    or a float RGBA result (16) would not fit (measured 8.7 and 24.7)."""
    import tracemalloc

    photo, low = _disc_photo(2000, 3000)
    options = remove.TASK.make_options({"refine": matting, "matting": matting})
    tracemalloc.start()
    try:
        result = remove.TASK.finish({}, {"image": photo}, options, None, low)["result"]
        io.write_image(tmp_path / "cut.png", result)
        del result
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < bound * photo.shape[0] * photo.shape[1]


def test_folder_with_a_broken_image_keeps_the_others(shared, mirror, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("person1.jpg", "person3.jpg"):
        shutil.copy(shared / "data/grabcut50/im" / name, folder / name)
    (folder / "broken.jpg").write_bytes((folder / "person1.jpg").read_bytes()[:2000])
    out = tmp_path / "out"
    assert main(["remove", str(folder), "-o", str(out), "--model", "extremec3-portrait"]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["person1.png", "person3.png"]
    err = capsys.readouterr().err
    assert "1 of 3 images failed" in err and "broken.jpg" in err
    # --skip-existing leaves finished outputs alone.
    before = (out / "person1.png").stat().st_mtime_ns
    (folder / "broken.jpg").unlink()
    assert main(["remove", str(folder), "-o", str(out), "--model", "extremec3-portrait", "--skip-existing"]) == 0
    assert (out / "person1.png").stat().st_mtime_ns == before


def test_error_unreadable_file(tmp_path, mirror):
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"this is not a jpeg")
    code, err = run_cli("remove", str(bad), "--model", "csnet-sod")
    assert code == 2 and "photo.jpg" in one_sentence(err)


def test_error_missing_file(tmp_path, mirror):
    code, err = run_cli("remove", str(tmp_path / "nope.jpg"), "--model", "csnet-sod")
    assert code == 2 and "nope.jpg does not exist" in one_sentence(err)


def test_error_unknown_model(shared, mirror):
    code, err = run_cli("remove", str(shared / "data/grabcut50/im/person1.jpg"), "--model", "u3net")
    assert code == 2 and "Unknown model 'u3net'" in one_sentence(err)


def test_error_no_weights_offline(shared, tmp_path):
    env = {"MATTEKIT_OFFLINE": "1", "MATTEKIT_MIRROR": "", "MATTEKIT_HOME": str(tmp_path / "home")}
    code, err = run_cli("remove", str(shared / "data/grabcut50/im/person1.jpg"), "--model", "sinet-portrait", env=env)
    line = one_sentence(err)
    assert code == 2 and "sinet-portrait" in line and "MATTEKIT_OFFLINE" in line


def test_error_output_not_writable(shared, mirror, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    code, err = run_cli(
        "remove",
        str(shared / "data/grabcut50/im/person1.jpg"),
        "-o",
        str(blocker / "sub" / "out.png"),
        "--model",
        "extremec3-portrait",
    )
    assert code == 2 and "output folder" in one_sentence(err)


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_error_device_missing(shared, mirror):
    code, err = run_cli(
        "remove", str(shared / "data/grabcut50/im/person1.jpg"), "--model", "csnet-sod", "--device", "cuda:7"
    )
    assert code == 2 and "cuda:7" in one_sentence(err)


def test_noncommercial_model_prints_its_licence(shared, mirror, tmp_path):
    code, err = run_cli(
        "remove", str(shared / "data/grabcut50/im/teddy.jpg"), "-o", str(tmp_path / "t.png"), "--model", "csnet-sod"
    )
    assert code == 0 and "non-commercial" in err
