"""The GIMP 3 plug-in's Refine Edges against the stand-ins of GIMP's API and a real in-process worker: the layer
mask replaced through the selection, the selection of an offset 16-bit layer, and no mask or edge said."""

from __future__ import annotations


import numpy as np
from PIL import Image


from gimp_plugin_runs import as_floats, as_pixels, photo, run


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
