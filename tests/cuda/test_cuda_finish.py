"""The finish and roto's temporal filter on a real GPU against the CPU: refinement, the edge matte's solve and
decontamination (and their fall-back to the CPU where the GPU's memory runs out), the temporal filter's passes, and
``roto`` at 480p.

Skipped, with the reason, where torch sees no CUDA GPU (CI has none); run them on a GPU machine with
``MATTEKIT_TEST_DATA`` set, e.g. ``python -m pytest tests/cuda`` (tests/cuda/run.sh runs them all).
"""

from __future__ import annotations

import numpy as np
import torch
from cuda_checks import CUDA_ONLY, _grabcut
from mask_scores import agreement

import mattekit
from mattekit.finish.device import OnDevice
from mattekit.io import read_image
from mattekit.options import model_choice

pytestmark = CUDA_ONLY


def test_the_finish_on_cuda_gives_the_cpu_finish(shared, monkeypatch):
    """The finish's torch operations on the GPU against the CPU finish (tests/unit/matting/test_finish_device.py runs
    them on torch's CPU device): u2netp's real prediction refined at factor 1.5 and 4.5, within 1e-4 mean |delta| of
    the CPU's mask, and its edge matted (the Laplacian and the solve on the GPU) within 1e-5 mean |delta| of the CPU's
    alpha; decontaminated colours (GT01 at 3x, 3.6 MP) within 2e-4 on average over the partial pixels, 5e-3 at most;
    an RGBA ``remove`` with the model on the GPU refines, solves the edge matte and decontaminates there (and on the
    CPU not), within the fidelity tolerance (2e-3 mean per photo) of the CPU's, colours and alpha."""
    import cv2

    from mattekit.matting.foreground import estimate_foreground
    from mattekit.finish import edge, refine
    from mattekit.ops.resizing import prediction_array
    from mattekit.matting import alpha
    from mattekit.subject import answer

    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setattr(alpha, "DEVICE_PIXELS", 0)  # every solve on the GPU, however small its box
    model = mattekit.api.models_cache().get(model_choice("u2netp", "segment"), "cuda", precision="fp32")
    on_cpu = mattekit.api.models_cache().get(model_choice("u2netp", "segment"), "cpu", precision="fp32")
    cuda, figures = OnDevice("cuda"), {}
    for path, scale in zip(_grabcut(shared, 2), (1, 3)):
        image = read_image(path, integers=True).pixels[..., :3]
        image = np.repeat(np.repeat(image, scale, 0), scale, 1)
        low = prediction_array(model(model.prepare(image)))
        cpu, gpu = refine.refine_mask(image, low, soft=True), refine.refine_mask(image, low, soft=True, device=cuda)
        figures[f"refine {path.name} x{scale}"] = delta = float(np.abs(gpu - cpu).mean())
        assert delta <= 1e-4, (path.name, scale, delta)
        detail = answer.detail_of(*image.shape[:2], low)
        mask = refine.refine_mask(image, low)
        cpu, gpu = (
            edge.alpha_from_mask(image, mask, detail=detail),
            edge.alpha_from_mask(image, mask, detail=detail, device=cuda),
        )
        delta = np.abs(gpu - cpu)
        figures[f"edge matte {path.name} x{scale} mean, max"] = (float(delta.mean()), float(delta.max()))
        assert delta.mean() <= 1e-5 and np.array_equal(gpu >= 0.5, cpu >= 0.5), figures
    root = shared / "data" / "alphamatting"
    image = cv2.resize(cv2.cvtColor(cv2.imread(str(root / "im" / "GT01.png")), cv2.COLOR_BGR2RGB), None, fx=3, fy=3)
    alpha = cv2.imread(str(root / "gt" / "GT01.png"), 0).astype(np.float32) / 255
    alpha = np.clip(cv2.resize(alpha, None, fx=3, fy=3), 0, 1)
    partial = (alpha > 1e-3) & (alpha < 1 - 1e-3)
    delta = np.abs(estimate_foreground(image, alpha, device=cuda) - estimate_foreground(image, alpha))
    figures["foreground GT01 x3 partial mean, max"] = (float(delta[partial].mean()), float(delta.max()))
    assert delta[partial].mean() <= 2e-4 and delta.max() <= 5e-3, figures
    from mattekit.matting import foreground_device, solve_device
    from mattekit.finish import refine_device

    devices = []  # (step, device) of the finish's torch steps in remove's pipeline (the steps themselves run)
    steps = (
        (refine_device, "refine_band_on"),
        (solve_device, "solve_on"),
        (foreground_device, "estimate_foreground_on"),
    )
    for module, name in steps:
        step = getattr(module, name)
        monkeypatch.setattr(
            module,
            name,
            lambda device, *a, _step=step, _name=name, **k: (
                devices.append((_name, device.type)) or _step(device, *a, **k)
            ),
        )
    for path in _grabcut(shared, 3):
        small = read_image(path, integers=True).pixels[..., :3]
        mattekit.remove_background(small, model=model)
        assert devices == [], devices  # under finish_device.FINISH_ON_GPU_PIXELS: finished on the CPU cores
        pixels = cv2.resize(small, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)  # 1.4 MP
        gpu = mattekit.remove_background(pixels, model=model).astype(np.float32) / 255
        assert {name for _, name in steps} == {name for name, _ in devices}, devices
        assert {kind for _, kind in devices} == {"cuda"}, devices
        devices.clear()
        cpu = mattekit.remove_background(pixels, model=on_cpu).astype(np.float32) / 255
        assert devices == [], devices
        figures[f"remove {path.name} rgb, alpha"] = rgb, a = (
            float(np.abs(gpu - cpu)[..., :3].mean()),
            float(np.abs(gpu - cpu)[..., 3].mean()),
        )
        assert rgb <= 2e-3 and a <= 2e-3, figures
    print("finish on cuda vs cpu:", figures)


