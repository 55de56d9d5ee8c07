"""The model's own answer: with the same real weights, mattekit's plain path gives what the model's
reference pipeline gives, on real photos.

Each reference (tests/helpers/fidelity_references.py) is written from the upstream inference facts
(``shared/conformance`` manifests, rembg's sessions), independently of mattekit's preprocessing code: its own
resize, scaling, normalisation, output normalisation and upsampling, and ONNX Runtime on the released file where the
weights are an ONNX release (else the net run eagerly in fp32). mattekit's side is the plain path as the
CLI runs it (``mask-preview``; ``matte --model NAME --result alpha`` for matting models): the photo read
as the CLI reads it, the catalog's pipeline, the default engine and precision (``auto``), or the precision
a test forces (bf16 runs emulated on CPUs without native bf16, so every machine checks the path that
users with native bf16 take).

Agreement, per photo: mean |delta alpha| <= 2e-3; and IoU at 0.5 against the ground truth equal to 3
decimals (mean over the photos). Photos: 10 from grabcut50 (people and objects).
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from mattekit.engines.inputs import prepare_array
from mattekit.engines.plan import decide
from mattekit import catalog, io, runtime
from mattekit_bench import metrics
from mask_scores import agreement
from mattekit.tasks import mask_preview, matte
from mattekit.options import ModelChoice
from fidelity_references import (
    csnet_sod,
    dis_isnet,
    extremec3_portrait,
    modnet_portrait,
    rembg_u2net,
    rvm_people,
    sinet_portrait,
)

pytest.importorskip("onnxruntime", reason="onnxruntime (dev extra) runs the ONNX releases as they are")

PHOTOS = (
    "person1.jpg",
    "person3.jpg",
    "person5.jpg",
    "person7.jpg",
    "106024.jpg",
    "124080.jpg",
    "teddy.jpg",
    "sheep.jpg",
    "flower.jpg",
    "llama.png",
)
MEAN_DELTA = 2e-3  # per photo
# A departure from a model's reference ships only if it scores at least as well on the report halves of two sets;
# it is then held to the bound measured here (csnet-sod's area shrink was one, until grabcut50's report half ruled it out).
DEPARTURES: dict[str, float] = {}  # model -> bound on a measured departure kept from its reference (none today)
IOU_DECIMALS = 5e-4  # |mean IoU difference|: the same to 3 decimals


@pytest.fixture(autouse=True)
def _mirror(shared, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")


# ------------------------------------------------------------------ mattekit's plain path


def mattekit_plain(predictor, path: Path) -> np.ndarray:
    """The plain path as the CLI runs it: mask-preview for segmentation models, ``matte --model NAME
    --result alpha`` for matting models. H x W float32 [0,1]."""
    task = mask_preview.TASK if predictor.entry.task == "segment" else matte.TASK
    picture = io.read_image(path, integers=task.inputs[0].integers)
    options = task.make_options(
        {"model": predictor.entry.name} | ({} if task is mask_preview.TASK else {"result": "alpha"})
    )
    out = task.run({"model": predictor}, {"image": picture.pixels}, options)
    result = out["mask"] if task is mask_preview.TASK else out["result"]
    return np.asarray(result, np.float32)[..., -1] if np.ndim(result) == 3 else np.asarray(result, np.float32)


MODELS = {  # catalog name: (reference, weights file used by both sides or None for the catalog's, threshold the
    #         mattekit map at 0.5 before comparing: the upstream answer is a 0/1 mask)
    "u2netp": (rembg_u2net, None, False),
    "isnet-general-use": (dis_isnet, "isnet-general-use.imgly-fp16.onnx", False),
    "csnet-sod": (csnet_sod, None, False),
    "sinet-portrait": (sinet_portrait, None, False),
    "extremec3-portrait": (extremec3_portrait, None, True),
    "modnet-portrait": (modnet_portrait, None, False),
    "rvm-people": (rvm_people, None, False),
}


@pytest.fixture(scope="session")
def answers() -> dict:
    """The session's answers, computed once: each model's reference on the photos (and the ground truth's IoU of
    it), and mattekit's per model and engine (the same engine, weights and photos give the same answer)."""
    return {}


def _photos(shared: Path):
    for photo_name in PHOTOS:
        path = shared / "data/grabcut50/im" / photo_name
        gt = cv2.imread(str(shared / "data/grabcut50/gt" / (Path(photo_name).stem + ".png")), cv2.IMREAD_GRAYSCALE)
        yield path, gt


