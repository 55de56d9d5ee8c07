"""ONNX releases as weights: parameters mapped onto our modules agree with ONNX Runtime on the same file.

Real trained ONNX files from shared/weights (see its README); ONNX Runtime on the same file and
the same input is the reference. fp32 graphs: max abs error <= 1e-4. The IS-Net file is an fp16
conversion run by ONNX Runtime as it is; we compute in fp32 with the fp16-rounded weights.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mattekit import catalog, nets, runtime, weights
from mattekit.engines import inputs
from mattekit.errors import MattekitError
from mattekit.nets.isnet import ISNetDIS
from mattekit.nets.modnet import MODNet
from mattekit.nets.rvm import RobustVideoMatting
from mattekit.nets.u2net import U2NETP

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is in the dev/onnx extras")
from mattekit.engines.onnx import OnnxRunner  # noqa: E402
from mattekit.onnx_import import import_state_dict  # noqa: E402
from mattekit.options import model_choice  # noqa: E402

pytestmark = pytest.mark.needs_data
FP32_TOL = 1e-4
FP16_TOL = 1e-3  # IS-Net fp16 file: measured 2.6e-4 max (mean 8e-7) on a grabcut50 photo


@pytest.fixture(scope="module")
def shared_dir() -> Path:
    root = os.environ.get("MATTEKIT_TEST_DATA")
    if not root or not (Path(root) / "weights").is_dir():
        pytest.skip("needs the shared data folder: set MATTEKIT_TEST_DATA=../shared")
    return Path(root).resolve()


def _onnx(shared_dir: Path, name: str) -> Path:
    path = shared_dir / "weights" / name
    if not path.is_file():
        pytest.skip(f"{name} is not in {path.parent}")
    return path


def _photo(shared_dir: Path, size: tuple[int, int], name: str = "106024.jpg") -> np.ndarray:
    """A grabcut50 photo resized to (width, height): float32 H x W x 3 in [0,1]."""
    image = Image.open(shared_dir / "data/grabcut50/im" / name).convert("RGB").resize(size, Image.BILINEAR)
    return np.asarray(image, np.float32) / 255.0


def _nchw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]


def _imported(net: torch.nn.Module, path: Path, family: str | None = None) -> torch.nn.Module:
    """``net`` loaded from the ONNX file at ``path``, traced as net family ``family`` says (None: ``net(x)``)."""
    trace = nets.family(family).trace if family else None
    net.load_state_dict(import_state_dict(path, net, trace=trace), strict=True)
    return net.eval()


def _ort(path: Path, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def _max_err(ours: torch.Tensor, reference: np.ndarray) -> float:
    assert tuple(ours.shape) == reference.shape
    return float(np.abs(ours.detach().numpy() - reference).max())


@pytest.mark.slow
def test_u2netp_rembg_release_matches_onnxruntime(shared_dir):
    path = _onnx(shared_dir, "u2netp.onnx")
    x = inputs.prepare(
        catalog.load().get("u2netp"), _photo(shared_dir, (400, 300))
    )  # 1 x 3 x 320 x 320, as the catalog feeds it
    net = _imported(U2NETP(3, 1), path)
    reference = _ort(path, {"input.1": x.numpy()})
    with torch.no_grad():
        errors32 = [_max_err(o, r) for o, r in zip(net(x), reference)]
        # torch's own fp32 CPU convolutions differ from an fp64 run by ~1.1e-4 here (ONNX Runtime's by 2.8e-5):
        # the mapping itself is checked in fp64, the fp32 engine gets that rounding on top.
        errors64 = [_max_err(o.float(), r) for o, r in zip(net.double()(x.double()), reference)]
    print(
        f"u2netp.onnx: max abs error per output, fp64 {['%.2g' % e for e in errors64]}, fp32 {['%.2g' % e for e in errors32]}"
    )
    assert len(errors64) == 7 and max(errors64) <= FP32_TOL and max(errors32) <= 2 * FP32_TOL


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_modnet_official_export_matches_onnxruntime(shared_dir):
    path = _onnx(shared_dir, "modnet_photographic_portrait_matting.onnx")
    x = _nchw(_photo(shared_dir, (256, 320)) * 2 - 1)  # MODNet input: [-1, 1], sides multiples of 32
    net = _imported(MODNet(), path, "modnet")
    assert not net.lr_branch.conv_lr.layers[0].weight.any(), "heads left out of the export are zeros"
    with torch.no_grad():
        matte = net(x, inference=True)[2]
    err = _max_err(matte, _ort(path, {"input": x.numpy()})[0])
    print(f"modnet onnx: max abs error {err:.2g}")
    assert err <= FP32_TOL


@pytest.mark.slow
def test_isnet_fp16_conversion_matches_onnxruntime(shared_dir):
    """About 40 s on 2 cores: IS-Net's input is fixed at 1024 x 1024."""
    path = _onnx(shared_dir, "isnet-general-use.imgly-fp16.onnx")
    x = _nchw(_photo(shared_dir, (1024, 1024)) - 0.5)  # the catalog's IS-Net normalisation
    net = _imported(ISNetDIS(3, 1), path)
    assert all(t.dtype is torch.float32 for t in net.state_dict().values() if t.is_floating_point())
    with torch.no_grad():
        ours = net(x)[0][0]
    err = _max_err(ours, _ort(path, {"input": x.numpy()})[0])
    print(f"isnet fp16 onnx: max abs error {err:.2g} (tolerance {FP16_TOL:g})")
    assert err <= FP16_TOL


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_rvm_ten_frame_clip_matches_onnxruntime_with_carried_state(shared_dir):
    """Each side carries its own recurrent state over 10 DAVIS frames (256 x 144, downsample 0.5)."""
    path = _onnx(shared_dir, "rvm_mobilenetv3_fp32.onnx")
    folder = shared_dir / "data/davis/im/breakdance"
    net = _imported(RobustVideoMatting(), path, "rvm")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ours_state = RobustVideoMatting.initial_state()
    ref_state = [r.numpy() for r in ours_state]
    ratio = np.array([0.5], np.float32)
    worst = np.zeros(6)
    for frame in sorted(folder.glob("*.jpg"))[:10]:
        image = Image.open(frame).convert("RGB").resize((256, 144), Image.BILINEAR)
        src = _nchw(np.asarray(image, np.float32) / 255.0)
        reference = session.run(
            None, dict(zip(("src", "r1i", "r2i", "r3i", "r4i"), [src.numpy(), *ref_state]), downsample_ratio=ratio)
        )
        with torch.no_grad():
            ours = net(src, *ours_state, float(ratio[0]))
        worst = np.maximum(worst, [_max_err(o, r) for o, r in zip(ours, reference)])
        ours_state, ref_state = ours[2:], reference[2:]
    print(
        "rvm onnx, 10 frames: max abs error "
        + ", ".join(f"{k} {e:.2g}" for k, e in zip(("fgr", "pha", "r1", "r2", "r3", "r4"), worst))
    )
    assert worst.max() <= FP32_TOL


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_onnx_runner_runs_a_file_as_it_is(shared_dir):
    path = _onnx(shared_dir, "modnet_photographic_portrait_matting.onnx")
    x = _nchw(_photo(shared_dir, (192, 128)) * 2 - 1)
    alpha = OnnxRunner(path)(x)
    assert alpha.dtype is torch.float32 and tuple(alpha.shape) == (1, 1, 128, 192)
    with torch.no_grad():
        ours = _imported(MODNet(), path, "modnet")(x, inference=True)[2]
    assert _max_err(ours, alpha.numpy()) <= FP32_TOL


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_a_graph_that_does_not_fit_names_the_first_layer(shared_dir, tmp_path):
    u2netp = _onnx(shared_dir, "u2netp.onnx")
    with pytest.raises(
        MattekitError, match=r"does not fit model 'ISNetDIS': layer #1 .* does not match the model's 'conv_in'"
    ):
        import_state_dict(u2netp, ISNetDIS(3, 1))
    with pytest.raises(MattekitError, match=r"u2netp.onnx does not fit model 'MODNet'"):
        import_state_dict(u2netp, MODNet())
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all")
    with pytest.raises(MattekitError, match="is not a readable ONNX file"):
        import_state_dict(junk, U2NETP(3, 1))


