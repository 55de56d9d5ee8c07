"""Whole calls on a real GPU against the CPU: ``remove`` with u2netp's real weights in fp32 and fp16, BiRefNet in its
CUDA precision, a tiled ``upscale``, and SAM 2.1's shared frame features kept in host memory.

Skipped, with the reason, where torch sees no CUDA GPU (CI has none); run them on a GPU machine with
``MATTEKIT_TEST_DATA`` set, e.g. ``python -m pytest tests/cuda`` (tests/cuda/run.sh runs them all).
"""

from __future__ import annotations

import numpy as np
import torch
from cuda_checks import CUDA_ONLY, _grabcut
from mask_scores import agreement

import mattekit
from mattekit.io import read_image
from mattekit.options import model_choice, ModelChoice

pytestmark = CUDA_ONLY


def test_remove_on_cuda_agrees_with_the_cpu(shared, monkeypatch):
    """The default pipeline (u2netp real weights; the finish on the GPU) against the
    CPU in fp32 (not bf16, which CPUs with AMX would pick): CUDA fp32 (no TF32) within 0.002 mean absolute
    alpha difference per image, IoU at 0.5 at least 0.995; fp16 (asked for: auto is fp32 until measured) within 0.01 on average over the
    images, IoU at least 0.95 on each."""
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    on_cpu = mattekit.api.models_cache().get(model_choice("u2netp", "segment"), "cpu", precision="fp32")
    on_gpu = {
        "fp16": mattekit.api.models_cache().get(model_choice("u2netp", "segment"), "cuda", precision="fp16"),
        "fp32": mattekit.api.models_cache().get(model_choice("u2netp", "segment"), "cuda", precision="fp32"),
    }
    assert on_gpu["fp16"].engine.name == "torch-cuda-fp16" and on_gpu["fp32"].engine.name == "torch-cuda-fp32"
    figures = {"fp16": [], "fp32": []}
    for path in _grabcut(shared, 4):
        cpu = _alpha(path, on_cpu)
        for precision, model in on_gpu.items():
            gpu = _alpha(path, model)
            mad = float(np.abs(gpu - cpu).mean())
            iou = agreement(gpu, cpu)
            figures[precision].append((path.name, round(mad, 5), round(iou, 4)))
    print(figures)
    assert all(mad <= 0.002 and iou >= 0.995 for _, mad, iou in figures["fp32"]), figures["fp32"]
    assert np.mean([mad for _, mad, _ in figures["fp16"]]) <= 0.01, figures["fp16"]
    assert all(iou >= 0.95 for _, _, iou in figures["fp16"]), figures["fp16"]


def birefnet_gap(shared, folder, fast: str, reference: str, count: int = 2) -> list[tuple[str, bool, float]]:
    """BiRefNet general on stand-in weights (the real architecture, seeded values), its catalog precision on device
    ``fast`` against fp32 on ``reference``: per grabcut50 photo (name, every alpha finite, mean |delta alpha|) of the
    predictions (after the sigmoid, at the net's 1024 x 1024). Checked on the CPU against itself where no GPU is."""
    from mattekit import catalog
    from mattekit_bench.stand_in import write_stand_in

    entry = catalog.load().get("birefnet-general")
    weights = write_stand_in(entry, folder)
    cache = mattekit.api.models_cache()
    auto = cache.get(ModelChoice(entry.name, entry), fast, weights)
    fp32 = cache.get(ModelChoice(entry.name, entry), reference, weights, precision="fp32")
    gaps = []
    for path in _grabcut(shared, count):
        image = read_image(path).pixels[..., :3]
        got, want = (m(m.prepare(image)).float().cpu().numpy() for m in (auto, fp32))
        gaps.append((path.name, bool(np.isfinite(got).all()), float(np.abs(got - want).mean())))
    return gaps


def test_birefnet_in_its_cuda_precision_gives_the_cpus_fp32_answer(shared, tmp_path, monkeypatch):
    """BiRefNet general on CUDA in the catalog's precision (fp16: its authors' own, validated by them against fp32)
    against the CPU's fp32, stand-in weights: no NaN or inf, mean |delta alpha| at most 2e-3 a photo."""
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    gaps = birefnet_gap(shared, tmp_path, "cuda", "cpu")
    print("birefnet-general fp16 CUDA vs fp32 CPU, stand-in weights:", gaps)
    assert all(finite and gap <= 2e-3 for _, finite, gap in gaps), gaps


def _alpha(path, model) -> np.ndarray:
    pixels = read_image(path, integers=True).pixels[..., :3]
    alpha = mattekit.remove_background(pixels, model=model, result="alpha")
    return alpha.astype(np.float32) / 255.0


def test_tiled_upscale_on_cuda_agrees_with_the_cpu(shared):
    """realesr-animevideov3 (real weights, fp16 on CUDA) in 64-pixel tiles against the CPU's fp32 untiled
    result: mean absolute difference under 1 and 99.9th percentile under 8 on 0..255."""
    from PIL import Image

    with Image.open(_grabcut(shared, 1)[0]) as im:
        pixels = np.asarray(im.convert("RGB").resize((150, 100)))
    official = str(shared / "weights" / "realesr-animevideov3.pth")  # the release's tensors, re-zipped
    gpu_model = mattekit.load_model("realesr-animevideov3", task="upscale", device="cuda", weights=official)
    cpu_model = mattekit.load_model("realesr-animevideov3", task="upscale", device="cpu", weights=official)
    gpu = mattekit.upscale(pixels, model=gpu_model, tile=64).astype(np.float32)
    cpu = mattekit.upscale(pixels, model=cpu_model, tile=0).astype(np.float32)
    assert gpu.shape == cpu.shape == (400, 600, 3)
    diff = np.abs(gpu - cpu)
    assert diff.mean() < 1.0 and np.percentile(diff, 99.9) < 8, (diff.mean(), np.percentile(diff, 99.9))
    print(
        f"upscale cuda tiled vs cpu: mean {diff.mean():.3f}, p99.9 {np.percentile(diff, 99.9):.2f}, max {diff.max():.0f}"
    )


def test_shared_sam_frame_features_stay_in_host_memory_and_come_back_on_the_gpu():
    """SAM 2.1's shared frame features (roto's objects and runs): what FrameFeatures keeps is on the CPU, whatever the
    model's device, and a reuse hands back the first encoding's answer on the GPU, bit for bit."""
    from mattekit.nets.sam2.model import SAM2
    from mattekit.nets.sam2.predictor import FrameFeatures, video_frame_input

    torch.manual_seed(0)
    model = SAM2("hiera_t").cuda().eval()
    frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    shared = FrameFeatures(1 << 30)
    first, again = shared(model, frame), shared(model, frame)
    with torch.no_grad():
        fresh = model.encode_image(video_frame_input(frame, model.image_size).cuda())
    assert (shared.misses, shared.hits) == (1, 1)
    held = next(iter(shared.held.values()))
    assert held["feat"].device.type == "cpu" and all(t.device.type == "cpu" for t in held["high_res"])
    assert again["feat"].is_cuda and all(t.is_cuda for t in again["high_res"])
    assert torch.equal(again["feat"], first["feat"]) and torch.equal(
        again["pos"], first["pos"]
    )  # the reuse: bit for bit
    assert all(torch.equal(a, b) for a, b in zip(again["high_res"], first["high_res"]))
    assert torch.allclose(first["feat"], fresh["feat"], atol=1e-5)  # (a second encoding on the GPU: within rounding)
