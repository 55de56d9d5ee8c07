"""The GIMP 3 plug-in against small stand-ins of GIMP's API (gimp_stubs/ beside it) and a real in-process worker."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mattekit import catalog
from mattekit.wire import client
from mattekit.runtime import ModelCache
from mattekit.worker import operations, service

from checkout import GIMP_PLUGIN, gimp_plugin_modules

ROOT = Path(__file__).resolve().parents[3]
PLUGIN = GIMP_PLUGIN / "mattekit_gimp.py"
STUBS = Path(__file__).resolve().parent / "gimp_stubs"
MENU_NAMES = {
    "mattekit-remove-background",
    "mattekit-refine-edges",
    "mattekit-upscale",
    "mattekit-portrait-bokeh",
    "mattekit-enhance",
    "mattekit-mask-preview",
    "mattekit-select-subject",
}


def registry_schema():
    """What GET /v1/operations answers, made from the task registry as the installer records it."""
    return {
        "operations": [op.describe() for op in operations.build(operations.PathPolicy()).values()],
        "models": operations.model_menus(ModelCache()),
    }


def _gi_and_plugin_modules():
    """The names in sys.modules of gi (the stubs) and of the plug-in's modules, which import the stubs: each test
    loads them afresh."""
    ours = set(gimp_plugin_modules())
    return [m for m in sys.modules if m == "gi" or m.startswith("gi.") or m in ours]


@pytest.fixture
def gimp(tmp_path, monkeypatch):
    """(plug-in module, stub Gimp, stub GimpUi), with a record offering every worker operation."""
    for name in _gi_and_plugin_modules():
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(STUBS))
    spec = importlib.util.spec_from_file_location("mattekit_gimp_under_test", PLUGIN)
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    from gi.repository import Gimp, GimpUi

    Gimp.CALLS.clear()
    Gimp.IMAGES.clear()
    GimpUi.SHOWN.clear()
    GimpUi.DIALOGS.clear()
    GimpUi.PICK.clear()
    GimpUi.ANSWER = True
    record = {"python": sys.executable, "schema": registry_schema()}
    (tmp_path / "mattekit_worker.json").write_text(json.dumps(record))
    monkeypatch.setattr(sys.modules["gimp_schema"], "HERE", str(tmp_path))  # where the plug-in reads its record
    monkeypatch.setenv(client.STATE_ENV, str(tmp_path / "no-worker" / "worker.json"))  # not the user's worker
    yield plugin, Gimp, GimpUi
    for name in _gi_and_plugin_modules():
        sys.modules.pop(name, None)


@pytest.fixture
def worker(tmp_path, monkeypatch, shared):
    """A real worker in this process; the plug-in finds it through MATTEKIT_WORKER_STATE."""
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    state = tmp_path / "state" / "worker.json"
    srv = service.WorkerServer(
        state_file=str(state), idle_timeout=None, threads=1, log=lambda t: None
    ).start_background()
    monkeypatch.setenv(client.STATE_ENV, str(state))
    yield client.WorkerClient(srv.url, srv.token)
    srv.stop(wait=True)


def procedure(plugin, name):
    return plugin.MattekitPlugIn().do_create_procedure(name)


def run(plugin, Gimp, name, image, drawables, mode=None, **options):
    proc = procedure(plugin, name)
    config = proc.create_config()
    for key, value in options.items():
        config.set_property(key.replace("_", "-"), value)
    values = proc.run(mode or Gimp.RunMode.NONINTERACTIVE, image, drawables, config)
    return values.index(0), values.index(1) if values.length() > 1 else None


def photo(shared, name="person1", size=None):
    img = Image.open(shared / f"data/grabcut50/im/{name}.jpg").convert("RGB")
    if size:
        img = img.resize(size, Image.BILINEAR)
    return np.asarray(img, np.float32) / 255.0


def as_pixels(array, dtype="u8"):
    """float32 H x W x C in [0,1] -> client.Pixels at ``dtype``."""
    np_dtype, scale = {"u8": (np.uint8, 255), "u16": (np.uint16, 65535)}[dtype]
    return client.Pixels(
        np.rint(array * scale).astype(np_dtype).tobytes(), array.shape[1], array.shape[0], array.shape[2], dtype
    )


def as_floats(pixels):
    np_dtype, scale = {"u8": (np.uint8, 255), "u16": (np.uint16, 65535)}[pixels.dtype]
    return np.frombuffer(pixels.data, np_dtype).reshape(pixels.height, pixels.width, pixels.channels) / float(scale)


def iou(alpha, gt):
    valid = gt != 128
    return ((alpha >= 0.5) & (gt > 128) & valid).sum() / (((alpha >= 0.5) | (gt > 128)) & valid).sum()


# ---------------------------------------------------------------- the file itself


def test_plugin_files_are_plain_and_the_entry_is_executable():
    """Every file of the plug-in's folder imports only the standard library, gi, the wire package and its siblings
    (GIMP's Python has no numpy or torch) and names no task or model; GIMP runs the one named like the folder.
    Their size is held to the core's caps by tests/unit/test_layers.py."""
    siblings = set(gimp_plugin_modules())
    assert siblings > {"mattekit_gimp"}, "the plug-in is split into modules by job"
    words = {
        word
        for op in registry_schema()["operations"]
        for opt in op["options"].values()
        for word in opt.get("keywords", ())
    }
    assert "keep" in words
    for path in sorted(GIMP_PLUGIN.glob("*.py")):
        source = path.read_text()
        modules = set()
        for node in ast.walk(ast.parse(source, feature_version=(3, 8))):
            if isinstance(node, ast.Import):
                modules |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                modules.add((node.module or "").split(".")[0])
        assert modules <= {"json", "os", "sys", "array", "gi", "mattekit_wire", "mattekit"} | siblings, (path, modules)
        assert "import numpy" not in source and "import torch" not in source
        for task in ("remove", "bokeh", "upscale", "enhance", "mask-preview", "sinet"):
            assert '"%s"' % task not in source, "the plug-in names no task or model: they come from the schema"
        for word in words:  # keep: the schema names the words a text option takes (issue 82)
            assert '"%s"' % word not in source and "'%s'" % word not in source, (path, "holds a copy of", word)
    assert os.access(PLUGIN, os.X_OK), "GIMP ignores a plug-in file that is not executable"
    assert PLUGIN.parent.name == PLUGIN.stem, "GIMP needs folder and file named alike"


# ---------------------------------------------------------------- procedures from the schema


def test_procedures_and_arguments_come_from_the_recorded_schema(gimp, tmp_path):
    plugin, Gimp, _ = gimp
    schema = registry_schema()
    names = plugin.MattekitPlugIn().do_query_procedures()
    assert set(names) == MENU_NAMES, "one procedure per task with a menu label, and no other"
    by_menu = {op["menu"]: op for op in schema["operations"] if op["menu"]}
    for name in names:
        proc = procedure(plugin, name)
        op = by_menu[proc.menu_label]
        select = ["<Image>/Select"] if name == "mattekit-select-subject" else []  # with GIMP's own ways to select
        assert proc.menu_paths == ["<Image>/Filters/AI"] + select and proc.image_types == "RGB*"
        assert proc.sensitivity is Gimp.ProcedureSensitivityMask.DRAWABLE and proc.menu_label.endswith("...")
        assert proc.documentation[0] == op["summary"]
        declared = {n.replace("_", "-") for n, o in op["options"].items() if not o["path"]}
        assert set(proc.arguments) - {"output"} == declared, "one argument per option, named with dashes"
        assert "keep-personal" not in proc.arguments  # GIMP writes no file: results are pixels, no source metadata
    remove = procedure(plugin, "mattekit-remove-background")
    assert remove.arguments["output"]["default"] == "mask"  # a layer mask by default
    assert remove.arguments["output"]["choice"].list_nicks() == ["mask", "layer"]
    assert remove.arguments["model"] == {"kind": "string", "nick": "_Model", "default": ""}  # "": the catalog's
    assert remove.arguments["result"]["choice"].list_nicks()[0] == "default"  # default: from the placement
    assert remove.arguments["refine"]["kind"] == "boolean" and remove.arguments["refine"]["default"] is True
    refine = procedure(plugin, "mattekit-refine-edges")
    assert refine.menu_label == "Refine _Edges..." and refine.arguments["output"]["default"] == "mask"
    assert refine.arguments["band"]["kind"] == "string" and refine.arguments["band"]["default"] == ""  # automatic
    assert refine.arguments["iterations"]["kind"] == "int" and refine.arguments["iterations"]["max"] == 500
    upscale = procedure(plugin, "mattekit-upscale")
    assert upscale.arguments["output"]["choice"].list_nicks() == ["image", "layer"]
    assert upscale.return_values == ["new-image"]
    enhance = procedure(plugin, "mattekit-enhance")
    assert "output" not in enhance.arguments, "a same-size image has one place: a new layer"
    assert enhance.arguments["strength"]["kind"] == "double" and enhance.arguments["strength"]["max"] == 2.0
    assert procedure(plugin, "mattekit-portrait-bokeh").arguments["segment-model"]["kind"] == "string"

    # a task declared once more appears with no plug-in code; without a schema there is nothing to offer
    extra = dict(by_menu["_Enhance..."], name="tint", menu="_Tint the Photo...", summary="Tint.")
    schema["operations"].append(extra)
    (tmp_path / "mattekit_worker.json").write_text(json.dumps({"schema": schema}))
    assert "mattekit-tint-the-photo" in plugin.MattekitPlugIn().do_query_procedures()
    assert procedure(plugin, "mattekit-tint-the-photo").menu_label == "_Tint the Photo..."
    (tmp_path / "mattekit_worker.json").write_text(json.dumps({"python": sys.executable}))
    assert plugin.MattekitPlugIn().do_query_procedures() == []


def test_a_running_worker_schema_is_preferred_to_the_record(gimp, worker, tmp_path):
    plugin, _, _ = gimp
    stale = registry_schema()
    stale["operations"] = [op for op in stale["operations"] if op["name"] not in ("enhance", "mask-preview")]
    (tmp_path / "mattekit_worker.json").write_text(json.dumps({"python": sys.executable, "schema": stale}))
    assert set(plugin.MattekitPlugIn().do_query_procedures()) == MENU_NAMES, "the live worker's operations"


# ---------------------------------------------------------------- Remove Background


def test_remove_background_adds_a_layer_mask_that_cuts_out_the_person(gimp, worker, shared):
    plugin, Gimp, GimpUi = gimp
    pixels = photo(shared)
    image = Gimp.Image(pixels.shape[1], pixels.shape[0])
    layer = image.add_test_layer(pixels)
    status, error = run(plugin, Gimp, "mattekit-remove-background", image, [layer], model="sinet-portrait")
    assert status is Gimp.PDBStatusType.SUCCESS, error
    assert np.array_equal(layer.pixels, pixels), "the layer's own pixels are untouched"
    mask = layer.get_mask().pixels[..., 0]
    gt = np.asarray(Image.open(shared / "data/grabcut50/gt/person1.png").convert("L"))
    assert iou(mask, gt) > 0.9
    assert image.undo_groups == [1, 1] and image.undo_steps == 1
    names = [c[0] for c in Gimp.CALLS]
    assert names[0] == "progress_init" and "progress_update" in names and "progress_end" in names
    assert not GimpUi.SHOWN, "no dialog in non-interactive mode"
    record = json.loads(bytes(layer.get_parasite("mattekit-provenance").get_data()))
    assert record["task"] == "remove" and record["models"][0]["name"] == "sinet-portrait"
    assert len(record["models"][0]["sha256"]) == 64 and record["digital_source_type"].endswith(
        "algorithmicallyEnhanced"
    )


@pytest.mark.slow
def test_remove_background_keeps_the_photos_shadow_by_the_word_the_schema_names(gimp, worker, shared):
    """Shadow " Keep " (the schema's word for the shadow option, case aside) with a new layer: the plug-in asks for the
    subject alone, the cut-out on top, the photo's own shadow under it as a black layer masked by the worker's
    shadow matte, the photo hidden below (issue 83); a word the schema does not name is left as it is."""
    from mattekit.bench import shadow_scenes

    plugin, Gimp, _ = gimp
    pixels = np.round(shadow_scenes.example(shared / "data").photo * 255) / 255
    image = Gimp.Image(pixels.shape[1], pixels.shape[0])
    layer = image.add_test_layer(pixels)
    status, error = run(
        plugin, Gimp, "mattekit-remove-background", image, [layer], model="u2netp", shadow=" Keep ", output="layer"
    )
    assert status is Gimp.PDBStatusType.SUCCESS, error
    assert [x.get_name() for x in image.get_layers()] == ["Background (cut out)", "Background (shadow)", "Background"]
    cut, shade, _ = image.get_layers()
    subject, shadow = worker.run(
        "remove", [as_pixels(pixels)], {"model": "u2netp", "shadow": "keep", "result": "alpha"}
    )
    assert np.allclose(cut.pixels[..., 3], as_floats(subject)[..., 0], atol=1 / 255), "the subject alone"
    assert np.allclose(cut.pixels[..., :3], pixels, atol=1 / 255) and not layer.get_visible()
    assert np.array_equal(shade.pixels, np.broadcast_to([0, 0, 0, 1.0], shade.pixels.shape)), "black, opaque"
    assert np.allclose(shade.get_mask().pixels[..., 0], as_floats(shadow)[..., 0], atol=1 / 255)
    assert as_floats(shadow).max() > 0.15, "a shadow was found: the test shows where it went"
    op = {o["name"]: o for o in registry_schema()["operations"]}["remove"]
    assert sys.modules["gimp_schema"].keyword(op, "shadow", " Keep ") == "keep"
    op["options"]["shadow"].pop("keywords")  # a worker whose schema names no word: nothing is taken for one
    assert sys.modules["gimp_schema"].keyword(op, "shadow", "keep") is None


def test_a_fully_transparent_result_is_placed_and_said_in_a_gimp_message(gimp, worker, shared):
    """In GIMP: the worker's answer warns of a result with no subject (a box on an empty corner);
    the plug-in places it all the same and shows the sentence as a GIMP message."""
    plugin, Gimp, _ = gimp
    pixels = photo(shared, size=(160, 120))
    image = Gimp.Image(160, 120)
    layer = image.add_test_layer(pixels)
    status, error = run(
        plugin,
        Gimp,
        "mattekit-remove-background",
        image,
        [layer],
        model="sinet-portrait",
        box="0,0,10,10",
        hint_model="none",
    )
    assert status is Gimp.PDBStatusType.SUCCESS, error
    assert not layer.get_mask().pixels.any()
    assert [c[1] for c in Gimp.CALLS if c[0] == "message"] == [
        "Remove Background: the result is fully transparent (no subject was found in the box); try option 'point' on "
        "the subject inside the box, or option 'model' with another model, or option 'hint_model' at its default "
        "(SAM 2.1 answers a box)."
    ]


def test_remove_background_new_layer_with_offsets_a_selection_hint_and_16_bit(gimp, worker, shared):
    """The selection is the subject hint: the worker sees the whole layer at 16 bits with the selection (in
    layer coordinates) as hint_mask, and the cut-out covers the whole layer, not only the selection."""
    plugin, Gimp, _ = gimp
    pixels = photo(shared, size=(160, 120))
    image = Gimp.Image(200, 150, Gimp.Precision.U16_NON_LINEAR)
    layer = image.add_test_layer(pixels, offsets=(30, 20))
    image.select_test_rectangle(50, 30, 100, 120)  # image coordinates; runs off the layer at the bottom
    status, error = run(
        plugin,
        Gimp,
        "mattekit-remove-background",
        image,
        [layer],
        model="sinet-portrait",
        hint_model="none",
        output="layer",
    )  # the segmentation model answers the hint
    assert status is Gimp.PDBStatusType.SUCCESS, error
    cut = image.get_layers()[0]
    assert cut.get_name() == "Background (cut out)" and image.get_layers()[1] is layer
    assert not layer.get_visible() and np.array_equal(layer.pixels, pixels)
    assert cut.get_offsets() == (True, 30, 20) and cut.get_mask() is None and cut.has_alpha()
    hint = np.zeros((120, 160, 1), np.float32)
    hint[10:, 20:120] = 1.0  # the selection in layer coordinates
    (rgba,) = worker.run(
        "remove",
        {"image": as_pixels(pixels, "u16"), "hint_mask": as_pixels(hint, "u16")},
        {"model": "sinet-portrait", "hint_model": "none", "result": "rgba"},
    )
    assert np.allclose(cut.pixels, as_floats(rgba), atol=1 / 65535), "the whole layer, the selection as the hint"
    (plain,) = worker.run("remove", [as_pixels(pixels, "u16")], {"model": "sinet-portrait", "result": "rgba"})
    assert not np.allclose(as_floats(plain), as_floats(rgba), atol=0.05), "the hint changed the result"
    near = (cut.pixels[..., 3] > 0.5) & (hint[..., 0] == 0)
    assert near.sum() > 20, "the subject is not cut off at the selection's edge (the selection is a hint)"


def test_a_hint_whose_model_cannot_be_had_is_said_in_the_dialogs_words(gimp, worker, shared):
    """A selection with the default hint model (SAM 2.1), whose weights are neither on disk nor in the mirror: the
    failure names the dialog's "Hint model" setting, not the worker's option name nor a CLI flag; nothing is added."""
    plugin, Gimp, _ = gimp
    image = Gimp.Image(160, 120, Gimp.Precision.U8_NON_LINEAR)
    layer = image.add_test_layer(photo(shared, size=(160, 120)))
    image.select_test_rectangle(20, 10, 100, 100)
    status, error = run(
        plugin, Gimp, "mattekit-remove-background", image, [layer], model="sinet-portrait", output="layer"
    )
    assert status is Gimp.PDBStatusType.EXECUTION_ERROR
    assert 'or use "Hint model" none to answer the hint with the segmentation model' in error, error
    assert "option '" not in error and "--hint-model" not in error, error
    assert image.get_layers() == [layer]


def test_remove_background_hint_is_the_selection_else_the_path_never_the_layer_mask(gimp, worker, shared):
    plugin, Gimp, GimpUi = gimp
    pixels = photo(shared, size=(160, 120))
    image = Gimp.Image(160, 120)
    layer = image.add_test_layer(pixels)
    layer.add_mask(layer.create_mask(Gimp.AddMaskType.WHITE))  # e.g. an earlier result: not a hint
    layer.get_mask().pixels[:, :80] = 0.0

    def remove(**inputs):
        (out,) = worker.run(
            "remove",
            dict({"image": as_pixels(pixels)}, **{k: as_pixels(v) for k, v in inputs.items()}),
            {"model": "sinet-portrait", "hint_model": "none", "result": "alpha"},
        )
        return as_floats(out)

    def mask_after_run():
        status, error = run(
            plugin, Gimp, "mattekit-remove-background", image, [layer], model="sinet-portrait", hint_model="none"
        )
        assert status is Gimp.PDBStatusType.SUCCESS, error
        return layer.get_mask().pixels.copy()

    assert np.allclose(mask_after_run(), remove(), atol=1e-6), "no selection, no path: no hint (not the layer mask)"
    image.select_test_rectangle(40, 10, 70, 100)
    selection = image.get_selection().pixels.copy()
    assert np.allclose(mask_after_run(), remove(hint_mask=selection), atol=1e-6)
    assert np.array_equal(image.get_selection().pixels, selection), "the user's selection stays"
    Gimp.Selection.none(image)
    path = image.add_test_path("Subject", 30, 0, 90, 120)
    assert np.allclose(mask_after_run(), remove(hint_mask=path.area), atol=1e-6), "the selected path's area"
    assert Gimp.Selection.is_empty(image), "the path's area was selected only while it was read"
    image.select_test_rectangle(40, 10, 70, 100)
    assert np.allclose(mask_after_run(), remove(hint_mask=selection), atol=1e-6), "a selection wins over a path"
    # the dialog says what the hint is
    GimpUi.ANSWER = False
    for select, note in (
        (True, "Subject hint: the selection (70x100 px)"),
        (False, "Subject hint: the area of the path 'Subject'"),
    ):
        if not select:
            Gimp.Selection.none(image)
        GimpUi.DIALOGS.clear()
        status, _ = run(plugin, Gimp, "mattekit-remove-background", image, [layer], mode=Gimp.RunMode.INTERACTIVE)
        assert status is Gimp.PDBStatusType.CANCEL and GimpUi.DIALOGS[0].notes() == [note]
    image.set_selected_paths([])
    GimpUi.DIALOGS.clear()
    run(plugin, Gimp, "mattekit-remove-background", image, [layer], mode=Gimp.RunMode.INTERACTIVE)
    assert GimpUi.DIALOGS[0].notes() == ["Subject hint: none (no selection or path): the whole layer is searched"]
    # a path away from the layer is one sentence, and leaves nothing selected
    small = image.add_test_layer(pixels[:20, :20], "small")
    image.add_test_path("Away", 100, 60, 40, 40)
    status, error = run(plugin, Gimp, "mattekit-remove-background", image, [small])
    assert status is Gimp.PDBStatusType.EXECUTION_ERROR and error == "The path does not touch the layer."
    assert Gimp.Selection.is_empty(image) and small.get_mask() is None


def test_select_subject_from_open_paths_into_the_selection_of_an_offset_layer(gimp, worker, shared):
    """Select Subject: the anchors of the upper open path are on the subject, the lower one's off it, given in
    layer coordinates; the result replaces the selection (the temporary channel removed), cut at the image's
    edge; a closed path's area and a selection are hints as for Remove Background; three open paths are refused."""
    plugin, Gimp, GimpUi = gimp
    pixels = photo(shared, size=(160, 120))
    image = Gimp.Image(150, 130)
    layer = image.add_test_layer(pixels, offsets=(-10, 20))  # 10 columns left of the image, 10 rows below it:
    # image rows 20..130 hold layer rows 0..110, image columns 0..150 layer columns 10..160
    off = image.add_test_open_path("Off", [(140, 35)])
    on = image.add_test_open_path("On", [(70, 80), (75, 60)])  # inserted last: the upper one

    def select(**options):
        (out,) = worker.run(
            "select-subject",
            {"image": as_pixels(pixels)},
            dict({"model": "sinet-portrait", "hint_model": "none"}, **options),
        )
        return as_floats(out)

    status, error = run(
        plugin,
        Gimp,
        "mattekit-select-subject",
        image,
        [layer],
        model="sinet-portrait",
        hint_model="none",
        output="selection",
    )
    assert status is Gimp.PDBStatusType.SUCCESS, error
    expected = select(point="80,60;85,40", exclude="150,15")  # the anchors less the layer's offsets
    assert np.allclose(image.get_selection().pixels[20:], expected[:110, 10:], atol=1e-6)
    assert expected[:110, 10:].mean() > 0.1 and not image.get_selection().pixels[:20].any(), "none above the layer"
    assert image.get_channels() == [] and layer.get_mask() is None
    GimpUi.ANSWER = False
    run(plugin, Gimp, "mattekit-select-subject", image, [layer], mode=Gimp.RunMode.INTERACTIVE)
    _, _, x1, y1, x2, y2 = Gimp.Selection.bounds(image)
    assert GimpUi.DIALOGS[-1].notes() == [
        "Subject hint: the selection (%dx%d px); 2 points on the subject "
        "(path 'On'); 1 point off the subject (path 'Off')" % (x2 - x1, y2 - y1)
    ]
    Gimp.Selection.none(image)
    image.add_test_open_path("Third", [(20, 20)])
    status, error = run(plugin, Gimp, "mattekit-select-subject", image, [layer], output="mask")
    assert status is Gimp.PDBStatusType.EXECUTION_ERROR and error.startswith("Select at most two open paths")
    assert on in image.get_selected_paths() and off in image.get_selected_paths()


def test_which_mask_input_the_selection_fills_is_decided_per_port(gimp):
    """One rule: a subject hint port takes the selection, else a path; a mask to work on takes the layer
    mask, else the selection; a filter without a mask input is only restricted by the selection."""
    plugin, Gimp, _ = gimp
    ops = {op["name"]: op for op in registry_schema()["operations"]}
    image = Gimp.Image(40, 30)
    layer = image.add_test_layer(np.zeros((30, 40, 3), np.float32))
    image.add_test_path("Outline", 5, 5, 20, 20)

    def chosen():
        return {
            name: plugin.mask_input(image, layer, ops[name])[:2] for name in ("remove", "matte", "bokeh", "enhance")
        }

    assert chosen() == {
        "remove": ("hint_mask", "path"),
        "matte": ("mask", None),
        "bokeh": ("subject", None),
        "enhance": (None, None),
    }
    image.select_test_rectangle(2, 3, 10, 12)
    assert chosen() == {
        "remove": ("hint_mask", "selection"),
        "matte": ("mask", "selection"),
        "bokeh": ("subject", "selection"),
        "enhance": (None, None),
    }
    layer.add_mask(layer.create_mask(Gimp.AddMaskType.WHITE))
    assert chosen() == {
        "remove": ("hint_mask", "selection"),
        "matte": ("mask", "layer mask"),
        "bokeh": ("subject", "layer mask"),
        "enhance": (None, None),
    }
    assert plugin.mask_input(image, layer, ops["matte"])[2] == "Mask: the layer mask"
    assert plugin.mask_input(image, layer, ops["remove"])[2] == "Subject hint: the selection (10x12 px)"


# ---------------------------------------------------------------- Refine Edges


def blocky(gt, block=8):
    """A rough mask: the ground truth at 1/block size, blown up again (float32 H x W x 1)."""
    h, w = gt.shape
    small = Image.fromarray(gt).resize((w // block, h // block), Image.BOX)
    return np.asarray(small.resize((w, h), Image.BILINEAR), np.float32)[..., None] / 255.0


def worker_matte(worker, pixels, mask, dtype, **options):
    """What the worker makes of these float pixels and mask sent at ``dtype`` (u8 or u16), as floats."""
    (out,) = worker.run(
        "matte",
        {"image": as_pixels(pixels, dtype), "mask": as_pixels(mask, dtype)},
        dict({"result": "alpha"}, **options),
    )
    return as_floats(out)


def test_refine_edges_replaces_the_layer_mask_through_the_selection(gimp, worker, shared):
    plugin, Gimp, GimpUi = gimp
    pixels = photo(shared)
    h, w = pixels.shape[:2]
    gt = np.asarray(Image.open(shared / "data/grabcut50/gt/person1.png").convert("L"))
    rough = blocky(np.where(gt > 128, 255, 0).astype(np.uint8))
    image = Gimp.Image(w, h)
    layer = image.add_test_layer(pixels)
    layer.add_mask(layer.create_mask(Gimp.AddMaskType.BLACK))
    layer.get_mask().pixels[...] = rough
    status, error = run(plugin, Gimp, "mattekit-refine-edges", image, [layer])
    assert status is Gimp.PDBStatusType.SUCCESS, error
    assert np.array_equal(layer.pixels, pixels), "the layer's own pixels are untouched"
    refined = layer.get_mask().pixels
    assert np.allclose(refined, worker_matte(worker, pixels, rough, "u8"), atol=1e-6)
    valid = gt != 128
    errors = [np.abs(m[..., 0] - (gt > 128))[valid].mean() for m in (rough, refined)]
    print("Refine Edges (stubs) person1: mask MAE vs ground truth %.4f -> %.4f" % tuple(errors))
    assert errors[1] < 0.8 * errors[0]
    assert image.undo_groups == [1, 1] and image.undo_steps == 1 and image.get_layers() == [layer]
    assert [c[0] for c in Gimp.CALLS][0] == "progress_init" and ("progress_end",) in Gimp.CALLS
    assert not GimpUi.SHOWN
    # with a selection as well, the layer mask is still what is refined, merged through the selection
    layer.get_mask().pixels[...] = rough
    image.select_test_rectangle(0, 0, w // 2, h)
    status, error = run(plugin, Gimp, "mattekit-refine-edges", image, [layer])
    assert status is Gimp.PDBStatusType.SUCCESS, error
    mask = layer.get_mask().pixels
    assert np.array_equal(mask[:, w // 2 :], rough[:, w // 2 :]) and np.allclose(
        mask[:, : w // 2], refined[:, : w // 2]
    )


def test_refine_edges_of_the_selection_on_an_offset_16_bit_layer(gimp, worker, shared):
    plugin, Gimp, _ = gimp
    pixels = photo(shared, size=(160, 120))
    image = Gimp.Image(200, 150, Gimp.Precision.U16_NON_LINEAR)
    layer = image.add_test_layer(pixels, offsets=(30, 20))
    image.select_test_rectangle(70, 30, 90, 200)  # image coordinates; runs off the image at the bottom
    selection = np.zeros((120, 160, 1), np.float32)
    selection[10:, 40:130] = 1.0  # the same, in layer coordinates
    status, error = run(plugin, Gimp, "mattekit-refine-edges", image, [layer], band="6")
    assert status is Gimp.PDBStatusType.SUCCESS, error
    mask = layer.get_mask()
    assert mask is not None and np.array_equal(layer.pixels, pixels)
    expected = worker_matte(worker, pixels, selection, "u16", band=6)
    assert np.allclose(mask.pixels, expected, atol=1e-6), "the selection in layer coordinates, at 16 bits"
    outside = selection[..., 0] == 0
    assert (mask.pixels[..., 0][outside] > 0.1).sum() > 20, "the refined edge is kept outside the selection too"
    assert image.undo_groups == [1, 1]
    # output=layer from the layer mask, the selection still there: a decontaminated cut-out above the
    # hidden layer, at its offsets, merged through the selection; the layer's mask stays
    status, error = run(plugin, Gimp, "mattekit-refine-edges", image, [layer], output="layer")
    assert status is Gimp.PDBStatusType.SUCCESS, error
    cut = image.get_layers()[0]
    assert cut.get_name() == "Background (cut out)" and image.get_layers()[1] is layer
    assert cut.get_offsets() == (True, 30, 20) and cut.has_alpha() and cut.get_mask() is None
    assert not layer.get_visible() and np.array_equal(layer.pixels, pixels) and layer.get_mask() is mask
    rgba = worker_matte(worker, pixels, mask.pixels, "u16", result="rgba")
    inside = selection[..., 0] == 1
    assert np.allclose(cut.pixels[inside], rgba[inside], atol=1e-6) and not cut.pixels[~inside].any()


def test_refine_edges_without_a_mask_or_an_edge_says_so(gimp, worker):
    plugin, Gimp, _ = gimp
    image = Gimp.Image(16, 12)
    layer = image.add_test_layer(np.full((12, 16, 3), 0.5, np.float32))
    status, error = run(plugin, Gimp, "mattekit-refine-edges", image, [layer])
    assert status is Gimp.PDBStatusType.EXECUTION_ERROR
    assert error == (
        "Refine Edges needs a layer mask or a selection: add a layer mask to the layer, or select "
        "the subject roughly, first."
    )
    assert layer.get_mask() is None and not any(c[0] == "progress_init" for c in Gimp.CALLS)
    layer.add_mask(layer.create_mask(Gimp.AddMaskType.WHITE))
    status, error = run(plugin, Gimp, "mattekit-refine-edges", image, [layer])
    assert status is Gimp.PDBStatusType.EXECUTION_ERROR and error.startswith("The mask has no edge to refine")
    assert np.all(layer.get_mask().pixels == 1.0) and image.undo_groups == [2, 2]
    status, error = run(plugin, Gimp, "mattekit-refine-edges", image, [layer], band="wide")
    assert status is Gimp.PDBStatusType.EXECUTION_ERROR
    assert error == "Band must be a whole number, or empty for automatic, not 'wide'."


# ---------------------------------------------------------------- Upscale, Portrait Bokeh, Enhance, Mask Preview


def test_upscale_into_a_new_image_and_as_a_new_layer(gimp, worker):
    plugin, Gimp, _ = gimp
    rng = np.random.default_rng(0)
    rgba = rng.random((10, 12, 4), dtype=np.float32)
    rgba[..., 3] = 1.0
    image = Gimp.Image(30, 20)
    layer = image.add_test_layer(rgba, offsets=(4, 6))
    status, new_image = run(plugin, Gimp, "mattekit-upscale", image, [layer], model="rfdn-x4", scale="2")
    assert status is Gimp.PDBStatusType.SUCCESS, new_image
    assert Gimp.IMAGES == [new_image], "the new image is returned to the caller"
    assert (new_image.get_width(), new_image.get_height()) == (24, 20)
    assert new_image.get_layers()[0].has_alpha() and new_image.get_precision() is image.get_precision()
    assert new_image.get_layers()[0].get_name() == "Background (x2)"
    assert not any(c[0] == "display_new" for c in Gimp.CALLS), "no display in non-interactive mode"
    status, none = run(plugin, Gimp, "mattekit-upscale", image, [layer], model="rfdn-x4", scale="2", output="layer")
    assert status is Gimp.PDBStatusType.SUCCESS and none is None
    top = image.get_layers()[0]
    assert (image.get_width(), image.get_height()) == (60, 40)
    assert top.get_name() == "Background (x2)" and top.get_offsets() == (True, 8, 12)
    assert np.allclose(top.pixels, new_image.get_layers()[0].pixels)


def test_portrait_bokeh_uses_the_selection_as_the_subject(gimp, worker):
    plugin, Gimp, _ = gimp
    rng = np.random.default_rng(1)
    pixels = rng.random((48, 64, 3), dtype=np.float32)
    image = Gimp.Image(64, 48)
    layer = image.add_test_layer(pixels)
    image.select_test_rectangle(16, 12, 32, 24)
    status, error = run(plugin, Gimp, "mattekit-portrait-bokeh", image, [layer], mask_only=True, strength=4.0)
    assert status is Gimp.PDBStatusType.SUCCESS, error
    blurred = image.get_layers()[0]
    assert blurred.get_name() == "Background (bokeh)" and np.array_equal(layer.pixels, pixels)
    inner = (slice(16, 32), slice(20, 44))
    assert np.abs(blurred.pixels[inner] - pixels[inner]).mean() < 0.02
    assert blurred.pixels[:6].std() < pixels[:6].std() * 0.8


def test_enhance_and_mask_preview_run_with_no_code_of_their_own(gimp, worker, shared):
    """Declared once in the registry: their procedures, arguments and placement come from the schema."""
    plugin, Gimp, _ = gimp
    pixels = photo(shared, size=(200, 150))
    image = Gimp.Image(200, 150)
    layer = image.add_test_layer(pixels)
    status, error = run(plugin, Gimp, "mattekit-enhance", image, [layer], denoise=False, strength=1.5)
    assert status is Gimp.PDBStatusType.SUCCESS, error
    enhanced = image.get_layers()[0]
    assert enhanced.get_name() == "Background (enhance)" and enhanced.get_visible() and layer.get_visible()
    (expected,) = worker.run("enhance", [as_pixels(pixels)], {"denoise": False, "strength": 1.5})
    assert np.allclose(enhanced.pixels, as_floats(expected), atol=1e-6) and not np.allclose(enhanced.pixels, pixels)
    # a filter acts on the selection: the rest of the new layer is the layer's own pixels
    image.select_test_rectangle(20, 10, 80, 60)
    status, error = run(plugin, Gimp, "mattekit-enhance", image, [layer])
    assert status is Gimp.PDBStatusType.SUCCESS, error
    part = image.get_layers()[1]  # just above the layer, below the first run's
    assert image.get_layers()[2] is layer and part.get_name() == "Background (enhance)"
    (crop,) = worker.run("enhance", [as_pixels(pixels[10:70, 20:100])], {})
    assert np.allclose(part.pixels[10:70, 20:100], as_floats(crop), atol=1e-6)
    outside = np.ones((150, 200), bool)
    outside[10:70, 20:100] = False
    assert np.array_equal(part.pixels[outside], pixels[outside])

    image = Gimp.Image(*photo(shared).shape[1::-1])
    layer = image.add_test_layer(photo(shared))
    status, error = run(plugin, Gimp, "mattekit-mask-preview", image, [layer], model="sinet-portrait")
    assert status is Gimp.PDBStatusType.SUCCESS, error
    preview = layer.get_mask().pixels
    (expected,) = worker.run("mask-preview", [as_pixels(photo(shared))], {"model": "sinet-portrait"})
    assert np.allclose(preview, as_floats(expected), atol=1e-6)
    gt = np.asarray(Image.open(shared / "data/grabcut50/gt/person1.png").convert("L"))
    print("Mask Preview (stubs) person1 with sinet-portrait: IoU %.4f" % iou(preview[..., 0], gt))
    assert iou(preview[..., 0], gt) > 0.85
    status, error = run(plugin, Gimp, "mattekit-mask-preview", image, [layer], model="sinet-portrait", output="layer")
    assert status is Gimp.PDBStatusType.SUCCESS, error
    assert image.get_layers()[0].get_name() == "Background (cut out)" and not layer.get_visible()


# ---------------------------------------------------------------- dialogs and errors


def test_interactive_mode_shows_the_dialog_and_honours_cancel(gimp, worker):
    plugin, Gimp, GimpUi = gimp
    image = Gimp.Image(8, 8)
    layer = image.add_test_layer(np.zeros((8, 8, 3), np.float32))
    GimpUi.ANSWER = False
    status, _ = run(plugin, Gimp, "mattekit-remove-background", image, [layer], mode=Gimp.RunMode.INTERACTIVE)
    assert status is Gimp.PDBStatusType.CANCEL
    assert ("dialog", "Remove Background") in GimpUi.SHOWN
    filled = [entry[1] for entry in GimpUi.SHOWN if entry[0] == "fill"][0]
    assert filled[0] == "output" and "model" not in filled and "refine" in filled, "models get menus of their own"
    assert layer.get_mask() is None and image.get_layers() == [layer] and image.undo_groups == [0, 0]


@pytest.fixture
def bigger_catalog(tmp_path, monkeypatch):
    """The catalog plus one segmentation model (SINet's weights under a new name), as $MATTEKIT_CATALOG."""
    text = catalog.CATALOG_PATH.read_text()
    start = text.index("[models.sinet-portrait]")
    entry = text[start : text.index("\n\n", start)]
    copy = tmp_path / "catalog.toml"
    copy.write_text(
        text
        + "\n"
        + entry.replace("[models.sinet-portrait]", "[models.sinet-portrait-twin]").replace(
            'description = "', 'description = "A twin added after installing: '
        )
        + "\n"
    )
    monkeypatch.setenv("MATTEKIT_CATALOG", str(copy))
    catalog.load.cache_clear()
    yield "sinet-portrait-twin"
    monkeypatch.undo()
    catalog.load.cache_clear()


def test_a_model_added_to_the_catalog_appears_in_the_dialog_without_reinstalling(gimp, bigger_catalog, worker, shared):
    plugin, Gimp, GimpUi = gimp
    record = json.loads((Path(sys.modules["gimp_schema"].HERE) / "mattekit_worker.json").read_text())
    assert bigger_catalog not in {m["name"] for m in record["schema"]["models"]["segment"]}, "installed before"
    pixels = photo(shared, size=(160, 120))
    image = Gimp.Image(160, 120)
    layer = image.add_test_layer(pixels)
    GimpUi.PICK["model"] = bigger_catalog
    status, error = run(plugin, Gimp, "mattekit-remove-background", image, [layer], mode=Gimp.RunMode.INTERACTIVE)
    assert status is Gimp.PDBStatusType.SUCCESS, error
    menu = GimpUi.DIALOGS[0].combos()["_Model"]
    assert bigger_catalog in menu.ids() and "sinet-portrait" in menu.ids() and menu.ids()[0] == "default"
    assert any(text.startswith("Default (") for _, text in menu.items)
    hint = GimpUi.DIALOGS[0].combos()["_Hint model"]  # the catalog's prompt default, and none: the fallback on purpose
    assert hint.ids()[:3] == ["default", "none", "sam2.1-hiera-tiny"], hint.ids()
    assert hint.items[0][1] == "Default (sam2.1-hiera-tiny)" and hint.items[1][1].startswith("None: the segmentation")
    # the chosen model ran: its mask is SINet's
    (alpha,) = worker.run("remove", [as_pixels(pixels)], {"model": "sinet-portrait", "result": "alpha"})
    assert np.allclose(layer.get_mask().pixels, as_floats(alpha), atol=1e-6)


def test_problems_become_one_clear_gimp_message(gimp, tmp_path, monkeypatch):
    plugin, Gimp, _ = gimp
    image = Gimp.Image(8, 8)
    layer = image.add_test_layer(np.zeros((8, 8, 3), np.float32))
    monkeypatch.setenv(client.STATE_ENV, str(tmp_path / "nobody" / "worker.json"))
    monkeypatch.setenv("MATTEKIT_PYTHON", str(tmp_path / "gone" / "python"))
    status, error = run(plugin, Gimp, "mattekit-remove-background", image, [layer])
    assert status is Gimp.PDBStatusType.EXECUTION_ERROR
    assert "No Python interpreter for the mattekit worker" in error
    assert image.get_layers() == [layer] and layer.get_mask() is None
    assert image.undo_groups == [1, 1] and ("progress_end",) in Gimp.CALLS
    # interactive: the worker is needed for the dialog, so the same sentence comes before any dialog
    status, error = run(plugin, Gimp, "mattekit-remove-background", image, [layer], mode=Gimp.RunMode.INTERACTIVE)
    assert status is Gimp.PDBStatusType.EXECUTION_ERROR and "No Python interpreter" in error
    # a layer mask is not a layer
    status, error = run(plugin, Gimp, "mattekit-remove-background", image, [layer.create_mask(Gimp.AddMaskType.WHITE)])
    assert status is Gimp.PDBStatusType.EXECUTION_ERROR and "Select exactly one layer" in error
    # a selection beside the layer
    small = image.add_test_layer(np.zeros((2, 2, 3), np.float32), "small")
    image.select_test_rectangle(5, 5, 2, 2)
    status, error = run(plugin, Gimp, "mattekit-remove-background", image, [small])
    assert status is Gimp.PDBStatusType.EXECUTION_ERROR and "selection does not touch" in error


def test_worker_errors_reach_the_user(gimp, worker):
    plugin, Gimp, _ = gimp
    image = Gimp.Image(8, 8)
    layer = image.add_test_layer(np.zeros((8, 8, 3), np.float32))
    status, error = run(plugin, Gimp, "mattekit-remove-background", image, [layer], model="not-in-the-catalog")
    assert status is Gimp.PDBStatusType.EXECUTION_ERROR
    assert "Unknown model 'not-in-the-catalog'" in error


def test_a_worker_it_starts_gets_the_recorded_settings(gimp, tmp_path, monkeypatch):
    """The installer records MATTEKIT_MIRROR / _OFFLINE / _HOME; the plug-in starts the worker with them."""
    plugin, _, _ = gimp
    seen = tmp_path / "environment.txt"
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\nenv > '%s'\nexit 3\n" % seen)  # stands in for the worker's interpreter
    python.chmod(0o755)
    for name in ("MATTEKIT_MIRROR", "MATTEKIT_OFFLINE", "MATTEKIT_HOME", "MATTEKIT_PYTHON"):
        monkeypatch.setenv(name, "")  # so that monkeypatch restores what the plug-in sets
        monkeypatch.delenv(name)
    record = {
        "python": str(python),
        "state_file": str(tmp_path / "state" / "worker.json"),
        "environment": {
            "MATTEKIT_MIRROR": "/srv/weights",
            "MATTEKIT_OFFLINE": "1",
            "MATTEKIT_HOME": str(tmp_path / "mk"),
        },
    }
    (tmp_path / "mattekit_worker.json").write_text(json.dumps(record))
    monkeypatch.delenv(client.STATE_ENV)
    with pytest.raises(client.WorkerError, match="stopped at start"):
        plugin.connect()
    lines = set(seen.read_text().splitlines())
    assert {"MATTEKIT_MIRROR=/srv/weights", "MATTEKIT_OFFLINE=1", "MATTEKIT_HOME=%s" % (tmp_path / "mk")} <= lines
