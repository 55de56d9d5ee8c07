"""What a roto job's mattes are made of: the temporal switch and the model's window, u2netp's window and its 8-bit
input (as rembg makes it), refinement in small tiles, EXR mattes and RGBA, and the foreground plate's colours."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mattekit import roto
from mattekit.ops.resizing import resized_map
from mattekit.errors import OutputError
from mattekit.io import read_image
from mattekit.options import model_choice

from plates import MODEL, make_plate
from roto_runs import files_of, spec


def test_temporal_switch_and_settings_guard(shared, mirror, tmp_path):
    plate = make_plate(shared, tmp_path / "plate", 4)
    out = str(tmp_path / "out" / "m.####.png")
    roto.RotoJob(spec(plate, out, temporal=False)).run()
    per_frame = files_of(tmp_path / "out")
    with pytest.raises(OutputError, match="other settings"):
        roto.RotoJob(spec(plate, out)).run()
    assert files_of(tmp_path / "out") == per_frame  # refused: nothing touched
    redone = roto.RotoJob(spec(plate, out, overwrite=True)).run()
    assert redone.computed == [1001, 1002, 1003, 1004]
    assert files_of(tmp_path / "out") != per_frame
    # the per-frame mattes are what the per-frame network gives
    from mattekit.subject import answer

    pixels = read_image(tmp_path / "plate" / "plate.1002.png").pixels
    from mattekit import runtime

    expected = answer.predict_mask(runtime.ModelCache().get(model_choice(MODEL, "segment"), "cpu"), pixels)
    np.testing.assert_allclose(_matte(per_frame["m.1002.png"], tmp_path), expected, atol=0.5 / 65535 + 1e-6)


def test_the_temporal_window_is_the_models_unless_given(shared, mirror, tmp_path):
    """The filter's radius is the catalog's for the model (u2netp: 2, which keeps its roto at rembg's frame rate;
    others: 4) unless the job names one; 0 turns the filter off. u2netp's window also carries its flow's 2 refinement
    iterations and its refinement's factor (3); the others keep the preset's and 1."""
    plate = make_plate(shared, tmp_path / "plate", 2)
    out = str(tmp_path / "out" / "m.####.png")
    radius, window = {}, {}
    for model, given in (("u2netp", None), ("u2netp", 4), (MODEL, None), ("u2netp", 0)):
        job = roto.RotoJob(roto.RotoSpec(plate=plate, output=out, model=model, device="cpu", threads=1, radius=given))
        radius[model, given] = job.temporal.radius if job.temporal else 0
        if job.temporal:
            window[model, given] = (job.temporal.flow_refinement, job.temporal.refine_above)
    assert radius == {("u2netp", None): 2, ("u2netp", 4): 4, (MODEL, None): 4, ("u2netp", 0): 0}
    assert window == {("u2netp", None): (2, 3), ("u2netp", 4): (2, 3), (MODEL, None): (None, 1.0)}


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_with_u2netps_window_a_frame_up_to_3x_its_input_is_rounded_not_refined(shared, mirror, tmp_path, monkeypatch):
    """u2netp's catalog window replaces the per-frame refinement on frames up to 3x its 320-px input (DAVIS's 480p):
    such a frame's matte is the rounded upsampling; a frame 6x the input is still refined; without the window (or
    with another model's) refinement runs as before. The job hands the window's setting to its matte source."""
    from mattekit.roto import source as sources
    from mattekit.finish import refine

    rng = np.random.default_rng(8)
    for height, width, refined in ((480, 854, False), (1080, 1920, True)):
        image = (rng.random((height, width, 3)) * 0.2).astype(np.float32)
        yy, xx = np.mgrid[:height, :width] / (height / 480)
        subject = (yy - 300) ** 2 / 120**2 + (xx - 420) ** 2 / 90**2 < 1
        image[subject] += 0.7
        low = cv2.resize(subject.astype(np.float32), (320, 180), interpolation=cv2.INTER_AREA)
        rounded = refine.round_sure(resized_map(low, height, width, "lanczos"))
        with_window = refine.refine_mask(image, low, upsampling="lanczos", refine_above=3)
        without = refine.refine_mask(image, low, upsampling="lanczos")
        assert np.array_equal(with_window, without) == refined and np.array_equal(with_window, rounded) != refined
        assert not np.array_equal(without, rounded)  # (the refinement does change these frames)
    given = []
    made = sources.MatteSource.__init__
    monkeypatch.setattr(
        sources.MatteSource, "__init__", lambda self, *a, **kw: given.append(kw["refine_above"]) or made(self, *a, **kw)
    )
    plate = make_plate(shared, tmp_path / "plate", 2)
    for model, temporal in (("u2netp", True), ("u2netp", False), (MODEL, True)):
        out = tmp_path / f"out-{model}-{temporal}"
        roto.RotoJob(
            roto.RotoSpec(
                plate=plate, output=str(out / "m.####.png"), model=model, device="cpu", threads=1, temporal=temporal
            )
        ).run()
    assert given == [3, 1.0, 1.0]


def test_an_8_bit_plate_feeds_the_network_its_8_bits_as_rembg_does(shared, mirror, tmp_path):
    """u2netp's input from 8-bit frames is made from their 8-bit values, as rembg makes it: the input roto's per-frame
    path makes of a plate frame is, bit for bit, the input made of ``read_image(integers=True)``'s pixels (PIL's 8-bit
    Lanczos) and rembg's own preprocessing to float32 rounding; the plain per-frame matte roto writes is the network's
    answer on it. Checked on the input, which no engine changes; the mattes, which an engine's thread count or batch
    may move by a level on a rare pixel after u2netp's 8-bit floor, within a mean of 1e-4 (a fortieth of a level)."""
    from PIL import Image

    from mattekit import runtime
    from mattekit.roto.source import MatteSource, _MatteRun
    from mattekit.finish import refine

    plate = make_plate(shared, tmp_path / "plate", 2, sequence="blackswan", size=(427, 240))
    out = tmp_path / "out"
    job = roto.RotoJob(
        roto.RotoSpec(
            plate=plate,
            output=str(out / "m.####.png"),
            model="u2netp",
            device="cpu",
            threads=1,
            refine=False,
            temporal=False,
        )
    )
    job.run()
    source = MatteSource(job.plate, job.model, device="cpu", refine=False, threads=1)
    model = source.predictor
    runtime.set_threads(1)
    for frame in (1001, 1002):
        x, picture = _MatteRun(source, [frame], lambda *_: None, None, False).read(frame)
        x = np.asarray(x)
        stored = read_image(tmp_path / "plate" / f"plate.{frame}.png", integers=True).pixels
        assert stored.dtype == np.uint8 and np.array_equal(x, np.asarray(model.prepare(stored)))
        rembg = np.asarray(Image.fromarray(stored).resize((320, 320), Image.Resampling.LANCZOS), np.float64)
        rembg = (rembg / rembg.max() - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)
        np.testing.assert_allclose(x[0].transpose(1, 2, 0), rembg, rtol=0, atol=1e-5)
        want = refine.mask_from_prediction(
            picture.pixels, model(model.prepare(stored)), refine=False, upsampling="lanczos"
        )
        assert np.abs(_matte((out / f"m.{frame}.png").read_bytes(), tmp_path) - want).mean() <= 1e-4