def test_folded_batch_norms_become_identities(shared_dir):
    state = import_state_dict(_onnx(shared_dir, "u2netp.onnx"), U2NETP(3, 1))
    bn = "stage1.rebnconvin.bn_s1"
    assert torch.all(state[f"{bn}.weight"] == 1) and torch.all(state[f"{bn}.bias"] == 0)
    assert torch.all(state[f"{bn}.running_mean"] == 0)
    assert torch.allclose(state[f"{bn}.running_var"], torch.full((64,), 1 - 1e-5))


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_catalog_u2netp_runs_from_the_rembg_release_offline(shared_dir, monkeypatch):
    """The .pth is not in the mirror: the catalog's second source (rembg's ONNX) is used, no network."""
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared_dir / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    predictor = runtime.ModelCache().get(model_choice("u2netp", "segment"), "cpu")
    assert predictor.weights_path == weights.cache_dir() / "u2netp.onnx"
    assert predictor.net is not None and not predictor.backend.startswith("onnx-file")  # mapped onto the module
    x = inputs.prepare(predictor.entry, _photo(shared_dir, (320, 320)))
    raw = _ort(shared_dir / "weights/u2netp.onnx", {"input.1": x.numpy()})[0]
    reference = (raw - raw.min()) / (raw.max() - raw.min())
    diff = np.abs(predictor(x).numpy() - reference)
    print(
        f"u2netp via catalog ({predictor.backend}, {predictor.dtype}): mean abs diff {diff.mean():.2g}, max {diff.max():.2g}"
    )
    assert diff.mean() <= 0.01  # bf16 engines on CPUs with native bf16 differ a little (README: 0.0036)


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_catalog_matting_models_load_from_their_onnx_releases(shared_dir, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared_dir / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    image = _photo(shared_dir, (160, 128))
    for name in ("modnet-portrait", "rvm-people"):
        predictor = runtime.ModelCache().get(model_choice(name, "matte"), "cpu")
        alpha = predictor.predict_map(image)
        assert predictor.weights_path.suffix == ".onnx", name
        assert alpha.ndim == 2 and 0.0 <= alpha.min() <= alpha.max() <= 1.0, name


def test_fetch_first_names_every_source_that_failed(monkeypatch, tmp_path):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(tmp_path))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    files = catalog.load().get("u2netp").files
    with pytest.raises(
        MattekitError,
        match=r"^None of u2netp.pth, u2netp.onnx is in the cache, the mirror folder .*, and "
        "MATTEKIT_OFFLINE=1 forbids downloading them; .*models import FILE`.$",
    ):
        weights.fetch_first(files)  # nothing anywhere: one short sentence naming both files
    (tmp_path / "u2netp.onnx").write_bytes(b"tampered")
    with pytest.raises(MattekitError, match="failed verification"):
        weights.fetch_first(files)


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_cli_remove_with_u2netp_works_offline_from_the_onnx_release(shared_dir, monkeypatch, tmp_path):
    """`mattekit remove photo.jpg --model u2netp` offline; the plain mask equals ONNX Runtime's, upsampled."""
    import cv2

    from mattekit.cli import main

    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared_dir / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    photo = shared_dir / "data/grabcut50/im/106024.jpg"
    assert main(["remove", str(photo), "-o", str(tmp_path / "cutout.png"), "--model", "u2netp"]) == 0
    assert Image.open(tmp_path / "cutout.png").mode == "RGBA"
    assert (
        main(
            [
                "remove",
                str(photo),
                "-o",
                str(tmp_path / "mask.png"),
                "--model",
                "u2netp",
                "--result",
                "alpha",
                "--no-refine",
                "--no-matting",
            ]
        )
        == 0
    )
    mask = np.asarray(Image.open(tmp_path / "mask.png").convert("L"), np.float32) / 255.0
    image = np.asarray(Image.open(photo).convert("RGB"), np.float32) / 255.0
    x = inputs.prepare(catalog.load().get("u2netp"), image)
    raw = _ort(shared_dir / "weights/u2netp.onnx", {"input.1": x.numpy()})[0][0, 0]
    reference = cv2.resize(
        (raw - raw.min()) / (raw.max() - raw.min()), mask.shape[::-1], interpolation=cv2.INTER_LINEAR
    )
    diff = np.abs(mask - reference)
    agree = ((mask > 0.5) == (reference > 0.5)).mean()
    print(
        f"mattekit remove --model u2netp --mask vs ONNX Runtime: mean abs diff {diff.mean():.3g}, "
        f"max {diff.max():.3g}, pixels on the same side of 0.5: {agree:.4f}"
    )
    assert diff.mean() <= 0.01 and agree >= 0.99


