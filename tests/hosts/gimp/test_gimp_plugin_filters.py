"""The GIMP 3 plug-in's Upscale, Portrait Bokeh, Enhance and Mask Preview against the stand-ins of GIMP's API and a
real in-process worker (the last two with no code of their own in the plug-in)."""

from __future__ import annotations


import numpy as np
from PIL import Image


from gimp_plugin_runs import as_floats, as_pixels, iou, photo, run


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
