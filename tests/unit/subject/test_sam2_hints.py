"""`remove` hints answered by SAM 2.1 (`--hint-model`): the catalog's entries, which hints go to SAM, the prompts
they become, and end-to-end runs through the CLI and the Python API with stand-in weights saved as the official
checkpoints are ({"model": state_dict}), a spy on the real model's decoder recording where the prompts landed. The
CLI's run is at the catalog's 1024 x 1024; the API's and the worker's check plumbing at 128 x 128 (``small_sam``),
which roto's SAM tests share, as they share the one stand-in file (fixtures of tests/helpers/stand_ins.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import mattekit
from mattekit.engines.plan import decide
from mattekit import catalog
from mattekit.subject import hint_text, hints, prompting
from mattekit.cli import main
from mattekit.fsutil import sha256_file
from mattekit.nets.sam2.model import SAM2
from mattekit.nets.sam2.predictor import SAM2ImagePredictor
from mattekit.wire.client import Pixels
from mattekit.options import OptionError
from mattekit.tasks import registry

SIZES = {
    "sam2.1-hiera-tiny": ("hiera_t", "sam2.1_hiera_tiny.pt"),
    "sam2.1-hiera-small": ("hiera_s", "sam2.1_hiera_small.pt"),
    "sam2.1-hiera-base-plus": ("hiera_b+", "sam2.1_hiera_base_plus.pt"),
    "sam2.1-hiera-large": ("hiera_l", "sam2.1_hiera_large.pt"),
}
W, H = 320, 200  # not square: the two axes scale differently onto SAM's 1024 x 1024 input


def _make(height, width, box=None, include=None, exclude=None, mask=None):
    """:func:`hints.make` from the texts a user types (parsed as the options parse them)."""
    return hints.make(
        height,
        width,
        None if box is None else hint_text.parse_box(box),
        hint_text.parse_points(include),
        hint_text.parse_points(exclude),
        mask,
    )


def test_catalog_has_the_four_sam_sizes_as_released():
    cat = catalog.load()
    assert {e.name for e in cat.for_task("prompt")} == set(SIZES)
    for name, (variant, file) in SIZES.items():
        entry = cat.get(name, "prompt")
        assert entry.net == "sam2:SAM2" and entry.kwargs == {"variant": variant}
        assert entry.licence == "Apache-2.0" and entry.notice is None
        assert entry.input.size == (1024, 1024)
        assert entry.input.mean == (0.485, 0.456, 0.406) and entry.input.std == (0.229, 0.224, 0.225)
        assert decide(entry, "cpu").engine == "torch"
        (wf,) = entry.files
        assert wf.name == file and wf.url == f"https://dl.fbaipublicfiles.com/segment_anything_2/092824/{file}"
        assert wf.sha256 is None and wf.md5 is None  # Meta publishes none: trust on first use, recorded in hashes.json


def test_a_hint_becomes_sams_prompts():
    mask = np.zeros((H, W), np.float32)
    mask[50:90, 100:180] = 1.0
    p = prompting.prompts_of(_make(H, W, box="10,20,200,150", include="30,40", exclude="50,60;70,80"))
    assert p.box == (10, 20, 200, 150) and p.points == ((30, 40), (50, 60), (70, 80)) and p.labels == (1, 0, 0)
    assert not p.multimask
    assert prompting.prompts_of(_make(H, W, mask=mask)).box == (100, 50, 180, 90)  # the mask's bounding box
    assert prompting.prompts_of(_make(H, W, box="150,10,300,60", mask=mask)).box == (100, 10, 300, 90)  # both
    lone = prompting.prompts_of(_make(H, W, include="30,40"))
    assert lone.multimask and lone.box is None and lone.labels == (1,)
    assert not prompting.answerable(_make(H, W, exclude="30,40"))


def test_which_hints_go_to_the_hint_model():
    task = registry.get("remove")

    def needed(given=(), **values):
        return task.models_needed(task.make_options(values), set(given))

    sam, plain = {"hint_model": "prompt"}, {"model": "segment"}
    for named in ({"hint_model": "sam2.1-hiera-tiny"}, {}):  # a named hint model, or the catalog's default
        assert needed(box="1,2,30,40", **named) == sam
        assert needed(point="5,5", exclude="9,9", **named) == sam
        assert needed(("hint_mask",), **named) == sam
        assert needed(**named) == plain  # no hint: the segmentation model
        assert needed(exclude="9,9", **named) == plain  # nothing on the subject: SAM cannot answer it
    assert catalog.load().default("prompt").name == "sam2.1-hiera-tiny"
    for hint in ({"box": "1,2,30,40"}, {"point": "5,5"}, {"exclude": "9,9"}):  # none: the fallback on purpose
        assert needed(hint_model="none", **hint) == plain
    assert needed(("hint_mask",), hint_model="none") == plain
    with pytest.raises(OptionError, match="Unknown model 'nothing'"):
        task.make_options({"hint_model": "nothing"})
    worker = task.describe("worker")["options"]  # the worker (and so the GIMP dialog) offers the hint model and none
    assert worker["hint_model"]["model"] == "prompt" and "hint_weights" not in worker
    assert worker["hint_model"]["default"] is None and worker["hint_model"]["none"].startswith("the segmentation model")


def test_photo_pixels_and_sams_threshold():
    assert prompting.rgb8(np.array([[[0.0, 0.5, 1.0]]], np.float32)).tolist() == [[[0, 128, 255]]]
    assert prompting.rgb8(np.array([[[0, 257, 65535, 9]]], np.uint16)).tolist() == [[[0, 1, 255]]]
    p = prompting.probability(np.array([-100.0, -1.0, 0.0, 1.0, 100.0]))
    assert p[2] == 0.5 and p[0] < 1e-6 and p[4] > 1 - 1e-6 and p[1] < 0.5 < p[3]


def test_missing_hint_model_weights_is_one_sentence(tmp_path, monkeypatch, capsys):
    """A hint without SAM 2.1's weights, offline: one line, the fixes first (get the weights, or answer the hint with
    the segmentation model on purpose), exit 2, nothing written; the default as a named model."""
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    monkeypatch.delenv("MATTEKIT_MIRROR", raising=False)
    photo, target = _photo(tmp_path), tmp_path / "out.png"
    for named in ([], ["--hint-model", "sam2.1-hiera-tiny"]):
        code = main(["remove", str(photo), "-o", str(target), "--box", "40,30,200,170", *named])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1, err
        assert err.startswith(
            "mattekit: error: Unset MATTEKIT_OFFLINE or set MATTEKIT_MIRROR to a folder holding them, "
            "or use --hint-model none to answer the hint with the segmentation model "
        ), err
        assert "the weights of sam2.1-hiera-tiny cannot be had here" in err
        assert not target.exists()


# ------------------------------------------------------------------------ end to end with stand-in weights


def _photo(folder):
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = np.full((H, W, 3), 40, np.uint8)
    pixels[60:150, 90:230] = (220, 180, 60)
    pixels = np.clip(pixels + rng.integers(0, 12, pixels.shape), 0, 255).astype(np.uint8)
    path = folder / "photo.png"
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def spy(monkeypatch):
    """Records the prompts (model pixels, labels) each SAM 2.1 decode gets and the masks predict returns; the real
    model and predictor run."""
    seen = {"decode": [], "predict": []}
    decode, predict = SAM2.decode, SAM2ImagePredictor.predict

    def recording_decode(self, image_embed, high_res, coords, labels, mask_input=None):
        seen["decode"].append((coords.cpu().numpy().copy(), labels.cpu().numpy().copy()))
        return decode(self, image_embed, high_res, coords, labels, mask_input)

    def recording_predict(self, *args, **kwargs):
        out = predict(self, *args, **kwargs)
        seen["predict"].append((kwargs, out))
        return out

    monkeypatch.setattr(SAM2, "decode", recording_decode)
    monkeypatch.setattr(SAM2ImagePredictor, "predict", recording_predict)
    return seen


def _model_pixels(points, size=1024):
    """Photo pixels -> SAM's input pixels at ``size`` x ``size`` (the catalog's 1024, or 128)."""
    return np.array([[x * size / W, y * size / H] for x, y in points], np.float32)


@pytest.mark.slow
def test_remove_box_and_points_through_sam_in_the_cli(stand_in, spy, tmp_path, monkeypatch, capsys):
    from PIL import Image

    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    photo, target = _photo(tmp_path), tmp_path / "cut.png"
    code = main(
        [
            "remove",
            str(photo),
            "-o",
            str(target),
            "--box",
            "80,50,240,160",
            "--point",
            "150,100",
            "--exclude",
            "100,60",
            "--hint-model",
            "sam2.1-hiera-tiny",
            "--hint-weights",
            str(stand_in),
        ]
    )
    assert code == 0, capsys.readouterr().err
    ((coords, labels),) = spy["decode"]
    np.testing.assert_allclose(coords[0], _model_pixels([(80, 50), (240, 160), (150, 100), (100, 60)]), rtol=1e-6)
    assert labels[0].tolist() == [2, 3, 1, 0]  # box corners, then the click on the subject and the one off it
    ((kwargs, _),) = spy["predict"]
    assert kwargs["multimask_output"] is False
    out = np.asarray(Image.open(target))
    assert out.shape == (H, W, 4)
    assert not out[:50, :, 3].any() and not out[:, :80, 3].any()  # nothing outside the box


@pytest.mark.slow
def test_remove_hint_mask_through_sam_in_the_api(stand_in, small_sam, spy, tmp_path, monkeypatch):
    """At 128 x 128 (the CLI's test runs the catalog's 1024)."""
    from PIL import Image

    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    image = np.asarray(Image.open(_photo(tmp_path)), np.float32) / 255.0
    selection = np.zeros((H, W), np.float32)
    selection[70:140, 100:220] = 1.0
    out = mattekit.remove_background(
        image, hint_mask=selection, hint_model="sam2.1-hiera-tiny", hint_weights=str(stand_in), matting=True
    )
    assert out.shape == (H, W, 4) and out.dtype == np.float32
    ((coords, labels),) = spy["decode"]
    np.testing.assert_allclose(coords[0], _model_pixels([(100, 70), (220, 140)], small_sam), rtol=1e-6)
    assert labels[0].tolist() == [2, 3]
    ((_, (logits, _, _)),) = spy["predict"]
    # the matting band softens SAM's edge without moving it: upstream's mask (logits > 0) where the hint allows
    upstream = (logits[0] > 0) & hints.allowed(_make(H, W, mask=selection), H, W)
    alpha = out[..., 3]
    clear = np.abs(alpha - 0.5) > 1e-3
    assert ((alpha >= 0.5) == upstream)[clear].all()
    assert 0 < upstream.mean() < 1 and ((alpha > 0) & (alpha < 1)).any()  # an edge, and a soft one


@pytest.mark.slow
def test_remove_box_through_sam_in_a_real_worker(stand_in, small_sam, spy, make_worker, tmp_path, monkeypatch):
    """The worker takes no weights path: the stand-in is added as a derived copy (`models add`), as a user of
    GIMP or Blender would, and a box in a request that names no hint model goes to the default, SAM, in photo pixels
    (SAM at 128 x 128)."""
    from PIL import Image

    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    assert main(["models", "add", "sam2.1-hiera-tiny", str(stand_in), "--derived"]) == 0
    _, worker = make_worker(threads=2)
    menu = {
        m["name"]: m for m in worker.schema()["models"]["prompt"]
    }  # the hosts' menus: "Default (sam2.1-hiera-tiny)"
    assert menu["sam2.1-hiera-tiny"]["default"] and not menu["sam2.1-hiera-small"]["default"]
    photo = np.asarray(Image.open(_photo(tmp_path)).convert("RGB"))
    (out,) = worker.run("remove", [Pixels(photo.tobytes(), W, H, 3, "u8")], {"box": "80,50,240,160", "result": "alpha"})
    ((coords, labels),) = spy["decode"]
    np.testing.assert_allclose(coords[0], _model_pixels([(80, 50), (240, 160)], small_sam), rtol=1e-6)
    assert labels[0].tolist() == [2, 3]
    record = {m["name"]: m for m in out.provenance["models"]}["sam2.1-hiera-tiny"]
    assert record["derived"] is True
    alpha = np.frombuffer(out.data, np.uint8).reshape(H, W)
    assert (out.width, out.height, out.channels) == (W, H, 1)
    assert not alpha[:50].any() and not alpha[:, :80].any()  # nothing outside the box


def _pinned_catalog(folder, stand_in) -> str:
    """$MATTEKIT_CATALOG's copy (the small-SAM one) whose sam2.1-hiera-tiny file is pinned to the stand-in's sha256
    and size, as a published hash would pin Meta's file: the verified path is then the one a pinned default takes."""
    text = Path(os.environ["MATTEKIT_CATALOG"]).read_text()
    line = 'files = [{ name = "sam2.1_hiera_tiny.pt", url = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/'
    assert text.count(line) == 1
    pin = f'sha256 = "{sha256_file(stand_in)}", size = {stand_in.stat().st_size}, url = "https://'
    path = folder / "catalog-pinned-sam.toml"
    path.write_text(text.replace(line, line.replace('url = "https://', pin)))
    return str(path)


