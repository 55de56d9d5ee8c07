"""The simulated GPU (mattekit.engines.simulated): planned as a model on CUDA is (batches of 8 of one shape, two workers, a
GPU's readers and writers, the finish and the temporal filter on the model's device), holding the device without
using the CPU, returning the net's output shapes; the bench's ``--simulate-device`` prints the device's busy share."""

from __future__ import annotations

import os
import time

import pytest
import torch

from mattekit import catalog, nets, runtime
from mattekit.cli import main
from mattekit.engines import simulated
from mattekit.engines.plan import decide
from mattekit.errors import MattekitError
from mattekit.running import pipeline
from mattekit.options import model_choice


def test_a_simulated_device_is_planned_as_a_gpu_and_says_so(monkeypatch):
    monkeypatch.setenv(simulated.VARIABLE, "25")
    made_entry = catalog.load().get("u2netp")
    made = decide(made_entry)
    assert (made.device, made.engine, made.simulated, made.batch, made.workers) == ("cuda", "torch", 25.0, 8, 2)
    assert made.precision == ("fp16" if made_entry.half else "fp32") and made.compile == "auto"  # as on a real GPU
    assert (made.finish, made.temporal) == ("meta", "cpu")  # the finish held, the filter on torch's CPU device
    assert "simulated: 25 ms an image" in made.why("device") and "simulated 25 ms" in made.describe()
    assert decide(catalog.load().get("u2netp"), "cpu").simulated is None  # a CPU asked for stays the CPU
    monkeypatch.setenv(simulated.VARIABLE, "fast")
    with pytest.raises(MattekitError, match="not a number of milliseconds"):
        decide(catalog.load().get("u2netp"))


def test_the_device_is_held_without_using_the_cpu_and_gives_the_nets_output_shapes():
    """The calling thread sleeps in the device's lock (no CPU time, no GIL); the output has the shape the real net
    gives (a net whose output size follows the input: realesr-animevideov3 at 4x)."""
    entry = catalog.load().get("realesr-animevideov3")
    recipe = {"net": entry.net, "kwargs": entry.kwargs}
    engine = simulated.SimulatedDevice(100, recipe, entry.output.index)
    simulated.reset()
    x = torch.rand(2, 3, 24, 40)
    engine(x)  # the shape found once
    cpu0 = time.thread_time()
    out = engine(x)
    spent = time.thread_time() - cpu0
    got = simulated.figures()
    assert got["held_s"] >= 0.4 and got["batches"] == 2 and got["images"] == 4  # 100 ms x 2 images, twice
    assert spent < 0.1, f"the device's 200 ms took {spent:.3f} s of this thread's CPU time"
    real = nets.build(entry.net, **entry.kwargs).eval()
    with torch.no_grad():
        assert out.shape == real(x).shape and out.dtype == torch.float32


def test_a_simulated_predictor_activates_once_per_shape_as_a_gpu_does_on_the_device(shared, monkeypatch):
    """A GPU's predictor runs the activation on the device with the net; the simulated one gives the same prediction
    (the host's activation of the simulated net's output) but computes it once per input shape, not on the host at
    every batch (IS-Net's 1024 x 1024 sigmoid: about 12 ms of host CPU an image)."""
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv(simulated.VARIABLE, "0")
    predictor = runtime.ModelCache().get(model_choice("u2netp", "segment"))
    host_activation, calls = predictor._activate, []
    monkeypatch.setattr(predictor, "_activate", lambda out: calls.append(out.shape) or host_activation(out))
    x = torch.rand(2, 3, 320, 320)
    got = [predictor(x) for _ in range(3)]
    want = host_activation(predictor.engine(x))
    assert len(calls) == 1 and all(torch.equal(g, want) for g in got), calls
    assert float(want.min()) >= 0 and float(want.max()) <= 1 and want.shape == (2, 1, 320, 320)