def _references(shared: Path, name: str, answers: dict) -> list:
    """[(reference answer, its IoU against the ground truth)] per photo, once a session."""
    if ("reference", name) not in answers:
        reference = MODELS[name][0]
        found = []
        for path, gt in _photos(shared):
            theirs = reference(shared, np.asarray(Image.open(path).convert("RGB")))
            found.append((theirs, float(metrics.iou(theirs, gt))))
        answers["reference", name] = found
    return answers["reference", name]


def compare(shared: Path, name: str, answers: dict, precision: str = "auto", entry=None) -> dict:
    """Per photo: mean |delta| between mattekit's plain path and the reference, and both IoUs against
    the ground truth. Returns {"delta": [...], "iou_mattekit": [...], "iou_reference": [...], "engine": str,
    "dtype": the engine's parameters' dtypes}. ``entry``: a catalog entry to use instead of the catalog's."""
    _, weights_name, hard = MODELS[name]
    entry = entry or catalog.load().get(name)
    weights_path = shared / "weights" / weights_name if weights_name else None
    predictor = runtime.ModelCache().get(ModelChoice(entry.name, entry), "cpu", weights_path, precision=precision)
    engine = f"{predictor.backend} {predictor.dtype}"
    key = ("mattekit", name, engine, weights_name)
    if key not in answers:
        found = {
            "delta": [],
            "iou_mattekit": [],
            "iou_reference": [],
            "engine": engine,
            "dtype": {p.dtype for p in predictor.net.parameters()} if predictor.net is not None else set(),
        }
        for (path, gt), (theirs, iou_theirs) in zip(_photos(shared), _references(shared, name, answers)):
            ours = mattekit_plain(predictor, path)
            if hard:
                ours = (ours >= 0.5).astype(np.float32)
            assert ours.shape == theirs.shape == gt.shape
            found["delta"].append(float(np.abs(ours - theirs).mean()))
            found["iou_mattekit"].append(float(metrics.iou(ours, gt)))
            found["iou_reference"].append(iou_theirs)
        answers[key] = found
    return answers[key]


def check(found: dict, name: str) -> None:
    delta = np.array(found["delta"])
    iou_m, iou_r = np.mean(found["iou_mattekit"]), np.mean(found["iou_reference"])
    print(
        f"{name} ({found['engine']}): mean |delta| per photo max {delta.max():.2e} (mean {delta.mean():.2e}); "
        f"IoU mattekit {iou_m:.4f} reference {iou_r:.4f}"
    )
    if name in DEPARTURES:  # measured, bounded, and reported until the departure is settled
        assert delta.max() <= DEPARTURES[name], (
            f"{name}: photo {PHOTOS[int(delta.argmax())]} differs by {delta.max():.2e}"
        )
        return
    assert delta.max() <= MEAN_DELTA, f"{name}: photo {PHOTOS[int(delta.argmax())]} differs by {delta.max():.2e}"
    assert abs(iou_m - iou_r) <= IOU_DECIMALS, f"{name}: IoU {iou_m:.4f} vs the reference's {iou_r:.4f}"


FAST = ("u2netp",)  # the rest are marked slow: the quick subset stays under 5 minutes


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in MODELS])
def test_plain_path_gives_the_reference_pipelines_answer(shared, name, answers):
    check(compare(shared, name, answers), name)


# docs/benchmarks.md, Precision: sinet-portrait in bf16 against fp32 (whose answer is the reference's to 5e-7),
# grabcut50 tuning / report half: the worst photo's mean |delta| 0.030 / 0.0097, mean IoU moved 0.0000 / 0.0051.
SINET_BF16_DELTA, SINET_BF16_IOU = 0.030, 0.0051