def _matte(data: bytes, tmp_path: Path) -> np.ndarray:
    path = tmp_path / "probe.png"
    path.write_bytes(data)
    grey = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert grey.dtype == np.uint16 and grey.ndim == 2
    return grey.astype(np.float32) / 65535


def test_exr_plate_rgba_and_foreground(shared, mirror, tmp_path):
    """EXR in and out: the matte as a float EXR, the RGBA premultiplied and linear, the foreground plate."""
    import OpenEXR

    plate = make_plate(shared, tmp_path / "plate", 3, suffix=".exr")
    out = tmp_path / "out"
    job = roto.RotoJob(
        spec(
            plate,
            str(out / "matte.####.exr"),
            rgba=str(out / "rgba.####.exr"),
            fg=str(out / "fg.####.png"),
            bit_depth=32,
        )
    )
    assert job.run().computed == [1001, 1002, 1003]
    with OpenEXR.File(str(out / "matte.1002.exr"), separate_channels=True) as f:
        alpha = f.channels()["A"].pixels
        assert f.channels()["A"].type() == OpenEXR.FLOAT
    with OpenEXR.File(str(out / "rgba.1002.exr"), separate_channels=True) as f:
        channels = f.channels()
        red, a = channels["R"].pixels.astype(np.float32), channels["A"].pixels.astype(np.float32)
    with OpenEXR.File(str(tmp_path / "plate" / "plate.1002.exr"), separate_channels=True) as f:
        plate_red = f.channels()["R"].pixels
    np.testing.assert_allclose(a, alpha, atol=1e-3)  # half float
    np.testing.assert_allclose(red, np.clip(plate_red, 0, 1) * alpha, atol=2e-3)  # linear, premultiplied
    fg = read_image(out / "fg.1002.png")
    assert fg.has_alpha and fg.pixels.shape == (120, 214, 4)
    np.testing.assert_allclose(fg.pixels[..., 3], alpha, atol=1 / 255)
    # adding an output later recomputes to add it; the matte's bytes stay the same
    before = (out / "matte.1002.exr").read_bytes()
    job = roto.RotoJob(spec(plate, str(out / "matte.####.exr"), bit_depth=32))
    assert job.run().computed == []
    assert (out / "matte.1002.exr").read_bytes() == before