@pytest.mark.slow
def test_a_box_alone_fetches_the_default_hint_model_from_the_mirror_on_first_use(
    stand_in, small_sam, spy, shared, tmp_path, monkeypatch, capsys
):
    """No --hint-model: the catalog's prompt default answers the box, its weights taken from a local-folder mirror on
    first use and checked against the catalog's sha256 on the way into the cache (a file of the same name and size
    with other bytes is refused: exit 2, nothing written, nothing cached); --hint-model none answers the same box
    with the segmentation model, as if no hint model were known (the part-1 rule)."""
    from PIL import Image

    from mattekit import weights

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "u2netp.onnx").symlink_to(shared / "weights" / "u2netp.onnx")
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    monkeypatch.setenv("MATTEKIT_MIRROR", str(mirror))
    monkeypatch.setenv("MATTEKIT_CATALOG", _pinned_catalog(tmp_path, stand_in))
    catalog.load.cache_clear()
    (wf,) = catalog.load().default("prompt").files
    photo, target = _photo(tmp_path), tmp_path / "cut.png"
    cli = ["remove", str(photo), "-o", str(target), "--model", "u2netp", "--result", "alpha", "--box", "80,50,240,160"]
    with open(mirror / wf.name, "wb") as other:  # the name and size of the file, not its bytes
        other.truncate(stand_in.stat().st_size)
    assert main(cli) == 2 and not target.exists() and not weights.is_cached(wf) and spy["decode"] == []
    assert "the weights of sam2.1-hiera-tiny cannot be had here" in capsys.readouterr().err
    (mirror / wf.name).unlink()
    (mirror / wf.name).symlink_to(stand_in)
    assert main(cli) == 0, capsys.readouterr().err
    assert weights.is_cached(wf) and sha256_file(weights.cached_path(wf)) == wf.sha256  # verified on the way in
    ((coords, labels),) = spy["decode"]  # SAM answered the box
    np.testing.assert_allclose(coords[0], _model_pixels([(80, 50), (240, 160)], small_sam), rtol=1e-6)
    sam = np.asarray(Image.open(target))
    assert main([*cli, "--hint-model", "none"]) == 0 and len(spy["decode"]) == 1  # SAM did not run again
    fallback = np.asarray(Image.open(target))
    image = np.asarray(Image.open(photo))
    assert np.array_equal(
        fallback,
        mattekit.remove_background(image, model="u2netp", result="alpha", box="80,50,240,160", hint_model="none"),
    )
    assert not np.array_equal(fallback, sam)