@pytest.mark.slow
def test_a_cpu_with_native_bf16_still_gets_the_reference_answer(shared, monkeypatch, answers):
    """A CPU with native bf16 (claimed by ``MATTEKIT_CPU_BF16=1``, so every machine takes that path; bf16 is
    emulated where the CPU has none). ``auto`` there runs every fidelity model as the catalog marks it: a model
    marked ``cpu_bf16`` must still give the reference's answer (MEAN_DELTA); the others (all today: no model keeps
    the policy's bound, IoU 0.002 and 2e-3 a photo, see the next test) run on the very engine and precision they
    run on without the claim, whose answer test_plain_path_gives_the_reference_pipelines_answer checks against the
    reference (the same engine, weights and photos give the same answer). Then the bf16 path itself:
    sinet-portrait (real weights) marked ``cpu_bf16`` here takes torch in bf16 under ``auto`` (its parameters are
    bf16), and its answer against the reference pipeline stays within the departure measured and documented for
    it (SINET_BF16_*); without the claim the same entry stays fp32."""
    import dataclasses

    plans = {}
    for claim in ("0", "1"):
        monkeypatch.setenv("MATTEKIT_CPU_BF16", claim)
        plans[claim] = {
            name: (lambda made: (made.engine, made.precision))(decide(catalog.load().get(name), "cpu"))
            for name in MODELS
        }
    for name in MODELS:  # a model the catalog marks cpu_bf16 runs otherwise there: its answer is checked here
        if plans["1"][name] != plans["0"][name]:
            check(compare(shared, name, answers), name)

    marked = dataclasses.replace(catalog.load().get("sinet-portrait"), cpu_bf16=True)
    monkeypatch.setenv("MATTEKIT_CPU_BF16", "0")
    assert decide(marked, "cpu").precision == "fp32"  # no native bf16: fp32, whatever the catalog says
    monkeypatch.setenv("MATTEKIT_CPU_BF16", "1")
    assert (decide(marked, "cpu").engine, decide(marked, "cpu").precision) == ("torch", "bf16")
    found = compare(shared, "sinet-portrait", answers, entry=marked)
    assert found["engine"].startswith("torch-cpu-bf16") and found["dtype"] == {torch.bfloat16}, found["engine"]
    delta = np.array(found["delta"])
    iou_m, iou_r = np.mean(found["iou_mattekit"]), np.mean(found["iou_reference"])
    print(
        f"sinet-portrait, native-bf16 path ({found['engine']}): mean |delta| per photo max {delta.max():.2e}; "
        f"IoU {iou_m:.4f}, reference {iou_r:.4f}"
    )
    assert delta.max() <= SINET_BF16_DELTA, f"photo {PHOTOS[int(delta.argmax())]} differs by {delta.max():.2e}"
    assert abs(iou_m - iou_r) <= SINET_BF16_IOU, f"IoU {iou_m:.4f} vs the reference's {iou_r:.4f}"
    assert delta.max() > 0  # bf16 really ran: fp32's answer is the reference's to 5e-7 on these photos


BF16_IOU = 0.002  # the precision policy: IoU within this of fp32's ...
BF16_DELTA = 2e-3  # ... and mean |delta alpha| within this, on every photo


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["u2netp", "csnet-sod", "sinet-portrait", "extremec3-portrait"]
)  # emulated bf16: MODNet,
# RVM and IS-Net take minutes a photo here (their figures: docs/benchmarks.md "Precision")
def test_the_catalogs_bf16_decision_holds_on_real_weights(shared, name, answers):
    """bf16 forced (emulated where the CPU has no native bf16) against fp32, same photos: the catalog marks a
    model ``cpu_bf16`` exactly when bf16 keeps IoU within 0.002 and every photo's mean |delta| within 2e-3."""
    entry = catalog.load().get(name)
    fp32, bf16 = compare(shared, name, answers, "fp32"), compare(shared, name, answers, "bf16")
    assert "bfloat16" in bf16["engine"]
    delta = max(abs(a - b) for a, b in zip(fp32["delta"], bf16["delta"]))  # lower bound of the bf16-fp32 move
    iou = abs(np.mean(fp32["iou_mattekit"]) - np.mean(bf16["iou_mattekit"]))
    keeps = iou <= BF16_IOU and max(bf16["delta"]) <= BF16_DELTA
    print(
        f"{name}: bf16 vs the reference max mean |delta| {max(bf16['delta']):.2e} (fp32 {max(fp32['delta']):.2e}); "
        f"IoU {np.mean(bf16['iou_mattekit']):.4f} vs fp32 {np.mean(fp32['iou_mattekit']):.4f}; shift {delta:.2e}"
    )
    assert keeps == entry.cpu_bf16, (
        f"{name}: bf16 {'keeps' if keeps else 'does not keep'} the answer, catalog cpu_bf16={entry.cpu_bf16}"
    )


HALF_DELTA = 2e-3  # issue 69's bounds for CUDA against the CPU's fp32: each photo's mean |delta| within this ...
HALF_IOU = 0.995  # ... and the masks' IoU at least this


