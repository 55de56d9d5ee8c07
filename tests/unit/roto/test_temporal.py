"""The temporal filter's building blocks against their definitions (mattekit.roto.temporal, .motion, .flow_blocks)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mask_scores import agreement
from mattekit.roto import flow_blocks, motion, ordered, temporal
from temporal_shots import _filtered, _trembling_shot


def test_median_is_numpys_for_every_count_with_ties():
    rng = np.random.default_rng(3)
    for count in range(1, 10):
        values = [rng.integers(0, 4, (31, 47)).astype(np.float32) / 3 for _ in range(count)]  # many ties
        values[-1][:5] = rng.random((5, 47), dtype=np.float32)
        expected = np.median(np.stack(values), axis=0)
        got = temporal.median(values)
        assert got.dtype == np.float32 and np.array_equal(got, expected), count


def test_warp_samples_at_the_pixel_plus_the_field_rescaled_to_the_image():
    rng = np.random.default_rng(4)
    image = rng.random((40, 60)).astype(np.float32)
    shift = np.zeros((40, 60, 2), np.float32)
    shift[..., 0], shift[..., 1] = 3.0, -2.0  # x + 3, y - 2
    given = shift.copy()
    warped = motion.warp(image, shift)
    assert np.array_equal(shift, given)  # the field is not changed
    assert np.array_equal(warped[2:, :-3], image[:-2, 3:])
    half = np.zeros((20, 30, 2), np.float32)
    half[..., 0] = 1.5  # on a field of half the image's size: 3 px in the image
    assert np.array_equal(motion.warp(image, half)[:, :-3], image[:, 3:])
    colours = rng.random((40, 60, 3)).astype(np.float32)
    assert np.array_equal(motion.warp(colours, shift)[2:, :-3], colours[:-2, 3:])


def test_total_adds_in_list_order_like_numpy():
    rng = np.random.default_rng(5)
    for count in range(1, 10):
        values = [rng.random((23, 37), dtype=np.float32) * 10.0 ** rng.integers(-3, 3) for _ in range(count)]
        assert np.array_equal(temporal._total(values), np.sum(values, axis=0)), count


def _moving_square(frames: int = 9, size: tuple[int, int] = (96, 160)):
    """A textured plate with a soft-edged square moving 2 px a frame, and its mattes (0/1 with a partial edge)."""
    rng = np.random.default_rng(6)
    texture = rng.random((size[0], size[1] + 2 * frames, 3)).astype(np.float32) * 0.3
    plates, mattes = {}, {}
    for t in range(frames):
        plate = texture[:, t : t + size[1]].copy()  # the background pans 1 px a frame
        matte = np.zeros(size, np.float32)
        x = 40 + 2 * t
        matte[30:60, x : x + 30] = 1.0
        matte[30:60, x - 1] = 0.5
        matte[30 + t % 3, x + 5] = 0.0  # a hole that trembles: something for the filter to do
        plate[matte > 0] = 0.9
        plates[t], mattes[t] = plate, matte
    return plates, mattes


def _smoothed(plates, mattes, frames):
    out = {}
    stage = ordered.OrderedSmoother(
        temporal.TemporalOptions(radius=2), frames, frames, lambda f, _, a, __: out.__setitem__(f, a)
    )
    for f in stage.frames:
        stage.push(f, plates[f], mattes[f])
    return out


def test_the_filter_works_on_the_blocks_where_mattes_vary_with_the_bytes_of_every_block(monkeypatch):
    """The filter computed only on :func:`flow_blocks.active_blocks` gives the bytes of the filter on every block,
    and on a subject of a fifth of the frame it works on well under half the frame's blocks."""
    plates, mattes = _moving_square()
    frames = list(plates)
    worked = []
    found = flow_blocks.active_blocks
    monkeypatch.setattr(temporal, "active_blocks", lambda own, others: worked.append(found(own, others)) or worked[-1])
    blocked = _smoothed(plates, mattes, frames)
    monkeypatch.setattr(temporal, "active_blocks", lambda own, others: np.ones_like(found(own, others)))
    every = _smoothed(plates, mattes, frames)
    assert all(np.array_equal(blocked[f], every[f]) for f in frames)
    assert any(not np.array_equal(every[f], mattes[f]) for f in frames)  # the filter did change something
    assert sum(int(b.sum()) for b in worked) < 0.5 * sum(b.size for b in worked)


