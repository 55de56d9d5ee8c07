"""End to end in real GIMP 3 (the root and the plug-in as test_gimp_e2e.py has them): Filters > AI > Remove Background
with Shadow "keep" puts the photo's own shadow on its own layer under the subject (issue 83), as a layer mask and as
a new cut-out layer, black, as dark as the worker's shadow matte."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from PIL import Image

from mattekit.wire import client

from gimp_e2e import batch_session

pytestmark = [pytest.mark.gimp, pytest.mark.slow]


# Remove Background with Shadow "keep": the photo's own shadow as its own layer under the subject (issue 83).
SHADOW_BATCH = textwrap.dedent("""
    import gi
    gi.require_version("Gimp", "3.0")
    from gi.repository import Gimp, Gio

    WORK = "{work}"

    {call}
    def describe(image, label):
        for layer in image.get_layers():
            print("MATTEKIT-E2E %s|%s|%s|%s|%s" % (label, layer.get_name(), layer.get_mode().value_nick,
                                                   layer.get_mask() is not None, layer.get_visible()))

    for output in ("mask", "layer"):
        image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(WORK + "/in/shadowed.png"))
        call("mattekit-remove-background", image, image.get_layers()[0], model="u2netp", shadow="keep", output=output)
        describe(image, output)
        Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(WORK + "/out/%s.png" % output), None)
        image.delete()
    print("MATTEKIT-E2E done")
""")


@pytest.fixture(scope="module")
def shadow_session(gimp_root, shared, tmp_path_factory):
    """(work folder, GIMP's output, the worker, the scene) of one real GIMP run of SHADOW_BATCH."""
    from mattekit_bench import shadow_scenes

    scene = shadow_scenes.example(shared / "data")
    tmp_path, pictures = tmp_path_factory.mktemp("gimp_shadow"), {"shadowed.png": scene.photo}
    with batch_session(gimp_root, shared, tmp_path, "mattekit-shadow-", pictures, SHADOW_BATCH) as (
        work,
        output,
        worker,
    ):
        yield work, output, worker, scene


def test_remove_background_keeps_the_photos_shadow_as_its_own_layer_in_real_gimp(shadow_session):
    work, output, worker, scene = shadow_session
    stacks = {}  # output -> [(name, mode, has a mask, visible)], top first
    for line in output.splitlines():
        if line.startswith("MATTEKIT-E2E ") and line.count("|") == 4:
            label, name, mode, masked, visible = line[len("MATTEKIT-E2E ") :].split("|")
            stacks.setdefault(label, []).append((name, mode, masked, visible))
    photo_layer = stacks["mask"][0][0]
    assert stacks["mask"] == [
        (photo_layer, "normal", "True", "True"),
        (photo_layer + " (shadow)", "normal", "True", "True"),
    ], stacks
    assert stacks["layer"] == [
        (photo_layer + " (cut out)", "normal", "False", "True"),
        (photo_layer + " (shadow)", "normal", "True", "True"),
        (photo_layer, "normal", "False", "False"),
    ], stacks
    photo = np.asarray(Image.open(work / "in" / "shadowed.png").convert("RGB"))
    h, w = photo.shape[:2]
    (wanted,) = worker.run(
        "remove", [client.Pixels(photo.tobytes(), w, h, 3, "u8")], {"model": "u2netp", "result": "shadow"}
    )
    matte = np.frombuffer(wanted.data, np.uint8).reshape(h, w) / 255.0
    region = (scene.shadow > 0.2) & (scene.alpha < 0.01)
    assert region.sum() > 500 and matte[region].mean() > 0.15
    for name in ("mask", "layer"):
        exported = np.asarray(Image.open(work / "out" / f"{name}.png").convert("RGBA")) / 255.0
        alpha, colour = exported[..., 3], exported[..., :3]
        difference = np.abs(alpha - matte)[region].mean()
        print(
            f"real GIMP 3 Remove Background, shadow keep, output {name}: the exported alpha beside the subject is "
            f"the worker's shadow matte within {difference:.4f} (mean), the colour there {colour[region].mean():.4f}"
        )
        assert difference < 0.02 and colour[region].mean() < 0.05, "black, as dark as the shadow"
        subject = scene.alpha > 0.99
        assert alpha[subject].mean() > 0.95, "the subject above its shadow"