_CALL_FAULTS = """
import resource, sys, onnxruntime as ort, torch
from mattekit.engines.onnx import OnnxRunner, session_options

def faults(runner, x, calls):  # each call's minor page faults on this (the calling) thread
    counts = []
    for _ in range(calls):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        runner(x)
        counts.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
    return counts

path, x = sys.argv[1], torch.rand(1, 3, 320, 320)
if sys.argv[2] == "second":  # mattekit's session, then the same with ONNX Runtime's memory pattern (its default) on
    runner, patterned = OnnxRunner(path, threads=1), OnnxRunner(path, threads=1)
    options = session_options(ort, 1)
    options.enable_mem_pattern = True
    patterned.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    print(faults(runner, x, 2)[1], faults(patterned, x, 2)[1])
else:  # the first call; the least of three third calls, the arena kept; the same calls forced to hand it back
    runner = OnnxRunner(path, threads=1)
    first, _, *kept = faults(runner, x, 5)
    runner.run_options[False] = runner.run_options[True]
    print(first, min(kept), min(faults(runner, x, 4)[1:]))  # (the swap's first call still finds the scratch kept)
"""


def _call_faults(shared_dir: Path, which: str) -> list[int]:
    """The page-fault counts of u2netp calls at 320² (:data:`_CALL_FAULTS`), measured in a process of its own: glibc's
    settings are process-wide, and a command-line run's (mattekit.heap.for_one_image, which an earlier test may have
    made here) keep every freed block, so a shrunk arena faults nothing back in."""
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("page faults are counted per thread on Linux only")
    done = subprocess.run(
        [sys.executable, "-c", _CALL_FAULTS, str(_onnx(shared_dir, "u2netp.onnx")), which],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return [int(count) for count in done.stdout.split()]


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_a_sessions_second_call_runs_in_the_memory_of_its_first(shared_dir):
    """u2netp at 320² with mattekit's session options: the second call faults in a tenth or less of the pages the same
    session's second call faults in with ONNX Runtime's memory pattern on (its default), measured in the same run: the
    pattern lays out one more block beside what the first call filled (about 49,000 faults, 200 MB, against a few
    hundred when it was measured; a count that depends on the machine's allocator and page size)."""
    ours, patterned = _call_faults(shared_dir, "second")
    print(f"u2netp 320², page faults of a session's second call: {ours}, with the memory pattern {patterned}")
    assert ours * 10 < patterned


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_a_small_input_keeps_the_arena_between_calls_and_a_big_one_hands_it_back(shared_dir):
    """u2netp at 320²: a call reuses the calls' scratch before it (a few page faults, not tens of
    thousands); an input above SHRINK_ABOVE pixels hands its scratch back, so every call faults it in again."""
    from mattekit.engines.onnx import SHRINK_ABOVE, shrinks

    assert not shrinks((1, 3, 320, 320)) and shrinks((1, 3, 1024, 1024)) and SHRINK_ABOVE == 512 * 512
    first, kept, shrunk = _call_faults(shared_dir, "third")
    print(f"u2netp 320², page faults of a first call {first}, of a third call: arena kept {kept}, shrunk {shrunk}")
    assert (
        kept * 10 < shrunk and shrunk * 4 > first
    )  # a shrunk arena faults its scratch in again, as the first call did