def test_sample_is_warp_at_the_pixels_it_is_given():
    """:func:`motion.sample` at every pixel is :func:`motion.warp`: exactly on a field of the image's size,
    within the 1/32 px steps of OpenCV's bilinear remap on a smaller field that is rescaled."""
    rng = np.random.default_rng(8)
    image = cv2.GaussianBlur(rng.random((72, 104)).astype(np.float32), (0, 0), 2.0)
    pixels = np.dstack(np.meshgrid(np.arange(104, dtype=np.float32), np.arange(72, dtype=np.float32)))
    for fh, fw, exact in ((72, 104, True), (36, 52, False), (41, 64, False)):
        field = cv2.GaussianBlur((rng.standard_normal((fh, fw, 2)) * 4).astype(np.float32), (0, 0), 3.0)
        got = motion.sample(image, field, pixels, motion.on_field(pixels, 72, 104, fh, fw))
        expected = motion.warp(image, field)
        if exact:
            assert np.array_equal(got, expected)
        else:
            assert np.abs(got - expected).max() < 0.02 and np.abs(got - expected).mean() < 1e-3, (fh, fw)


def test_block_pixels_lay_every_pixel_of_the_blocks_side_by_side():
    """Every pixel of the chosen blocks has a place (edge blocks clipped), no place holds a pixel of another block,
    and the layout's sides stay under OpenCV's remap limit for a 4K frame with every block chosen."""
    rng = np.random.default_rng(9)
    height, width = 70, 100  # 5 x 7 blocks, the last row and column clipped
    blocks = rng.random((5, 7)) < 0.4
    where = flow_blocks.block_pixels(blocks, height, width)
    xs, ys = where[..., 0].astype(int), where[..., 1].astype(int)
    chosen = np.kron(blocks, np.ones((16, 16), bool))[:height, :width]
    placed = np.zeros((height, width), bool)
    placed[ys, xs] = True
    assert np.array_equal(placed, chosen)
    assert where.shape[0] % 16 == 0 and where.shape[1] % 16 == 0
    full = flow_blocks.block_pixels(np.ones((135, 240), bool), 2160, 3840)
    assert max(full.shape[:2]) < 32767


def test_sampled_rectangles_hold_every_pixel_a_warp_reads():
    """A pixel's warp reads nothing outside its block's rectangle: a lone bright pixel shows only in blocks whose
    rectangle holds it (a field of half the image's size, rescaled, with large steps)."""
    rng = np.random.default_rng(7)
    height, width = 80, 112
    field = (rng.standard_normal((40, 56, 2)) * 6).astype(np.float32)
    field = np.ascontiguousarray(field)
    top, bottom, left, right = flow_blocks.sampled_rectangles(field, height, width)
    for y, x in ((0, 0), (40, 57), (79, 111), (17, 90)):
        image = np.zeros((height, width), np.float32)
        image[y, x] = 1.0
        warped = motion.warp(image, field)
        shown = flow_blocks.block_sums(flow_blocks.counts_off(warped)[..., 0], *flow_blocks.block_bounds(height, width))
        for by, bx in zip(*np.nonzero(shown > 0)):
            assert top[by, bx] <= y <= bottom[by, bx] and left[by, bx] <= x <= right[by, bx], (y, x, by, bx)


def test_the_flows_refinement_iterations_reach_dis():
    """``motion.flow(..., refinement=N)`` is OpenCV's DIS of the preset with N variational refinement iterations per
    scale (u2netp's window: 2), and differs from the preset's own 5 on a textured pan."""
    rng = np.random.default_rng(5)
    texture = cv2.GaussianBlur((rng.random((120, 200)) * 255).astype(np.float32), (0, 0), 2.0)
    first = np.clip(texture[:, :180], 0, 255).astype(np.uint8)
    second = np.clip(texture[:, 3:183] * 0.97 + 4, 0, 255).astype(np.uint8)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis.setVariationalRefinementIterations(2)
    two = motion.flow(first, second, "medium", 2)
    assert np.array_equal(two, dis.calc(first, second, None))
    assert not np.array_equal(two, motion.flow(first, second, "medium"))


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_the_filter_on_a_torch_device_gives_the_cpu_filters_mattes(shared):
    """The device filter (here on torch's CPU device, as CUDA runs it) gives the CPU filter's mattes within issue
    69's bounds (mean absolute difference 2e-3, IoU 0.995) on a real shot, and does the filter's job as well: the
    blobs that come and go are gone. No device keeps the CPU's filter."""
    torch = pytest.importorskip("torch")
    from mattekit.roto.temporal_device import DeviceSmoother

    plates, mattes, truth = _trembling_shot(shared)
    on_cpu, smoother = _filtered(plates, mattes)
    on_device, device_smoother = _filtered(plates, mattes, device=torch.device("cpu"))
    assert type(smoother) is temporal.Smoother and isinstance(device_smoother, DeviceSmoother)
    assert type(_filtered(plates, mattes, device=None)[1]) is temporal.Smoother
    for t in plates:
        got, want = on_device[t], on_cpu[t]
        assert got.dtype == np.float32 and got.shape == want.shape and 0 <= got.min() and got.max() <= 1
        assert np.abs(got - want).mean() <= 2e-3, t
        assert agreement(got, want) >= 0.995, t
    inner = range(2, len(plates) - 2)  # frames with their whole window
    before = np.mean([np.abs(mattes[t] - truth[t]).mean() for t in inner])
    for result in (on_cpu, on_device):
        assert np.mean([np.abs(result[t] - truth[t]).mean() for t in inner]) < 0.5 * before


