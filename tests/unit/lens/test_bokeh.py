"""Depth of field: the lens model on synthetic scenes, the depth task (stand-in weights), the
mask mode on a real portrait, and the ``mattekit bokeh`` command."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mattekit import catalog, io, lens, nets, runtime
from mattekit.engines import inputs
from mattekit.ops.pixels import srgb_to_linear
from mattekit.cli import main
from mattekit.tasks import bokeh
from mattekit.lens.disparity import estimate_depth, normalize_depth
from mattekit.options import model_choice

H, W = 200, 280
FG = (slice(60, 140), slice(90, 190))  # the foreground square
RADIUS = 12.0  # background blur for a full disparity difference (a ladder radius: layer 9)


def _gradient_energy(img: np.ndarray, region: np.ndarray) -> float:
    gy, gx = np.gradient(img.astype(np.float64), axis=(0, 1))
    return float(((gx**2 + gy**2).sum(-1))[region].sum())


def _ring(inner: int, outer: int) -> np.ndarray:
    """Pixels inside the foreground square whose distance to its edge is in [inner, outer)."""
    square = np.zeros((H, W), np.uint8)
    square[FG] = 1
    dist = cv2.distanceTransform(square, cv2.DIST_L2, 3)
    return (dist > inner) & (dist <= outer)


@pytest.fixture(scope="module")
def scene():
    """Textured background (blue/orange checker + noise) at depth 0, a green textured square at depth 1."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:H, :W]
    check = ((yy // 6 + xx // 6) % 2).astype(np.float32)
    image = np.stack([0.9 * check, 0.35 + 0 * check, 0.9 * (1 - check)], -1)
    image += rng.normal(0, 0.03, image.shape)
    fg = np.zeros((H, W), bool)
    fg[FG] = True
    image[fg] = np.array([0.3, 0.7, 0.3]) + rng.normal(0, 0.12, (fg.sum(), 3))
    depth = fg.astype(np.float32)
    return np.clip(image, 0, 1).astype(np.float32), depth, fg


def test_layers_and_kernels():
    for j in range(-20, 21):
        assert lens.layer_position(np.float32(lens.layer_radius(j)) * np.sign(j or 1)) == pytest.approx(j, abs=1e-4)
    disc = lens.aperture_kernel(10.0)
    assert disc.sum() == pytest.approx(1.0, abs=1e-5)
    assert 1 / disc.max() == pytest.approx(np.pi * 100, rel=0.02)  # area covered, in pixels
    assert np.allclose(disc, disc[::-1, ::-1])
    penta = lens.aperture_kernel(10.0, blades=5, rotation=10)
    assert penta.sum() == pytest.approx(1.0, abs=1e-5)
    assert 1 / penta.max() == pytest.approx(np.pi * 100, rel=0.02)  # same area as the disc
    assert not np.allclose(penta, penta[::-1, ::-1])  # an odd polygon is not point-symmetric
    assert lens.aperture_kernel(0.3).shape == (1, 1)


def test_sharp_foreground_stays_sharp_without_bleed(scene):
    image, depth, fg = scene
    out = lens.render(image, depth, 1.0, RADIUS, highlight_gain=2.0)
    inner = cv2.erode(fg.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    kept = _gradient_energy(out, inner) / _gradient_energy(image, inner)
    far_bg = cv2.dilate(fg.astype(np.uint8), np.ones((41, 41), np.uint8)) == 0
    bg_left = _gradient_energy(out, far_bg) / _gradient_energy(image, far_bg)
    band = _ring(0, 3)  # the 3-pixel band inside the foreground edge
    bleed = float(np.abs(out[band] - image[band]).max())
    print(
        f"\nforeground gradient energy kept {kept:.4f}; background left {bg_left:.4f}; "
        f"max change in the 3-px band inside the edge {bleed:.2e} ({bleed * 255:.3f}/255)"
    )
    assert kept == pytest.approx(1.0, abs=1e-3)
    assert bg_left < 0.1
    assert bleed < 0.5 / 255  # no background colour reaches the sharp foreground's edge


def test_background_blur_radius_is_the_circle_of_confusion(scene):
    """Single bright pixels on the background spread into a disc of the expected radius."""
    _, depth, _ = scene
    image = np.full((H, W, 3), 0.05, np.float32)
    points = [(25, 30), (25, 250), (175, 40), (175, 240)]
    for y, x in points:
        image[y, x] = 1.0
    out = lens.render(image, depth, 1.0, RADIUS, highlight_gain=0.0)
    excess = srgb_to_linear(out)[..., 1] - srgb_to_linear(np.float32(0.05))
    radii, energy = [], []
    for y, x in points:
        win = excess[max(0, y - 24) : y + 25, max(0, x - 24) : x + 25]
        yy, xx = np.mgrid[max(0, y - 24) : y + 25, max(0, x - 24) : x + 25]
        w = np.clip(win, 0, None)
        d2 = (yy - y) ** 2 + (xx - x) ** 2
        radii.append(float(np.sqrt(2 * (w * d2).sum() / w.sum())))  # a uniform disc: E[d^2] = r^2 / 2
        energy.append(float(w.sum()))
    print(
        f"\nmeasured blur radius {np.mean(radii):.2f} px (expected {RADIUS:g}); per point {np.round(radii, 2)}; "
        f"light kept {np.round(energy, 3)} (expected {1 - float(srgb_to_linear(np.float32(0.05))):.3f})"
    )
    assert np.mean(radii) == pytest.approx(RADIUS, rel=0.08)
    # points near a border lose part of their disc to the reflection; interior energy is kept
    assert max(energy) == pytest.approx(float(1.0 - srgb_to_linear(np.float32(0.05))), rel=0.05)


def test_blurred_foreground_spills_over_sharp_background(scene):
    image, depth, fg = scene
    out = lens.render(image, depth, 0.0, RADIUS, highlight_gain=0.0)
    far = cv2.dilate(fg.astype(np.uint8), np.ones((2 * 16 + 1,) * 2, np.uint8)) == 0
    assert np.abs(out[far] - image[far]).max() < 1e-4  # the focused background is untouched
    outside = (cv2.dilate(fg.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0) & ~fg  # 1..4 px outside
    green = out[outside][:, 1] - image[outside][:, 1]
    assert green.mean() > 0.08  # the green square's light spreads over its surroundings
    inner = cv2.erode(fg.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert _gradient_energy(out, inner) / _gradient_energy(image, inner) < 0.1


def test_highlights_and_alpha(scene):
    image, depth, fg = scene
    rgba = np.concatenate([image, np.linspace(0, 1, H * W, dtype=np.float32).reshape(H, W, 1)], -1)
    lit = rgba.copy()
    lit[20:23, 20:23, :3] = 1.0  # a small light on the background
    plain = lens.render(lit, depth, 1.0, RADIUS, highlight_gain=0.0)
    boosted = lens.render(lit, depth, 1.0, RADIUS, highlight_gain=3.0)
    assert np.array_equal(boosted[..., 3], rgba[..., 3])
    ball = (slice(12, 31), slice(12, 31))
    assert boosted[ball][..., :3].mean() > plain[ball][..., :3].mean() + 0.02
    assert np.abs(boosted[fg][:, :3] - lit[fg][:, :3]).max() < 1e-4  # the boost is undone where nothing blurs


def test_depth_policy_matches_upstream(golden, shared):
    entry = catalog.load().default("depth")
    assert entry.licence == "Apache-2.0" and entry.weights.url.startswith("https://huggingface.co/depth-anything/")
    assert entry.input.net_size(450, 600) == (518, 686)
    picture = io.read_image(shared / "data" / "grabcut50" / "im" / "person4.jpg")
    x = inputs.prepare(
        dataclasses.replace(entry, input=dataclasses.replace(entry.input, short_side=168)), picture.pixels
    )
    g = golden("depth_anything_v2_vits")
    assert np.abs(x.numpy() - g.arrays["nonsq_input"]).max() < 1e-4  # upstream image2tensor, input_size=168


@pytest.fixture
def small_depth(golden, tmp_path, monkeypatch):
    """The catalog's depth entry with a 168-px short side (as the golden's ``nonsq_`` input) under
    the name 'test-depth', and a stand-in weights file for it: the real path, at a tenth of the cost."""
    cat = catalog.load()
    entry = cat.default("depth")
    small = dataclasses.replace(entry, name="test-depth", input=dataclasses.replace(entry.input, short_side=168))
    monkeypatch.setitem(cat.models, "test-depth", small)
    net = nets.build(entry.net, **entry.kwargs)
    path = tmp_path / "depth_anything_v2_vits.pth"
    torch.save(golden("depth_anything_v2_vits").pseudo_state_dict(net), path)
    return small, str(path)


@pytest.mark.slow
def test_estimate_depth_with_standin_weights(small_depth, shared):
    entry, weights = small_depth
    image = io.read_image(shared / "data" / "grabcut50" / "im" / "person4.jpg").pixels
    depth_model = runtime.ModelCache().get(model_choice("test-depth", "depth"), "cpu", weights)
    raw = estimate_depth(depth_model, image, normalize=False)
    net = nets.build(entry.net, **entry.kwargs)
    net.load_state_dict(torch.load(weights, weights_only=True), strict=True)
    with torch.no_grad():
        low = net.eval()(inputs.prepare(entry, image))
    assert low.shape == (1, 168, 224)
    expected = F.interpolate(low[:, None], image.shape[:2], mode="bilinear", align_corners=True)[0, 0].numpy()
    assert raw.shape == image.shape[:2]
    assert np.abs(raw - expected).max() <= 1e-4 * max(1.0, float(np.abs(expected).max()))
    norm = normalize_depth(raw)  # what estimate_depth returns by default
    assert norm.min() == 0.0 and norm.max() == pytest.approx(1.0)
    out = bokeh.bokeh(image, bokeh.TASK.make_options({"focus": "300,200"}), depth_model=depth_model)
    assert out.shape == image.shape and np.isfinite(out).all()


@pytest.fixture
def mirror(shared, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))


def test_mask_mode_on_a_real_portrait(mirror, shared, tmp_path):
    picture = io.read_image(shared / "data" / "grabcut50" / "im" / "person1.jpg")
    gt = cv2.imread(str(shared / "data" / "grabcut50" / "gt" / "person1.png"), cv2.IMREAD_GRAYSCALE)
    sinet = runtime.ModelCache().get(model_choice("sinet-portrait", "segment"), "cpu")
    out = bokeh.bokeh(picture.pixels, bokeh.BokehOptions(mask_only=True), segment_model=sinet)
    io.write_image(tmp_path / "person1_bokeh.png", out)
    face = cv2.erode((gt == 255).astype(np.uint8), np.ones((21, 21), np.uint8)).astype(bool)
    face[300:] = False  # head and neck: the part a portrait model finds reliably
    background = cv2.erode((gt == 0).astype(np.uint8), np.ones((41, 41), np.uint8)).astype(bool)
    change = float(np.abs(out - picture.pixels)[face].mean())
    left = _gradient_energy(out, background) / _gradient_energy(picture.pixels, background)
    print(
        f"\nperson1 mask mode: mean change on the face {change * 255:.2f}/255; background gradient energy left {left:.3f}"
    )
    assert change < 2 / 255
    assert left < 0.2


def test_bokeh_command(mirror, shared, tmp_path, capsys):
    src = shared / "data" / "grabcut50" / "im"
    out = tmp_path / "one.png"
    assert (
        main(
            [
                "bokeh",
                str(src / "person1.jpg"),
                "-o",
                str(out),
                "--mask-only",
                "--segment-model",
                "sinet-portrait",
                "--device",
                "cpu",
                "--blades",
                "6",
                "--f-number",
                "2",
            ]
        )
        == 0
    )
    assert io.read_image(out).pixels.shape == (450, 600, 3)
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("person2.png", "person3.jpg"):
        (folder / name).write_bytes((src / name).read_bytes())
    assert (
        main(
            [
                "bokeh",
                str(folder),
                "-o",
                str(tmp_path / "out"),
                "--mask-only",
                "--segment-model",
                "sinet-portrait",
                "--focus",
                "50%,50%",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["person2.png", "person3.jpg"]
    capsys.readouterr()
    assert (
        main(
            [
                "bokeh",
                str(src / "person1.jpg"),
                "-o",
                str(tmp_path / "x.png"),
                "--mask-only",
                "--segment-model",
                "sinet-portrait",
                "--focus",
                "9000,1",
            ]
        )
        == 2
    )
    assert "outside" in capsys.readouterr().err


def test_missing_depth_weights_is_one_sentence(shared, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    monkeypatch.delenv("MATTEKIT_MIRROR", raising=False)
    target = tmp_path / "out.png"
    code = main(
        ["bokeh", str(shared / "data" / "grabcut50" / "im" / "person1.jpg"), "-o", str(target), "--focus", "10,10"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--mask-only" in err and "Traceback" not in err and not target.exists()
