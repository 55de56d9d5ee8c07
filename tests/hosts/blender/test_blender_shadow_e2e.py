"""The AI Matte add-on's Shadow in real Blender (bpy 4.5 LTS as a module): with the panel's Shadow on, the roto job
also writes the shadow the subject casts, and the AI Matte node group gets a Shadow output that gives it.

The add-on is installed by install/install_blender.py into a fresh HOME (test_blender_e2e's helpers); the plate is
two JPEG frames of a composite with a known shadow (:mod:`mattekit.bench.shadow_scenes`), the model u2netp from the
shared mirror. The group's Shadow output, rendered alone, must be the worker's shadow matte (rendered through the
Standard view: sRGB-encoded).
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mattekit.io import linear_to_srgb
from test_blender_e2e import LTS, blender_said, bpy_python, fresh_home, installer, run_blender, shutdown_worker

pytestmark = [pytest.mark.blender, pytest.mark.slow]


def test_ai_matte_gives_the_plates_shadow_on_a_shadow_output(shared, tmp_path, monkeypatch):
    from mattekit.bench import shadow_scenes

    python = bpy_python(LTS)
    env = fresh_home(shared, tmp_path, monkeypatch)
    installer(env, "--bpy-python", str(python))
    scene = shadow_scenes.example(shared / "data")
    plate = tmp_path / "plate"
    plate.mkdir()
    for n in range(2):
        Image.fromarray(np.round(scene.photo * 255).astype(np.uint8)).save(plate / f"{n:05d}.jpg", quality=95)
    try:
        rec = {"run": run_blender(python, env, ["--plate", str(plate), "--frames", "2", "--output",
                                                str(tmp_path / "mattes"), "--renders", str(tmp_path / "renders"),
                                                "--model", "u2netp", "--shadow"])}
    finally:
        shutdown_worker()
    case = blender_said(rec, "sequence")
    assert case["operator"] == ["FINISHED"] and case["rerun_groups"] == 1, case
    assert case["group_outputs"] == ["Image", "Matte", "Shadow"], case["group_outputs"]
    shadows = sorted((tmp_path / "mattes").glob("*_shadow.*.png"))
    assert len(shadows) == 2, sorted(p.name for p in (tmp_path / "mattes").iterdir())
    matte = np.asarray(Image.open(shadows[0]).convert("F")) / (65535.0 if Image.open(shadows[0]).mode.startswith("I") else 255.0)
    region = (scene.shadow > 0.2) & (scene.alpha < 0.01)
    assert matte[region].mean() > 0.15, "the subject's shadow in the sequence"
    assert case["shadow_renders"] == ["frame_0001.png", "frame_0002.png"], case["shadow_renders"]
    rendered = np.asarray(Image.open(tmp_path / "renders" / "shadow" / "frame_0001.png").convert("RGB"))[..., 0] / 255.0
    difference = np.abs(rendered - linear_to_srgb(matte.astype(np.float32)))[region].mean()
    print(f"real Blender {LTS}: the AI Matte group's Shadow output renders the worker's shadow matte within "
          f"{difference:.4f} (mean, sRGB) where the composite's shadow is")
    assert difference < 0.02
