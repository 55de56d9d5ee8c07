"""The GIMP 3 plug-in against small stand-ins of GIMP's API (gimp_stubs/ beside it) and a real in-process worker
(the folder's conftest.py): its files, its procedures from the recorded or the live schema, dialogs, and problems said
in one GIMP message. Its operations: test_gimp_plugin_remove.py, _refine.py and _filters.py."""

from __future__ import annotations

import ast
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from mattekit import catalog
from mattekit.wire import client

from checkout import GIMP_PLUGIN, gimp_plugin_modules
from gimp_plugin_runs import MENU_NAMES, PLUGIN, as_floats, as_pixels, photo, procedure, registry_schema, run


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
        declared |= {p["name"].replace("_", "-") for p in op["inputs"] if p.get("below")}  # the layer below fills it
        assert set(proc.arguments) - {"output"} == declared, "one argument per option, named with dashes"
        assert "keep-personal" not in proc.arguments  # GIMP writes no file: results are pixels, no source metadata
    remove = procedure(plugin, "mattekit-remove-background")
    assert remove.arguments["output"]["default"] == "mask"  # a layer mask by default
    assert remove.arguments["output"]["choice"].list_nicks() == ["mask", "layer"]
    assert remove.arguments["model"] == {"kind": "string", "nick": "_Model", "default": ""}  # "": the catalog's
    assert remove.arguments["result"]["choice"].list_nicks()[0] == "default"  # default: from the placement
    assert remove.arguments["refine"]["kind"] == "boolean" and remove.arguments["refine"]["default"] is True
    assert remove.arguments["second-shot"]["kind"] == "boolean" and remove.arguments["second-shot"]["default"] is False
    assert remove.arguments["second-shot"]["nick"] == "_Second shot: the layer below"
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
