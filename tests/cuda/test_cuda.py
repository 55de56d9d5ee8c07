"""The CUDA path on a real GPU: the engine in fp32 and fp16 against eager PyTorch on the CPU, a batch
equal to its images run one by one, the pipeline halving a batch that runs out of GPU memory (under a
real memory cap), and whole ``remove`` / ``upscale`` calls agreeing with the CPU.

Skipped, with the reason, where torch sees no CUDA GPU (CI has none); run them on a GPU machine with
``MATTEKIT_TEST_DATA`` set, e.g. ``python -m pytest tests/cuda/test_cuda.py``.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from engine_nets import NETS, load_net, reference
from mask_scores import agreement

import mattekit
from mattekit import engines
from mattekit.running import pipeline
from mattekit.errors import MattekitError
from mattekit.io import read_image

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here (CI has none)"),
]

HALF_OK = {"rfdn": False}  # engine_nets name -> the catalog's `half` for its model (True where absent)


def _relative_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    """||got - ref|| / ||ref|| in float64 on the CPU; NaN or Inf anywhere gives inf."""
    got = got.detach().double().cpu()
    if not torch.isfinite(got).all():
        return float("inf")
    return ((got - ref.double()).norm() / ref.double().norm().clamp_min(1e-12)).item()


@pytest.mark.parametrize("name", list(NETS))
def test_cuda_engine_matches_eager_cpu(name, golden, shared):
    """fp32 (TF32 off) within 1e-4 relative error of eager fp32 on the CPU (1.1e-6 at most on an H100); fp16,
    for the nets the catalog lets run in fp16, within 3e-2 (1.3e-3 at most there); engines named for their
    precision."""
    net, index, xs, _ = load_net(name, golden, shared)
    refs = reference(net, index, xs)
    cuda = torch.device("cuda")
    limits = {"fp32": 1e-4}
    if HALF_OK.get(name, True):
        limits["fp16"] = 3e-2
    errors = {}
    for precision, limit in limits.items():
        engine = engines.build_torch(copy.deepcopy(net), str(cuda), precision, index)
        assert engine.name == f"torch-cuda-{precision}"
        for x, ref in zip(xs, refs):
            y = engine(x)
            assert y.device.type == "cuda" and tuple(y.shape) == tuple(ref.shape)
            errors[(precision, tuple(x.shape[2:]))] = err = _relative_error(y, ref)
            assert err <= limit, f"{name} {precision} {tuple(x.shape)}: relative error {err:.2e} > {limit:g}"
    print(name, {k: f"{v:.1e}" for k, v in errors.items()})


@pytest.mark.parametrize("name", list(NETS))
def test_cuda_graph_replays_give_eager_answers(name, golden, shared):
    """Each input three times through an engine in mode ``graphs`` (eager, then captured, then replayed) in fp32
    within 1e-4 relative error of eager fp32 on the CPU, and fp16 replays within 1e-3 of the same engine's eager
    fp16 (mode ``off``); the shapes captured (or, for a net that cannot be, eager: the line says why)."""
    net, index, xs, _ = load_net(name, golden, shared)
    refs = reference(net, index, xs)
    chosen = {}
    for precision, limit in (("fp32", 1e-4), ("fp16", 1e-3)):
        if precision == "fp16" and not HALF_OK.get(name, True):
            continue
        graphs = engines.build_torch(copy.deepcopy(net), "cuda", precision, index, compile="graphs")
        eager = engines.build_torch(copy.deepcopy(net), "cuda", precision, index, compile="off")
        for x, ref in zip(xs, refs):
            base = ref if precision == "fp32" else eager(x).float().cpu()
            for _ in range(3):
                err = _relative_error(graphs(x), base)
                assert err <= limit, f"{name} {precision} {tuple(x.shape)}: {err:.2e}"
        chosen[precision] = graphs.compiled.describe()
    print(name, chosen)


def test_the_measured_choice_keeps_the_faster_and_workers_share_the_replays(golden):
    """Mode auto: from a shape's second call eager and the CUDA graph are both timed on the calls as they come and the
    faster kept; a pipeline
    of 2 workers with batches of 4 (the batch captured, then replayed from both workers' streams) gives what mode
    off gives, image by image."""
    net, index, _, _ = load_net("u2netp", golden, None)
    auto = engines.build_torch(copy.deepcopy(net), "cuda", "fp16", index, compile="auto")
    off = engines.build_torch(copy.deepcopy(net), "cuda", "fp16", index, compile="off")
    xs = _inputs(40, 320, seed=3)  # at least 6 batches of 4: a first call, then 2 made-or-timed turns of 2 candidates
    got, sizes = _run(auto, xs, batch=4, workers=2, pad=True)
    want, _ = _run(off, xs, batch=4, workers=1)
    assert sizes == [4] * 10, sizes
    for a, b in zip(got, want):
        assert _relative_error(a, b) <= 1e-3
    best, times = auto.compiled.choices[((4, 3, 320, 320), "torch.float16", False)]
    assert set(times) == {"eager", "graph"} and best == min(times, key=times.get), times
    print("u2netp fp16 4x3x320x320:", auto.compiled.describe())


def _u2netp_engine(golden):
    """U²-Netp (stand-in weights) on CUDA in fp32, eager (the memory figures below are eager's)."""
    net, index, _, _ = load_net("u2netp", golden, None)
    return engines.build_torch(net, "cuda", "fp32", index, compile="off")


def _inputs(n: int, size: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, 3, size, size, generator=g) for _ in range(n)]


def test_a_batch_gives_what_its_images_give_one_by_one(golden):
    engine = _u2netp_engine(golden)
    xs = _inputs(8, 320)
    batched = engines.to_host(engine(engines.stack_inputs(xs, engine.device.type))).float()
    assert batched.shape[0] == 8
    for i, x in enumerate(xs):
        alone = engines.to_host(engine(x)).float()
        assert _relative_error(batched[i : i + 1], alone) <= 1e-4, i


def _peak_bytes(engine, batch: int, size: int) -> int:
    """Peak GPU memory reserved by one call on a batch (after a first call, so cuDNN's autotuning is done)."""
    engine(torch.cat(_inputs(batch, size, seed=batch)))
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    engine(torch.cat(_inputs(batch, size, seed=batch)))
    torch.cuda.synchronize()
    return torch.cuda.max_memory_reserved()


def _run(engine, xs, batch, workers=1, pad=False):
    """run_pipeline over ``xs`` with batches of ``batch`` (``pad``: as the plan runs it on CUDA): (results in order,
    batch sizes infer was called with)."""
    sizes, results = [], {}

    def infer(x):
        sizes.append(x.shape[0])
        return engine(x)

    report = pipeline.run_pipeline(
        range(len(xs)),
        lambda i: (xs[i], None),
        infer,
        lambda i, _ctx, y: results.__setitem__(i, y.float().clone()),
        workers=workers,
        batch=batch,
        device=engine.device,
        pad=pad,
    )
    assert not report.failed, report.failed
    return [results[i] for i in range(len(xs))], sizes


def test_a_batch_that_runs_out_of_gpu_memory_is_halved_and_a_single_image_fails_in_one_sentence(golden):
    """Under a real cap on this process's GPU memory (twice what a batch of 2 needs), batches of 8 run out of
    memory, are halved until they fit, and give the uncapped results; a cap below one image's need fails the
    run with one sentence."""
    engine = _u2netp_engine(golden)
    size = 640
    xs = _inputs(16, size, seed=7)
    free_results, free_sizes = _run(engine, xs, batch=8)
    assert free_sizes == [8, 8]
    one, two, eight = (_peak_bytes(engine, b, size) for b in (1, 2, 8))
    assert eight > 3 * two, (one, two, eight)  # activations, not weights, dominate: the cap below can work
    total = torch.cuda.get_device_properties(0).total_memory
    try:
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(2 * two / total)
        capped_results, capped_sizes = _run(engine, xs, batch=8)
        assert capped_sizes.count(8) == 2 and min(capped_sizes) < 8, capped_sizes  # each batch of 8 tried, then halved
        for a, b in zip(capped_results, free_results):
            assert _relative_error(a, b) <= 1e-4
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(one / 4 / total)
        with pytest.raises(MattekitError, match="ran out of memory on a single image"):
            _run(engine, xs[:2], batch=2)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    print(
        f"peak reserved MB: batch 1 {one / 2**20:.0f}, 2 {two / 2**20:.0f}, 8 {eight / 2**20:.0f}; capped sizes {capped_sizes}"
    )


def _grabcut(shared, n):
    return sorted((shared / "data" / "grabcut50" / "im").iterdir())[:n]


def test_remove_on_cuda_agrees_with_the_cpu(shared, monkeypatch):
    """The default pipeline (u2netp real weights; the finish on the GPU) against the
    CPU in fp32 (not bf16, which CPUs with AMX would pick): CUDA fp32 (no TF32) within 0.002 mean absolute
    alpha difference per image, IoU at 0.5 at least 0.995; fp16 (asked for: auto is fp32 until measured) within 0.01 on average over the
    images, IoU at least 0.95 on each."""
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    on_cpu = mattekit.api.models_cache().get("u2netp", "segment", "cpu", precision="fp32")
    on_gpu = {
        "fp16": mattekit.api.models_cache().get("u2netp", "segment", "cuda", precision="fp16"),
        "fp32": mattekit.api.models_cache().get("u2netp", "segment", "cuda", precision="fp32"),
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
    from mattekit.bench.stand_in import write_stand_in

    entry = catalog.load().get("birefnet-general")
    weights = write_stand_in(entry, folder)
    cache = mattekit.api.models_cache()
    auto = cache.get(entry, "segment", fast, weights)
    fp32 = cache.get(entry, "segment", reference, weights, precision="fp32")
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
    model = mattekit.api.models_cache().get("u2netp", "segment", "cuda", precision="fp32")
    on_cpu = mattekit.api.models_cache().get("u2netp", "segment", "cpu", precision="fp32")
    cuda, figures = torch.device("cuda"), {}
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
    cuda, total = torch.device("cuda"), torch.cuda.get_device_properties(0).total_memory
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
