"""The bench's simulated GPU (mattekit_bench.simulated), a double no production module knows of: planned as a model
on CUDA is (batches of 8 of one shape, two workers, a GPU's readers and writers, the finish held and the temporal
filter on torch's CPU device), holding the device without using the CPU, returning the net's output shapes; injected
by the bench (``--simulate-device``) and the tests, never by the user's environment."""

from __future__ import annotations

import ast
import re
import time
from pathlib import Path

import pytest
import torch
from gpu_plans import recorded_devices, simulated_gpu

from mattekit import catalog, nets, runtime
from mattekit_bench import simulated
from mattekit.cli import main
from mattekit.engines.plan import decide
from mattekit.options import model_choice
from mattekit.running import layout as run_layout
from mattekit.predictor import Predictor

CORE = Path(runtime.__file__).parent


def test_no_production_module_knows_the_simulated_gpu_and_matting_imports_only_ops():
    """Every module of core/mattekit (the bench is beside it, in bench/) is free of the simulation's names (simulat*,
    SIMULATE), and the matting solvers import nothing of mattekit but its pixel operations (mattekit.ops), the errors
    a user sees (mattekit.errors, a leaf: two shots that differ are refused in one sentence) and their own modules."""
    knowing = [
        f"{path.relative_to(CORE)}:{number}"
        for path in sorted(CORE.rglob("*"))
        if path.is_file() and path.suffix in (".py", ".json", ".md", ".txt")
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if re.search("simulat", line, re.IGNORECASE)
    ]
    assert not knowing, f"production modules that name the simulated GPU: {knowing}"
    imported = set()
    for path in (CORE / "matting").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                imported.add((node.module or "").split(".")[0])
            elif isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
                names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                imported |= {n.split(".")[1] for n in names if n and n.startswith("mattekit.")}
    assert imported <= {"ops", "errors"}, f"matting imports {sorted(imported)}"


def test_a_simulated_gpu_is_planned_as_a_gpu_and_the_users_environment_cannot_ask_for_it(monkeypatch, capsys):
    entry = catalog.load().get("u2netp")
    made = simulated.deciding(25)(entry)
    assert (made.device, made.engine, made.batch, made.workers, made.pad) == ("cuda", "torch", 8, 2, True)
    assert made.precision == ("fp16" if entry.half else "fp32") and made.compile == "auto"  # as on a real GPU
    assert made.finish == simulated.HeldFinish(25.0) and made.temporal == "cpu"  # held; torch's CPU device
    assert "simulated GPU: 25 ms an image" in made.why("device")
    assert simulated.deciding(25)(entry, "cpu") == decide(entry, "cpu")  # a CPU asked for is planned for real
    real = decide(entry)
    monkeypatch.setenv("MATTEKIT_SIMULATE_DEVICE", "25")  # (what once made a user's command a simulated one)
    assert decide(entry) == real
    assert main(["bench", "speed", "--simulate-device", "-1"]) == 2
    assert "--simulate-device takes milliseconds per image, 0 or more." in capsys.readouterr().err


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


@pytest.mark.slow
def test_a_simulated_predictor_gives_a_predictors_answer_at_a_gpus_host_cost(shared, monkeypatch):
    """What a caller of the simulated GPU's predictor gets: at every call the prediction a plain predictor gives for
    its engine's output (the catalog's activation: u2netp's min-max and 8-bit rounding); and, as a GPU activates on the device with the net, the host does not activate each batch again: a call costs
    this thread less CPU time than the plain predictor's host activation of the same batch."""
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    simulated_gpu(monkeypatch)
    predictor = runtime.ModelCache().get(model_choice("u2netp", "segment"))
    x = torch.rand(8, 3, 640, 640)
    want = Predictor.__call__(predictor, x)  # the plain predictor's call: the engine's output activated on the host
    got = [predictor(x) for _ in range(3)]
    assert all(torch.equal(g, want) for g in got) and want.shape == (8, 1, 640, 640)
    assert float(want.min()) == 0 and float(want.max()) == 1
    spent = []
    for call in (predictor, lambda x: Predictor.__call__(predictor, x)) * 3:
        cpu0 = time.thread_time()
        call(x)
        spent.append(time.thread_time() - cpu0)
    assert 2 * sum(spent[0::2]) < sum(spent[1::2]), spent


