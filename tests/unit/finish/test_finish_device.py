"""The finish as torch operations (``mattekit.finish.refine_device``, ``mattekit.matting.solve_device``,
``mattekit.matting.foreground_device``), which a model on a GPU runs there: forced onto torch's CPU device here, through the same ``device`` argument (CI has no GPU;
tests/cuda/test_cuda_finish.py runs them on one), against the CPU finish on real photos and real u2netp predictions, within the
fidelity tests' tolerance (mean |delta| <= 2e-3 per photo) and, measured, far inside it. Torch's CPU kernels and numpy's
round differently from one CPU to the next (vector widths, fused multiply-adds), so no check asks them for equal bits:
values within ``ROUNDING`` of each other, and a pixel on the other side of 0.5 only where the CPU's value is that near it.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from mattekit import runtime
from mattekit.finish import cutout
from mattekit.finish import device as finish_device
from mattekit.io import read_image
from mattekit.matting.foreground import PARTIAL, estimate_foreground
from mattekit.ops import on_device
from mattekit.ops.filters import box_mean
from mattekit.finish import edge, refine
from mattekit.ops.resizing import prediction_array
from mattekit.ops.resizing import resized_map
from mattekit.subject import answer
from mattekit.options import model_choice

pytestmark = pytest.mark.needs_data
CPU = finish_device.OnDevice("cpu")  # the finish's device steps on torch's CPU device
ROUNDING = 1e-5  # float32 kernels' rounding on values in 0..1; a wrong sweep, tile or halo differs by 1e-3 and more


def _crossed(device: np.ndarray, cpu: np.ndarray) -> np.ndarray:
    """Where ``device`` and ``cpu`` fall on different sides of 0.5 although the CPU's value is not within rounding of it."""
    return ((device >= 0.5) != (cpu >= 0.5)) & (np.abs(cpu - 0.5) > ROUNDING)