def _filtered_with(plates, mattes, ahead_threads, device=None):
    out, frames = {}, list(plates)
    stage = ordered.OrderedSmoother(
        temporal.TemporalOptions(radius=2),
        frames,
        frames[2:-3],
        lambda f, _, a, __: out.__setitem__(f, a),
        device=device,
        ahead_threads=ahead_threads,
    )
    for f in stage.frames:
        stage.push(f, plates[f], mattes[f])
    return out, stage


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
@pytest.mark.parametrize("on_device", [False, True])
def test_the_plates_work_made_ahead_in_threads_gives_the_same_bytes(shared, monkeypatch, on_device):
    """The flows, agreements and rectangles made ahead in other threads (every pair the passes use, scheduled once
    both its frames are pushed) give the mattes the filter makes in the pushing thread alone, bit for bit, on the
    CPU and on a torch device; the pool is gone once every wanted frame is out."""
    device = None
    if on_device:
        torch = pytest.importorskip("torch")
        device = torch.device("cpu")
    plates, mattes, _ = _trembling_shot(shared)
    asked = []
    pair = temporal.Smoother.pair
    monkeypatch.setattr(temporal.Smoother, "pair", lambda self, a, b: asked.append((a, b)) or pair(self, a, b))
    alone, _ = _filtered_with(plates, mattes, ahead_threads=0, device=device)
    used = set(asked)
    ahead, stage = _filtered_with(plates, mattes, ahead_threads=3, device=device)
    assert stage.pool is not None and stage.pool._shutdown
    assert len(ahead) == len(alone) == 5 and all(np.array_equal(ahead[t], alone[t]) for t in alone)
    # the schedule: every pair the passes used, each once, at the later of its two frames (none before it is pushed)
    again = ordered.OrderedSmoother(temporal.TemporalOptions(radius=2), list(plates), list(plates)[2:-3], print)
    scheduled = [(frame, pair) for frame, pairs in again.ahead_at.items() for pair in pairs]
    assert sorted(p for _, p in scheduled) == sorted(used)
    assert all(frame == max(p) for frame, p in scheduled)


def test_the_filter_runs_on_the_models_cuda_device_at_any_frame_size(monkeypatch):
    """Roto's filter goes where the model's plan puts it: a CUDA model's device, at 480p as at 4K (its CPU cost is
    large at any size); a model on the CPU, or none, keeps the CPU's filter. (The finish keeps its 1 MP rule:
    mattekit.finish.device.device_of.)"""
    from types import SimpleNamespace

    import torch

    from gpu_plans import planned_on_a_gpu

    from mattekit import catalog
    from mattekit.engines import layout, plan
    from mattekit.roto.temporal_device import device_for
    from mattekit.finish import device as finish_device

    assert layout.device_work("cuda:1")[2] == "cuda:1"  # the model's GPU, whichever
    planned_on_a_gpu(monkeypatch)
    on_gpu = SimpleNamespace(plan=plan.decide(catalog.load().get("u2netp")))
    assert on_gpu.plan.device == "cuda" and device_for(on_gpu) == torch.device("cuda")
    assert finish_device.device_of(on_gpu, np.zeros((480, 854, 3), np.float32)) is None
    on_cpu = SimpleNamespace(plan=plan.decide(catalog.load().get("u2netp"), "cpu"))
    assert device_for(on_cpu) is None and device_for(None) is None


@pytest.mark.parametrize("passes", [1, 2, 3])
def test_a_pair_the_filter_asks_for_is_never_one_it_counts_as_forgotten(monkeypatch, passes):
    """Work made ahead is skipped for pairs the filter is past (:meth:`Smoother.forgotten`); every pair the passes
    ask for, at the moment they ask, is not one of those, whatever the number of passes."""
    plates, mattes = _moving_square(frames=16)
    stale = []
    pair = temporal.Smoother.pair
    monkeypatch.setattr(
        temporal.Smoother, "pair", lambda self, a, b: stale.append((a, b)) if self.forgotten(a, b) else pair(self, a, b)
    )
    frames = list(plates)
    stage = ordered.OrderedSmoother(
        temporal.TemporalOptions(radius=2, passes=passes), frames, frames, lambda *_: None, ahead_threads=0
    )
    for f in stage.frames:
        stage.push(f, plates[f], mattes[f])
    assert stage.finished and stage.smoother.oldest is not None and not stale