def fp16_emulated(net):
    """A copy of ``net`` that computes as fp16 storage with fp32 sums does (CUDA's half), at fp32's speed on a CPU:
    its parameters and buffers, and every module's inputs and outputs, rounded through fp16."""
    import copy

    def rounded(value):
        if isinstance(value, torch.Tensor):
            return value.half().float() if value.is_floating_point() else value
        return type(value)(rounded(v) for v in value) if isinstance(value, (tuple, list)) else value

    emulated = copy.deepcopy(net)
    with torch.no_grad():
        for tensor in [*emulated.parameters(), *emulated.buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
    for module in emulated.modules():
        module.register_forward_pre_hook(lambda _, args: rounded(args))
        module.register_forward_hook(lambda _, args, out: rounded(out))
    return emulated


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, photo, real_half",
    [  # torch's CPU half runs u2netp 1.5-2 min a photo on a busy 2-core machine, IS-Net over 15 min: IS-Net's
        # decision is read from the emulation, which u2netp's case holds to the real half path; the decisions were
        # taken on all of grabcut50, 10 DAVIS frames and alphamatting (docs/benchmarks.md "Precision")
        ("u2netp", "banana2.png", True),  # where fp16 moved it most there: mean |delta| 1.0e-2, 5x the bound
        ("isnet-general-use", "person1.jpg", False),  # a fidelity photo (people)
    ],
)
def test_the_catalogs_fp16_decision_holds_on_real_weights(shared, name, photo, real_half):
    """fp16 as CUDA runs it (weights and activations in fp16, sums in fp32) against fp32, the net's own map of a
    grabcut50 photo: the catalog marks a model ``half`` (fp16 by default on CUDA) exactly when it keeps issue 69's
    bounds, mean |delta| within 2e-3 and IoU at least 0.995. With ``real_half`` torch's CPU half path (fp32 sums,
    as cuDNN) runs too and the emulation (:func:`fp16_emulated`) must agree with it: mean |delta| within 2e-4, IoU
    within 0.003 (measured 2e-5 and 3e-4 on banana2)."""
    import copy

    from mattekit import engines

    entry = catalog.load().get(name)
    weights_name = MODELS[name][1]
    weights_path = shared / "weights" / weights_name if weights_name else None
    recipe = engines.recipe_for(entry, weights_path)
    net = engines.load_net(recipe, recipe.weights)
    predictor = runtime.ModelCache().get(
        ModelChoice(entry.name, entry), "cpu", weights_path, precision="fp32"
    )  # its activation

    def answer(module, x):
        out = module(x)
        for i in entry.output.index:
            out = out[i]
        return predictor._activate(out.float())[0, 0].numpy()

    x = torch.from_numpy(prepare_array(entry, io.read_image(shared / "data/grabcut50/im" / photo).pixels[..., :3]))
    with torch.no_grad():
        fp32, emulated = answer(net, x), answer(fp16_emulated(net), x)
        delta, iou = float(np.abs(fp32 - emulated).mean()), agreement(fp32, emulated)
        if real_half:
            half = answer(copy.deepcopy(net).half(), x.half())
            real_delta, real_iou = float(np.abs(fp32 - half).mean()), agreement(fp32, half)
            assert abs(real_delta - delta) <= 2e-4 and abs(real_iou - iou) <= 0.003, (real_delta, delta, real_iou, iou)
            delta, iou = real_delta, real_iou
    keeps = delta <= HALF_DELTA and iou >= HALF_IOU
    print(f"{name}, fp16 against fp32 on {photo}: mean |delta| {delta:.2e}, IoU {iou:.4f}")
    assert keeps == entry.half, (
        f"{name}: fp16 {'keeps' if keeps else 'does not keep'} the answer, catalog half={entry.half}"
    )


@pytest.mark.slow
def test_the_python_api_gives_the_clis_answer_for_every_kind_of_input(shared):
    """An 8-bit photo given to the API as a path, a uint8 array, a PIL image or PNG bytes reaches the
    network as the CLI's 8-bit read does (not through floats): the same mask, bit for bit."""
    import mattekit

    entry = catalog.load().get("u2netp")
    model = runtime.ModelCache().get(ModelChoice(entry.name, entry), "cpu", None)
    path = shared / "data/grabcut50/im" / PHOTOS[0]
    cli = np.round(mattekit_plain(model, path) * 255.0).astype(np.uint8)
    pixels = np.asarray(Image.open(path).convert("RGB"))
    buffer = BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    given = {
        "uint8 array": mattekit.mask_preview(pixels, model=model),
        "PIL image": np.asarray(mattekit.mask_preview(Image.fromarray(pixels), model=model)),
        "PNG bytes": np.asarray(Image.open(BytesIO(mattekit.mask_preview(buffer.getvalue(), model=model)))),
    }
    for kind, mask in given.items():
        mask = mask[..., -1] if mask.ndim == 3 else mask
        assert mask.dtype == np.uint8 and mask.shape == cli.shape, kind
        assert np.array_equal(mask, cli), f"{kind}: {np.count_nonzero(mask != cli)} pixels differ"