def _alphamatting(shared, name: str) -> tuple[np.ndarray, np.ndarray]:
    root = shared / "data" / "alphamatting"
    image = cv2.cvtColor(cv2.imread(str(root / "im" / name)), cv2.COLOR_BGR2RGB)
    return image, cv2.imread(str(root / "gt" / name), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
@pytest.mark.parametrize("name, scale", [("GT01.png", 1), ("GT13.png", 2)])
def test_foreground_on_a_device_gives_the_cpu_colours(shared, name, scale):
    """Float colours (GT13 at 2x: levels the CPU solves in tiles) within 2e-4 of the CPU's on average over the partial
    pixels (measured 1e-5 to 3e-5) and 5e-3 at most; an 8-bit RGBA result filled in place within 1 level."""
    image, alpha = _alphamatting(shared, name)
    if scale > 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        alpha = np.clip(cv2.resize(alpha, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC), 0, 1)
    partial = (alpha > PARTIAL) & (alpha < 1 - PARTIAL)
    cpu, device = estimate_foreground(image, alpha), estimate_foreground(image, alpha, device=CPU)
    delta = np.abs(device - cpu)
    assert delta[~partial].max() <= ROUNDING  # the photo's own colours where alpha is 0 or 1
    assert delta[partial].mean() <= 2e-4 and delta.max() <= 5e-3, (delta[partial].mean(), delta.max())
    made = []
    filled = CPU.foreground(image, alpha, out=lambda: made.append(cutout.rgba(image, alpha)) or made[0])
    assert made[0].dtype == np.uint8 and filled.base is made[0]
    assert np.abs(made[0].astype(int) - cutout.rgba(image, alpha).astype(int))[..., 3].max() == 0
    assert np.abs(made[0][..., :3].astype(int) - np.rint(cpu * 255).astype(int)).max() <= 1


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_foreground_on_a_device_in_strips_is_the_whole_levels(shared, monkeypatch):
    """Levels swept in strips of rows (each with its sweeps' halo; the strips bound the GPU's memory) give the colours
    of levels swept whole, within rounding: GT01 at 2x (2 MP) in strips of 4096 px (a few rows) against strips larger than
    every level."""
    from mattekit.matting import foreground_device

    image, alpha = _alphamatting(shared, "GT01.png")
    image, alpha = np.repeat(np.repeat(image, 2, 0), 2, 1), np.repeat(np.repeat(alpha, 2, 0), 2, 1)
    whole = CPU.foreground(image, alpha)
    monkeypatch.setattr(foreground_device, "STRIP", 4096)
    assert np.abs(CPU.foreground(image, alpha) - whole).max() <= ROUNDING


def test_foreground_on_a_device_without_partial_alpha_is_the_photo(shared):
    image, alpha = _alphamatting(shared, "GT01.png")
    hard = (alpha >= 0.5).astype(np.float32)
    assert np.abs(CPU.foreground(image, hard) - image.astype(np.float32) / 255).max() <= ROUNDING


@pytest.fixture(scope="module")
def u2netp(shared):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
        patch.setenv("MATTEKIT_OFFLINE", "1")
        yield runtime.ModelCache().get(model_choice("u2netp", "segment"), "cpu", precision="fp32")


@pytest.mark.parametrize("photo, scale", [("106024.jpg", 1), ("153077.jpg", 3)])
def test_refinement_on_a_device_gives_the_cpu_mask(shared, u2netp, photo, scale):
    """u2netp's real prediction refined: factor 1.5 (the whole photo's filter, as the CPU's tiles give it) and 4.5
    (coefficients on 2 x 2 block means, where the CPU's tiles shrink their own windows): the mask within 1e-4 of the
    CPU's on average (measured 3e-6 and 8e-5), no pixel on the other side of 0.5 (beyond rounding) at factor 1.5 and
    under 1e-4 of them at 4.5, nothing changed outside the band."""
    image = read_image(shared / "data" / "grabcut50" / "im" / photo, integers=True).pixels[..., :3]
    if scale > 1:
        image = np.repeat(np.repeat(image, scale, 0), scale, 1)
    low = prediction_array(u2netp(u2netp.prepare(image)))
    factor = answer.detail_of(*image.shape[:2], low)
    cpu = refine.refine_mask(image, low, soft=True)
    device = refine.refine_mask(
        image, low, soft=True, device=CPU
    )  # (a model's CUDA device, finish_device.device_of, there)
    plain = resized_map(low, *image.shape[:2])
    grow, _, subsample = refine.band_filter(factor)
    band = refine.edge_band(plain, grow)
    assert np.array_equal(device[~band], plain[~band]) and not np.array_equal(device[band], plain[band])
    delta = np.abs(device - cpu)
    flipped = _crossed(device, cpu).mean()
    assert delta.mean() <= 1e-4 and flipped <= (0 if subsample == 1 else 1e-4), (delta.mean(), flipped)


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
@pytest.mark.parametrize("photo, scale", [("106024.jpg", 1), ("124080.jpg", 3)])
def test_the_edge_matte_solved_on_a_device_gives_the_cpu_alpha(shared, u2netp, photo, scale, monkeypatch):
    """u2netp's real prediction refined, its edge matted with the Laplacian and the multigrid solve on the device (every
    box, however small): at 1x (one tile, solved at full size) and 3x (1.4 MP: solved at half size), the alpha within
    1e-6 of the CPU's on average (measured 2e-8 and 9e-8) and 1e-3 at most (measured 3e-5 and 8e-5), no pixel on the
    other side of 0.5 beyond rounding."""
    from mattekit.matting import alpha

    monkeypatch.setattr(alpha, "DEVICE_PIXELS", 0)
    image = read_image(shared / "data" / "grabcut50" / "im" / photo, integers=True).pixels[..., :3]
    if scale > 1:
        image = np.repeat(np.repeat(image, scale, 0), scale, 1)
    low = prediction_array(u2netp(u2netp.prepare(image)))
    mask, detail = refine.refine_mask(image, low), answer.detail_of(*image.shape[:2], low)
    cpu = edge.alpha_from_mask(image, mask, detail=detail)
    device = edge.alpha_from_mask(image, mask, detail=detail, device=CPU)
    assert not np.array_equal(cpu, mask)  # the edge was matted
    delta = np.abs(device - cpu)
    assert delta.mean() <= 1e-6 and delta.max() <= 1e-3, (delta.mean(), delta.max())
    assert not _crossed(device, cpu).any()


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_only_a_large_box_is_solved_on_the_device(shared, u2netp, monkeypatch):
    """A solve's box of fewer than ``DEVICE_PIXELS`` stays on the CPU (the GPU's kernel launches cost more there), the
    same bytes as without a device; a larger one goes to the device: grabcut50 106024 at 1x (a box of 35 kpx) and
    124080 at 3x (solved at half size, a box of about 300 kpx)."""
    from mattekit.matting import alpha

    sizes = []

    class Recorded(finish_device.OnDevice):  # the boxes the device is asked to solve
        def solve(self, image, *a):
            sizes.append(image.shape[:2])
            return super().solve(image, *a)

    for photo, scale in (("106024.jpg", 1), ("124080.jpg", 3)):
        image = read_image(shared / "data" / "grabcut50" / "im" / photo, integers=True).pixels[..., :3]
        image = np.repeat(np.repeat(image, scale, 0), scale, 1)
        low = prediction_array(u2netp(u2netp.prepare(image)))
        mask, detail = refine.refine_mask(image, low), answer.detail_of(*image.shape[:2], low)
        device = edge.alpha_from_mask(image, mask, detail=detail, device=Recorded("cpu"))
        if scale == 1:
            assert sizes == [] and np.array_equal(device, edge.alpha_from_mask(image, mask, detail=detail))
    assert sizes and all(h * w >= alpha.DEVICE_PIXELS for h, w in sizes), sizes


def test_the_device_laplacian_and_coarsening_are_the_cpus():
    """The solve's building blocks against :mod:`mattekit.matting.laplacian` and :mod:`mattekit.matting.solver` on a
    random image of odd sides: the Laplacian's 13 planes, the Galerkin coarse operator and its mask, A x."""
    from mattekit.matting import solve_device, solver
    from mattekit.matting.laplacian import laplacian_stencil

    rng = np.random.default_rng(3)
    image = rng.random((37, 29, 3), dtype=np.float32)
    stencil = laplacian_stencil(image, 1e-7)
    got = solve_device.laplacian(torch.from_numpy(image), 1e-7).numpy()
    assert np.abs(got - stencil).max() <= 1e-5 * np.abs(stencil).max()
    mask = rng.random((37, 29)) < 0.6
    coarse, cmask = solver.coarsen(stencil, mask)
    got, got_mask = solve_device.coarsen(torch.from_numpy(stencil), torch.from_numpy(mask.astype(np.float32)))
    assert np.array_equal(got_mask.numpy() > 0, cmask) and np.abs(got.numpy() - coarse).max() <= 1e-4
    x = rng.random((37, 29), dtype=np.float32)
    want = solver.apply(stencil, x)
    assert np.abs(solve_device.apply(torch.from_numpy(stencil), torch.from_numpy(x)).numpy() - want).max() <= 1e-5


def test_device_box_mean_and_enlarging_are_opencvs():
    """The building blocks against OpenCV: the reflected box mean (radius 0 to past the side), the bilinear resize."""
    x = np.random.default_rng(0).random((37, 29, 3), dtype=np.float32)
    t = torch.from_numpy(x).permute(2, 0, 1)[None]
    for radius in (1, 4, 40):
        got = on_device.box_mean(t, radius)[0].permute(1, 2, 0).numpy()
        assert np.abs(got - box_mean(x, radius)).max() <= 1e-5, radius
    got = on_device.enlarged(t, (80, 61))[0].permute(1, 2, 0).numpy()
    assert np.abs(got - cv2.resize(x, (61, 80), interpolation=cv2.INTER_LINEAR)).max() <= 1e-5
    halved = on_device.halved(t)[0].permute(1, 2, 0).numpy()
    assert halved.shape == (19, 15, 3) and np.allclose(halved[-1, -1], x[-1, -1])
    assert np.allclose(halved[0, 0], x[:2, :2].mean((0, 1)))


def test_a_model_on_a_gpu_finishes_photos_of_a_megapixel_and_more_there_and_smaller_ones_on_the_cpu(monkeypatch):
    """finish_device.device_of reads the model's plan: the GPU's finish only pays from about 1 MP (a folder of 0.15 MP photos
    finished faster on 16 CPU cores than on an H200); a model on the CPU, or none, always finishes on the CPU. A device
    value the plan holds itself (a bench's double) is the finish's device as it is."""
    from dataclasses import replace
    from types import SimpleNamespace

    from gpu_plans import planned_on_a_gpu

    from mattekit import catalog
    from mattekit.engines import plan

    planned_on_a_gpu(monkeypatch)
    on_gpu = SimpleNamespace(plan=plan.decide(catalog.load().get("u2netp")))
    small, large = np.zeros((321, 481, 3), np.uint8), np.zeros((1024, 1024, 3), np.uint8)
    assert finish_device.device_of(on_gpu, small) is None
    assert finish_device.device_of(on_gpu, large) == finish_device.OnDevice("cuda")  # the model's GPU
    own = object()
    assert finish_device.device_of(SimpleNamespace(plan=replace(on_gpu.plan, finish=own)), large) is own
    assert (
        finish_device.device_of(SimpleNamespace(plan=plan.decide(catalog.load().get("u2netp"), "cpu")), large) is None
    )
    assert finish_device.device_of(None, large) is None
