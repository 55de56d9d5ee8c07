"""The GIMP 3 plug-in's Remove Background and Select Subject against the stand-ins of GIMP's API and a real in-process
worker: the layer mask, the photo's shadow, a transparent result, new layers with offsets and 16 bits, the subject
hint (the selection, else the paths, never the layer mask), and which mask input the selection fills."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image

from gimp_plugin_runs import as_floats, as_pixels, iou, photo, registry_schema, run


def remove_background(plugin, Gimp, image, layer, **options):
    """Filters > AI > Remove Background run on ``layer`` of ``image`` with ``options``: (status, error)."""
    return run(plugin, Gimp, "mattekit-remove-background", image, [layer], **options)


def test_remove_background_adds_a_layer_mask_that_cuts_out_the_person(gimp, worker, shared):
    plugin, Gimp, GimpUi = gimp
    pixels = photo(shared)
    image = Gimp.Image(pixels.shape[1], pixels.shape[0])
    layer = image.add_test_layer(pixels)
    status, error = remove_background(plugin, Gimp, image, layer, model="sinet-portrait")
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
    from mattekit_bench import shadow_scenes

    plugin, Gimp, _ = gimp
    pixels = np.round(shadow_scenes.example(shared / "data").photo * 255) / 255
    image = Gimp.Image(pixels.shape[1], pixels.shape[0])
    layer = image.add_test_layer(pixels)
    status, error = remove_background(plugin, Gimp, image, layer, model="u2netp", shadow=" Keep ", output="layer")
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
    status, error = remove_background(
        plugin, Gimp, image, layer, model="sinet-portrait", box="0,0,10,10", hint_model="none"
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
    status, error = remove_background(
        plugin, Gimp, image, layer, model="sinet-portrait", hint_model="none", output="layer"
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
    status, error = remove_background(plugin, Gimp, image, layer, model="sinet-portrait", output="layer")
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
        status, error = remove_background(plugin, Gimp, image, layer, model="sinet-portrait", hint_model="none")
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
        status, _ = remove_background(plugin, Gimp, image, layer, mode=Gimp.RunMode.INTERACTIVE)
        assert status is Gimp.PDBStatusType.CANCEL and GimpUi.DIALOGS[0].notes() == [note]
    image.set_selected_paths([])
    GimpUi.DIALOGS.clear()
    remove_background(plugin, Gimp, image, layer, mode=Gimp.RunMode.INTERACTIVE)
    assert GimpUi.DIALOGS[0].notes() == ["Subject hint: none (no selection or path): the whole layer is searched"]
    # a path away from the layer is one sentence, and leaves nothing selected
    small = image.add_test_layer(pixels[:20, :20], "small")
    image.add_test_path("Away", 100, 60, 40, 40)
    status, error = remove_background(plugin, Gimp, image, small)
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


@pytest.mark.slow
def test_with_see_through_checked_the_selection_marks_the_see_through_part(gimp, worker):
    """Remove Background's See-through checkbox (issue 93): the worker gets the selection as the see-through part
    (see_through_mask), not as the subject hint: the glass inside it comes out see-through, the rest as the model
    gives it."""
    from mattekit_bench import backdrop_scenes

    plugin, Gimp, _ = gimp
    pixels = backdrop_scenes.drawn(1, "glass").first
    h, w = pixels.shape[:2]
    image = Gimp.Image(w, h)
    layer = image.add_test_layer(pixels)
    image.select_test_rectangle(0, 0, w // 2, h)
    status, error = remove_background(plugin, Gimp, image, layer, model="u2netp", see_through=True, output="mask")
    assert status is Gimp.PDBStatusType.SUCCESS, error
    mask = layer.get_mask().pixels[..., 0]
    left = np.zeros((h, w, 1), np.float32)
    left[:, : w // 2] = 1.0
    options = {"model": "u2netp", "result": "alpha", "see_through": True}
    (part,) = worker.run("remove", {"image": as_pixels(pixels), "see_through_mask": as_pixels(left)}, options)
    (plain,) = worker.run("remove", [as_pixels(pixels)], {"model": "u2netp", "result": "alpha"})
    part, plain = as_floats(part)[..., 0], as_floats(plain)[..., 0]
    assert np.allclose(mask, part, atol=1 / 255), "the selection went as the see-through part"
    assert np.allclose(mask[:, w // 2 :], plain[:, w // 2 :], atol=1 / 255)
    assert mask[:, : w // 2].mean() < 0.7 * plain[:, : w // 2].mean()


def test_with_second_shot_checked_the_layer_below_goes_as_the_second_shot(gimp, worker):
    """Remove Background's "Second shot: the layer below" (issue 93): the layer under the photo goes to the worker as
    the second shot, so the glass gets the two shots' alpha; a layer below of another size is refused, nothing added."""
    from mattekit_bench import backdrop_scenes

    plugin, Gimp, _ = gimp
    pair = backdrop_scenes.drawn(0, "glass")
    h, w = pair.first.shape[:2]
    image = Gimp.Image(w, h)
    image.add_test_layer(pair.second, name="Dark")
    layer = image.add_test_layer(pair.first)
    status, error = remove_background(plugin, Gimp, image, layer, second_shot=True, output="mask")
    assert status is Gimp.PDBStatusType.SUCCESS, error
    (wanted,) = worker.run(
        "remove", {"image": as_pixels(pair.first), "second_shot": as_pixels(pair.second)}, {"result": "alpha"}
    )
    mask = layer.get_mask().pixels[..., 0]
    assert np.allclose(mask, as_floats(wanted)[..., 0], atol=1 / 255)
    assert np.abs(mask - pair.alpha)[pair.alpha > 0.01].mean() < 0.03, "the glass's own alpha"
    image = Gimp.Image(w, h)
    image.add_test_layer(pair.second[:-8], name="Dark")
    layer = image.add_test_layer(pair.first)
    status, error = remove_background(plugin, Gimp, image, layer, second_shot=True, output="mask")
    assert status is Gimp.PDBStatusType.EXECUTION_ERROR and layer.get_mask() is None
    assert error == (
        f'"Second shot: the layer below" is checked, but the layer below, "Dark", is {w}x{h - 8} px and '
        f'"Background" is {w}x{h} px; they must be the same size.'
    )