def test_foreground_plate_matches_matte_colours(shared, mirror, tmp_path):
    """roto --fg decontaminates as `mattekit matte` does (mattekit.finish.cutout.subject_colours): same colours for the same alpha."""
    from mattekit.matting import estimate_foreground

    plate = make_plate(shared, tmp_path / "plate", 2, sequence="blackswan")
    out = tmp_path / "out"
    roto.RotoJob(spec(plate, str(out / "m.####.png"), fg=str(out / "fg.####.png"), temporal=False)).run()
    alpha = _matte((out / "m.1002.png").read_bytes(), tmp_path)
    image = read_image(tmp_path / "plate" / "plate.1002.png").pixels
    fg = read_image(out / "fg.1002.png").pixels
    expected = estimate_foreground(image[..., :3], alpha)
    soft = (alpha > 0.05) & (alpha < 0.95)
    assert soft.sum() > 50
    assert np.abs(fg[..., :3] - expected)[soft].max() <= 2 / 255
    assert np.abs(fg[..., :3] - image[..., :3])[soft].max() > 4 / 255  # colours really changed


def test_roto_refinement_works_in_small_tiles_around_the_edge(monkeypatch):
    """A 480p frame from a 320-px prediction (factor 2.7, the filter unsubsampled) is refined in ``REFINE_TILE``
    tiles: the mask equals the 512-px tiles' within 1e-6 (box sums' rounding; the same bytes on DAVIS blackswan),
    and the tiles hold under half the pixels the 512-px ones do."""
    from mattekit.ops.regions import tiles_holding
    from mattekit.finish import refine

    rng = np.random.default_rng(8)
    image = (rng.random((480, 854, 3)) * 0.2).astype(np.float32)
    yy, xx = np.mgrid[:480, :854]
    subject = (yy - 300) ** 2 / 120**2 + (xx - 420) ** 2 / 90**2 < 1
    image[subject] += 0.7
    low = cv2.resize(subject.astype(np.float32), (320, 180), interpolation=cv2.INTER_AREA)
    tiles = []
    holding = tiles_holding
    monkeypatch.setattr(refine, "tiles_holding", lambda *a: tiles.append(a[2]) or holding(*a))
    small, tile = refine.refine_mask(image, low), refine.REFINE_TILE
    monkeypatch.setattr(refine, "REFINE_TILE", refine.TILE)
    large = refine.refine_mask(image, low)
    assert tiles == [tile, refine.TILE] and tile < refine.TILE
    assert np.abs(small - large).max() <= 1e-6 and not np.array_equal(
        small, refine.round_sure(resized_map(low, 480, 854))
    )
    doubt = refine.unsure(resized_map(low, 480, 854))
    area = [
        sum((b[0].stop - b[0].start) * (b[1].stop - b[1].start) for b in holding(doubt, 1, size))
        for size in (tile, refine.TILE)
    ]
    assert area[0] < 0.5 * area[1], area