@pytest.mark.slow
def test_a_folder_on_a_simulated_device_runs_the_gpus_plan(shared, monkeypatch, tmp_path):
    """remove on three photos through the runner: batches of at most 3 (no more than the photos), the pipeline laid
    out as for a GPU, the figures counting every image held; the cut-outs hold the simulated subject."""
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    simulated_gpu(monkeypatch, 2)
    predictor = runtime.ModelCache().get(model_choice("u2netp", "segment"))
    assert predictor.plan.device == "cuda" and predictor.backend == "simulated-cuda-2ms"
    layout = run_layout.plan(predictor)
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
    assert main(["bench", "speed", "--model", "u2netp", "--simulate-device", "1", "--limit", "4", "--chunk", "4"]) == 0
    out = capsys.readouterr().out
    assert "simulated device (1 ms an image): held" in out and "busy" in out and "rembg" not in out.split("\n")[3]


@pytest.mark.slow
def test_bench_speed_whole_on_a_simulated_device_gives_each_commands_start_up(shared, monkeypatch, capsys):
    """`bench speed --whole --simulate-device 0`: each command's row ends with the device's busy shares and the
    seconds from the command's launch to its first batch (its start-up), which lie inside the command's seconds."""
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    data = str(shared / "data/grabcut50/im")
    code = main(
        ["bench", "speed", "--whole", "--simulate-device", "0", "--model", "u2netp", "--data", data] + ["--limit", "2"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "first batch" in out.splitlines()[4], out
    for name in ("mattekit remove", "mattekit remove --no-refine --no-matting"):
        row = next(line for line in out.splitlines() if line.startswith(name + " "))
        seconds, _, _, _, busy, busy_in_run, first = row[len(name) :].split()
        assert busy.endswith("%") and busy_in_run.endswith("%"), row
        assert 0.2 < float(first) < float(seconds), row  # at least the interpreter's and torch's imports


@pytest.mark.slow
def test_remove_and_roto_give_the_finish_and_the_filter_the_device_the_models_plan_names(shared, monkeypatch, tmp_path):
    """On the simulated GPU: remove's finish of a 1 MP photo and roto's temporal filter get the device its plan names
    for them (the held finish; torch's CPU device for the filter), and a model asked on the CPU gives them none (the
    CPU cores' own path)."""
    import cv2
    from plates import make_plate

    from mattekit.io import read_image, write_image

    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    simulated_gpu(monkeypatch)
    finishes, filters = recorded_devices(monkeypatch)
    photo = sorted((shared / "data" / "grabcut50" / "im").iterdir())[0]
    write_image(tmp_path / "big.png", cv2.resize(read_image(photo).pixels, (1280, 960), interpolation=cv2.INTER_CUBIC))
    for device in ("auto", "cpu"):
        out = ["-o", str(tmp_path / device), str(tmp_path / "big.png")]
        assert main(["remove", "-q", "--model", "u2netp", "--device", device, "--no-matting", *out]) == 0
        plate = make_plate(shared, tmp_path / "plate", 3)
        roto = ["roto", plate, "--model", "u2netp", "--device", device, "-o", str(tmp_path / device / "m.####.png")]
        assert main(roto) == 0
    assert finishes == [simulated.HeldFinish(0.0), None], finishes
    assert filters == [torch.device("cpu"), None], filters


@pytest.mark.slow
def test_a_large_photos_finish_on_a_simulated_device_is_held_not_computed(shared, monkeypatch, tmp_path):
    """remove with the defaults on a 1.2 MP photo (its finish goes to the model's device on a GPU's plan): the
    finish's device steps (refinement band, edge solve, foreground colours) are held on the simulated device, not
    computed: the cut-out has the photo's size, the simulated subject as its alpha and the photo's own colours under
    it."""
    import cv2
    import numpy as np
    from PIL import Image

    from mattekit.io import read_image, write_image

    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    simulated_gpu(monkeypatch)
    photo = read_image(sorted((shared / "data" / "grabcut50" / "im").iterdir())[0]).pixels
    big = cv2.resize(photo, (1280, 960), interpolation=cv2.INTER_CUBIC)
    write_image(tmp_path / "big.png", big)
    assert main(["remove", "-q", "--model", "u2netp", "-o", str(tmp_path / "out"), str(tmp_path / "big.png")]) == 0
    assert simulated.figures()["finish_steps"] >= 2, simulated.figures()
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