def test_a_folder_on_a_simulated_device_runs_the_gpus_plan(shared, monkeypatch, tmp_path):
    """remove on three photos through the runner: batches of at most 3 (no more than the photos), the pipeline laid
    out as for a GPU, the figures counting every image held; the cut-outs hold the simulated subject."""
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv(simulated.VARIABLE, "2")
    simulated.reset()
    predictor = runtime.ModelCache().get(model_choice("u2netp", "segment"))
    assert predictor.device_type == "cuda" and predictor.backend == "simulated-cuda-2ms"
    layout = pipeline.plan(predictor)
    assert layout["pad"] and layout["batch"] == 8 and layout["workers"] == 2
    photos = sorted((shared / "data" / "grabcut50" / "im").iterdir())[:3]
    assert main(["remove", "-q", "--model", "u2netp", "-o", str(tmp_path), *map(str, photos)]) == 0
    got = simulated.figures()
    assert 3 <= got["images"] <= 3 * got["batches"] and got["held_s"] >= 0.002 * got["images"]
    from PIL import Image
    import numpy as np

    alpha = np.asarray(Image.open(tmp_path / f"{photos[0].stem}.png"))[..., 3]
    h, w = alpha.shape
    assert alpha[h // 2, w // 2] == 255 and alpha[2, 2] == 0  # the ellipse in the middle


@pytest.mark.slow
def test_bench_speed_prints_the_simulated_devices_busy_share(shared, monkeypatch, capsys):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.delenv(simulated.VARIABLE, raising=False)
    assert main(["bench", "speed", "--model", "u2netp", "--simulate-device", "1", "--limit", "4", "--chunk", "4"]) == 0
    out = capsys.readouterr().out
    assert "simulated device (1 ms an image): held" in out and "busy" in out and "rembg" not in out.split("\n")[3]
    assert simulated.VARIABLE not in os.environ  # the bench's own setting ends with it: later runs use the real device


@pytest.mark.slow
def test_remove_and_roto_give_the_finish_and_the_filter_the_device_the_models_plan_names(shared, monkeypatch, tmp_path):
    """A predictor that reports CUDA while it runs on the CPU (the simulated GPU): remove's finish of a 1 MP photo and
    roto's temporal filter get the device its plan names for them (the model's; torch's CPU device here), and a model
    asked on the CPU gives them none (the CPU cores' own path). The finish's device is the simulated one (torch's
    meta device: held, not computed), the filter's torch's CPU device."""
    import cv2
    from plates import make_plate

    from mattekit.io import read_image, write_image
    from mattekit.finish import cutout
    from mattekit.roto import ordered

    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv(simulated.VARIABLE, "0")
    finishes, filters = [], []
    cut_out = cutout.cut_out
    monkeypatch.setattr(cutout, "cut_out", lambda *a, **k: finishes.append(k.get("device")) or cut_out(*a, **k))

    class Recorded(ordered.OrderedSmoother):
        def __init__(self, *a, **k):
            if "device" in k:  # the filter that runs (frames_read's schedule, which filters nothing, gives none)
                filters.append(k["device"])
            super().__init__(*a, **k)

    monkeypatch.setattr(ordered, "OrderedSmoother", Recorded)
    photo = sorted((shared / "data" / "grabcut50" / "im").iterdir())[0]
    write_image(tmp_path / "big.png", cv2.resize(read_image(photo).pixels, (1280, 960), interpolation=cv2.INTER_CUBIC))
    for device in ("auto", "cpu"):
        assert (
            main(
                [
                    "remove",
                    "-q",
                    "--model",
                    "u2netp",
                    "--device",
                    device,
                    "--no-matting",
                    "-o",
                    str(tmp_path / device),
                    str(tmp_path / "big.png"),
                ]
            )
            == 0
        )
        plate = make_plate(shared, tmp_path / "plate", 3)
        assert (
            main(["roto", plate, "--model", "u2netp", "--device", device, "-o", str(tmp_path / device / "m.####.png")])
            == 0
        )
    assert finishes == [torch.device("meta"), None] and filters == [torch.device("cpu"), None], (finishes, filters)


@pytest.mark.slow
def test_a_large_photos_finish_on_a_simulated_device_is_held_not_computed(shared, monkeypatch, tmp_path):
    """remove with the defaults on a 1.2 MP photo (its finish goes to the model's device on a GPU's plan): none of the
    finish's three device steps computes (refinement band, edge solve, foreground colours); each is held on the
    simulated device instead, and the cut-out has the photo's size, the simulated subject as its alpha and the photo's
    own colours under it."""
    import cv2
    import numpy as np
    from PIL import Image

    from mattekit.finish import refine_device
    from mattekit.io import read_image, write_image
    from mattekit.matting import foreground_device, solve_device

    computed = []
    for module, step in ((refine_device, "_band"), (solve_device, "_solve"), (foreground_device, "_solved")):
        real = getattr(module, step)
        monkeypatch.setattr(module, step, lambda *a, _real=real, _step=step: computed.append(_step) or _real(*a))
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv(simulated.VARIABLE, "0")
    simulated.reset()
    photo = read_image(sorted((shared / "data" / "grabcut50" / "im").iterdir())[0]).pixels
    big = cv2.resize(photo, (1280, 960), interpolation=cv2.INTER_CUBIC)
    write_image(tmp_path / "big.png", big)
    assert main(["remove", "-q", "--model", "u2netp", "-o", str(tmp_path / "out"), str(tmp_path / "big.png")]) == 0
    assert computed == [] and simulated.figures()["finish_steps"] >= 2, (computed, simulated.figures())
    cut = np.asarray(Image.open(tmp_path / "out" / "big.png"))
    assert cut.shape == (960, 1280, 4)
    alpha, seen = cut[..., 3], cut[..., 3] > 0
    assert alpha[480, 640] == 255 and alpha[5, 5] == 0 and 0.1 < seen.mean() < 0.3  # the ellipse
    assert np.array_equal(cut[..., :3][seen], np.asarray(Image.open(tmp_path / "big.png"))[..., :3][seen])


def test_a_nets_output_shape_is_traced_once_then_read_from_the_cache(monkeypatch):
    """The meta-device forward that finds the output's shape cost 1.5 s of CPU, half of a simulated command's
    start-up: a later engine (a later command) reads the shape from the cache's record and builds no net; another
    input shape is traced."""
    entry = catalog.load().get("realesr-animevideov3")
    recipe = {"net": entry.net, "kwargs": entry.kwargs}
    traced = simulated.SimulatedDevice(0, recipe, entry.output.index).output_shape((3, 24, 40))

    def build(*args, **kwargs):
        raise AssertionError("the net was built again")

    monkeypatch.setattr(nets, "build", build)
    later = simulated.SimulatedDevice(0, recipe, entry.output.index)
    assert later.output_shape((3, 24, 40)) == traced and traced[-2:] == (96, 160)
    with pytest.raises(AssertionError, match="built again"):
        later.output_shape((3, 16, 16))
