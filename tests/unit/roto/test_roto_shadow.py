"""Roto's ``--shadow``: the shadow the subject casts in each frame of the plate, as a matte sequence and as the
``shadow.A`` channel of the ``--layers`` EXRs, steady from frame to frame where the plate is."""

from __future__ import annotations

import cv2
import numpy as np
import OpenImageIO as oiio
import pytest

import mattekit
from mattekit import io
from mattekit.cli import main

pytestmark = pytest.mark.slow


def _plate(shared, folder, frames=4):
    """A plate folder/f.####.png: a composite with a known shadow (bench.shadow_scenes), the subject and its shadow
    moving 2 px right a frame; (the plate pattern, the true shadow of the first frame, the subject's true alpha)."""
    from mattekit_bench import shadow_scenes

    scene = shadow_scenes.example(shared / "data")
    folder.mkdir(parents=True)
    for n in range(frames):
        io.write_image(folder / f"f.{1001 + n:04d}.png", np.roll(scene.photo, 2 * n, axis=1))
    return str(folder / "f.####.png"), scene.shadow, scene.alpha


def _channel(path, name):
    """One channel of an EXR (H x W float32)."""
    image = oiio.ImageInput.open(str(path))
    try:
        names = list(image.spec().channelnames)
        pixels = image.read_image(0, 0, 0, len(names), "float")
    finally:
        image.close()
    return pixels[..., names.index(name)], names


def test_roto_writes_the_shadow_as_mattes_and_a_shadow_channel_steady_across_frames(shared, tmp_path, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    plate, truth, alpha = _plate(shared, tmp_path / "plate")
    out = tmp_path / "out"
    mattekit.rotoscope(
        plate,
        str(out / "m.####.png"),
        model="u2netp",
        shadow=str(out / "s.####.png"),
        layers=str(out / "comp.####.exr"),
    )
    region = (truth > 0.2) & (alpha < 0.01)
    shadows = [io.read_image(out / f"s.{1001 + n:04d}.png").pixels for n in range(4)]
    assert all(s.ndim == 2 or np.array_equal(s[..., 0], s[..., -1]) for s in shadows), "grey"
    shadows = [s if s.ndim == 2 else s[..., 0] for s in shadows]
    assert shadows[0][region].mean() > 0.15, "the subject's shadow"
    assert shadows[0][(truth < 0.01) & (alpha < 0.01)].mean() < 0.01, "nothing elsewhere"
    moved = [
        np.abs(np.roll(shadows[0], 2 * n, axis=1) - shadows[n])[np.roll(region, 2 * n, axis=1)].mean()
        for n in range(1, 4)
    ]
    assert max(moved) < 0.03, f"the shadow follows the plate frame to frame: {moved}"
    layered, names = _channel(out / "comp.1001.exr", "shadow.A")
    assert names[:8] == ["R", "G", "B", "A", "fg.R", "fg.G", "fg.B", "fg.A"] and names[8:] == ["shadow.A"], names
    assert np.abs(layered - shadows[0]).max() < 1 / 255 + 2e-3


def _noisy_still_plate(shared, folder, frames=8):
    """A still plate folder/f.####.png: the composite of :func:`_plate` with fresh noise on every frame (a grainy
    floor: the per-frame shadow estimate flickers); (the plate pattern, the true shadow, the subject's true alpha)."""
    from mattekit_bench import shadow_scenes

    scene = shadow_scenes.example(shared / "data")
    rng = np.random.default_rng(11)
    folder.mkdir(parents=True)
    for n in range(frames):
        grain = rng.normal(0.0, 0.05, scene.photo.shape[:2])[..., None] * (scene.alpha < 0.01)[..., None]
        io.write_image(folder / f"f.{1001 + n:04d}.png", np.clip(scene.photo * (1 + grain), 0, 1).astype(np.float32))
    return str(folder / "f.####.png"), scene.shadow, scene.alpha


def _flicker(mattes: list[np.ndarray], region: np.ndarray) -> float:
    """Mean |difference| of consecutive frames' mattes over ``region``."""
    return float(np.mean([np.abs(b - a)[region].mean() for a, b in zip(mattes, mattes[1:])]))


def test_roto_shadow_is_filtered_over_time_as_the_mattes_are(shared, tmp_path, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    plate, truth, alpha = _noisy_still_plate(shared, tmp_path / "plate")
    shadows = {}
    for kind, steady in (("filtered", True), ("per-frame", False)):
        out = tmp_path / kind
        mattekit.rotoscope(
            plate, str(out / "m.####.png"), model="u2netp", shadow=str(out / "s.####.png"), temporal=steady
        )
        shadows[kind] = [io.read_image(out / f"s.{1001 + n:04d}.png").pixels for n in range(8)]
        shadows[kind] = [s if s.ndim == 2 else s[..., 0] for s in shadows[kind]]
    near = cv2.dilate((truth > 0.05).astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    region = near & (alpha < 0.01)
    before, after = _flicker(shadows["per-frame"], region), _flicker(shadows["filtered"], region)
    assert after < 0.6 * before, f"the shadow's flicker: {before:.4f} per frame, {after:.4f} filtered"
    dark = (truth > 0.2) & (alpha < 0.01)
    still = [np.mean([s[dark].mean() for s in shadows[kind]]) for kind in ("filtered", "per-frame")]
    assert abs(still[0] - still[1]) < 0.02, f"the shadow stays as dark where it is: {still}"


def test_roto_shadow_with_several_objects_is_one_sentence(shared, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    plate, _, _ = _plate(shared, tmp_path / "plate", frames=1)
    code = main(
        [
            "roto",
            plate,
            "-o",
            str(tmp_path / "m.####.png"),
            "--model",
            "u2netp",
            "--shadow",
            str(tmp_path / "s.####.png"),
            "--box",
            "1001:0,0,100,100@a",
            "--box",
            "1001:200,0,300,100@b",
        ]
    )
    assert code == 2
    assert "takes one subject" in capsys.readouterr().err


def test_a_resumed_job_with_another_shadow_method_reuses_no_frame(shared, tmp_path, monkeypatch):
    """The job's settings (its fingerprint) hold the shadow estimate's method and constants: a run whose estimate
    differs (here its threshold) is refused rather than taking the frames of the old one for finished, and with
    --overwrite it computes them again."""
    from mattekit import roto
    from mattekit.errors import OutputError
    from mattekit.matting import shadow
    from mattekit.tasks.roto import RotoSpec

    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    plate, _, _ = _plate(shared, tmp_path / "plate", frames=2)
    out = tmp_path / "out"
    options = dict(plate=plate, output=str(out / "m.####.png"), model="u2netp", shadow=str(out / "s.####.png"))
    assert roto.RotoJob(RotoSpec.from_dict(options)).run().computed == [1001, 1002]
    assert roto.RotoJob(RotoSpec.from_dict(options)).run().skipped == [1001, 1002], "the same settings: resumed"
    before = [(out / f"s.{n}.png").read_bytes() for n in (1001, 1002)]
    monkeypatch.setattr(shadow, "HIGH", shadow.HIGH + 0.1)  # another version of the estimate
    with pytest.raises(OutputError, match="other settings.*shadow"):
        roto.RotoJob(RotoSpec.from_dict(options)).run()
    assert [(out / f"s.{n}.png").read_bytes() for n in (1001, 1002)] == before, "refused: nothing touched"
    redone = roto.RotoJob(RotoSpec.from_dict({**options, "overwrite": True})).run()
    assert redone.computed == [1001, 1002]