def test_the_finish_falls_back_to_the_cpu_where_the_gpu_memory_runs_out(shared, monkeypatch):
    """Under a cap on this process's GPU memory below what the finish needs, refinement, the edge matte's solve and
    decontamination give the CPU's answer, bit for bit (they ran there), instead of failing."""
    import cv2

    from mattekit.matting import alpha as alpha_module
    from mattekit.matting.foreground import estimate_foreground
    from mattekit.finish import edge, refine

    monkeypatch.setattr(alpha_module, "DEVICE_PIXELS", 0)
    root = shared / "data" / "alphamatting"
    image = cv2.cvtColor(cv2.imread(str(root / "im" / "GT01.png")), cv2.COLOR_BGR2RGB)
    alpha = cv2.imread(str(root / "gt" / "GT01.png"), 0).astype(np.float32) / 255
    low = cv2.resize(alpha, (80, 50), interpolation=cv2.INTER_AREA)
    cuda, total = OnDevice("cuda"), torch.cuda.get_device_properties(0).total_memory
    try:
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(4 * image.size / total)  # under the float photo and its planes
        assert np.array_equal(estimate_foreground(image, alpha, device=cuda), estimate_foreground(image, alpha))
        assert np.array_equal(refine.refine_mask(image, low, device=cuda), refine.refine_mask(image, low))
        mask = refine.refine_mask(image, low)
        assert np.array_equal(edge.alpha_from_mask(image, mask, device=cuda), edge.alpha_from_mask(image, mask))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()


def test_the_temporal_filter_on_cuda_gives_the_cpu_filters_mattes(shared):
    """Roto's temporal filter on the GPU (:class:`mattekit.roto.temporal_device.DeviceSmoother`) against the CPU's
    on DAVIS blackswan at full size (854 x 480, real plates, ground truth with trembling blobs): issue 69's bounds,
    mean absolute difference 2e-3 and IoU 0.995 a frame. Prints both filters' seconds for the shot."""
    import time

    from temporal_shots import _filtered, _trembling_shot

    plates, mattes, _ = _trembling_shot(shared, 12, (854, 480))
    start = time.perf_counter()
    on_cpu, _ = _filtered(plates, mattes)
    cpu_s = time.perf_counter() - start
    _filtered(plates, mattes, device=torch.device("cuda"))  # the first use's kernels, not timed
    torch.cuda.synchronize()
    start = time.perf_counter()
    on_gpu, smoother = _filtered(plates, mattes, device=torch.device("cuda"))
    gpu_s = time.perf_counter() - start
    assert type(smoother).__name__ == "DeviceSmoother"
    for t in plates:
        got, want = on_gpu[t], on_cpu[t]
        assert np.abs(got - want).mean() <= 2e-3, t
        assert agreement(got, want) >= 0.995, t
    print(
        f"\ntemporal filter, 12 frames of 854x480: CPU {cpu_s:.2f} s, GPU {gpu_s:.2f} s (the flow on the CPU in both)"
    )


def _roto_mattes(shared, folder, device: str) -> tuple[dict[str, np.ndarray], float]:
    """u2netp's roto of 12 DAVIS blackswan frames at 854x480 on ``device``, the defaults (the temporal filter on):
    ({file name: matte float32 in [0,1]}, seconds of the run)."""
    import time

    from mattekit import roto
    from plates import make_plate

    plate = make_plate(shared, folder / "plate", 12, sequence="blackswan", size=(854, 480))
    start = time.perf_counter()
    roto.RotoJob(
        roto.RotoSpec(plate=plate, output=str(folder / device / "m.####.png"), model="u2netp", device=device)
    ).run()
    seconds = time.perf_counter() - start
    return {p.name: read_image(p).pixels[..., 0] for p in sorted((folder / device).glob("m.*.png"))}, seconds


def test_roto_at_480p_on_cuda_filters_on_the_gpu_and_gives_the_cpus_mattes(shared, tmp_path, monkeypatch):
    """``mattekit roto`` with u2netp on CUDA at 854x480: the temporal filter's passes run on the GPU (at any frame
    size), and each matte is the CPU run's within issue 69's bounds (mean |delta| 2e-3, IoU 0.995); prints both runs'
    seconds (the first use of each included)."""
    from mattekit.roto import ordered
    from mattekit.roto.temporal_device import DeviceSmoother

    made = []

    class Noted(DeviceSmoother):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self.device)

    monkeypatch.setattr(ordered, "DeviceSmoother", Noted)
    on_cpu, cpu_s = _roto_mattes(shared, tmp_path, "cpu")
    assert not made
    on_gpu, gpu_s = _roto_mattes(shared, tmp_path, "cuda")
    assert [str(d).split(":")[0] for d in made] == ["cuda"] and sorted(on_gpu) == sorted(on_cpu) and len(on_cpu) == 12
    for name, want in on_cpu.items():
        got = on_gpu[name]
        assert np.abs(got - want).mean() <= 2e-3 and agreement(got, want) >= 0.995, name
    print(f"\nroto u2netp, 12 frames of 854x480: CPU {cpu_s:.1f} s, GPU {gpu_s:.1f} s (each a first use)")
