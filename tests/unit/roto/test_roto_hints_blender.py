"""Roto hints drawn in real Blender (bpy 4.5 and 5.0, the AI Matte add-on): a Mask datablock is the keyframe hint,
its layers are objects with a matte each, and with a SAM 2.1 model it starts a track."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mattekit.io import read_image
from plates import two_subject_plate


# ----------------------------------------------------------------------------------- Blender


def blender_hint_run(
    version: str,
    shared: Path,
    tmp_path: Path,
    monkeypatch,
    frames: int,
    model: str | None = None,
    weights: Path | None = None,
    both: bool = False,
) -> tuple[dict, Path]:
    """In real bpy (``version``): the add-on's operator on a two-subject plate of ``frames`` frames, a Mask datablock
    drawn around the left subject on frame 1 as the hint (``both``: a second layer around the right one), ``model``
    (u2netp by default; ``weights``: a file added to the worker as that model's derived copy). (The script's RESULT
    record, the mattes folder.)"""
    from blender_runs import bpy_python, shutdown_worker
    from checkout import install_module

    python = bpy_python(version)
    plate = two_subject_plate(shared, tmp_path / "plate", frames, first=1)
    env = {k: v for k, v in os.environ.items() if k not in ("MATTEKIT_WORKER_STATE", "MATTEKIT_CATALOG")}
    env.update(
        HOME=str(tmp_path / "home"),
        MATTEKIT_HOME=str(tmp_path / "mattekit-home"),
        OMP_NUM_THREADS="1",
        MATTEKIT_MIRROR=str(shared / "weights"),
        MATTEKIT_ALLOW_DIRS=str(tmp_path),
    )
    for name in ("HOME", "MATTEKIT_HOME"):
        monkeypatch.setenv(name, env[name])  # this process finds the worker the add-on starts
    (tmp_path / "home").mkdir()
    if weights is not None:
        from blender_runs import add_derived

        add_derived(env, model, weights)
    module = install_module("install_blender")
    settings = module.worker_record.worker_settings(env)
    info = module.worker_record.query_worker(sys.executable, settings, "test")
    for name, data in module.addon_files(
        module.worker_record.build_record(sys.executable, info, 60.0, settings)
    ).items():
        (tmp_path / "mattekit_ai_matte" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "mattekit_ai_matte" / name).write_bytes(data)
    output = tmp_path / "mattes"
    script = Path(__file__).resolve().parents[2] / "hosts" / "blender" / "hint_mask.py"
    try:  # the mask's space: x 0..1 across the width, y centred: 0.3..0.7 covers the 120 rows of the 428-wide plate
        run = subprocess.run(
            [
                str(python),
                str(script),
                str(tmp_path),
                plate.replace("####", "0001"),
                str(output),
                "0.01",
                "0.3",
                "0.48",
                "0.7",
                *([model or "u2netp"] if model or both else []),
                *(["0.52", "0.3", "0.99", "0.7"] if both else []),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        shutdown_worker()
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, (run.stdout + run.stderr)[-4000:]
    import json

    result = json.loads(lines[-1][len("RESULT ") :])
    assert result["operator"] == ["FINISHED"], run.stdout[-3000:]
    if both:
        return result, output
    assert result["hints"] == ["plate_hint.0001.png"]
    hint = read_image(output / "hints" / "plate_hint.0001.png").pixels[..., 0]
    assert hint[:, 20:190].min() > 0.5 and hint[:, 214:].max() < 0.5  # the mask as drawn, on the plate's pixels
    found = sorted(output.glob("plate_matte.*.png"))
    assert [p.name for p in found] == [f"plate_matte.{n:04d}.png" for n in range(1, frames + 1)]
    return result, output


@pytest.mark.blender
@pytest.mark.slow
@pytest.mark.parametrize("version", ["4.5.15", "5.0.1"])
def test_blender_mask_datablock_picks_the_subject(version, shared, tmp_path, monkeypatch):
    """In real bpy: a Mask datablock drawn around the left subject on frame 1 becomes the roto job's
    hint (rendered to a keyframe hint file) and every matte keeps that subject only: a subject the model's unhinted
    answer leaves out (on this small plate u2netp finds nothing unhinted)."""
    import mattekit

    _, output = blender_hint_run(version, shared, tmp_path, monkeypatch, 4)
    plate = read_image(tmp_path / "plate" / "plate.0001.png").pixels
    unhinted = mattekit.remove_background(plate, model="u2netp", result="alpha") / 255.0
    assert unhinted[:, :214].mean() < 0.01, (
        "unhinted, the model must leave the left subject out (else this tests nothing)"
    )
    for path in sorted(output.glob("plate_matte.*.png")):
        matte = read_image(path).pixels[..., 0]
        assert matte[:, 220:].max() < 0.5 and matte[:, :214].mean() > 0.05, path.name


@pytest.mark.blender
@pytest.mark.slow
@pytest.mark.parametrize("version", ["4.5.15", "5.0.1"])
def test_blender_mask_layers_are_objects_with_a_matte_each(version, shared, tmp_path, monkeypatch):
    """In real bpy: a Mask with two layers (around the left subject, "Dog", and the right one,
    "Black swan") is two objects: each layer rendered alone as its keyframe hint, one matte sequence per object
    keeping its subject only, and the AI Matte group outputs their union (Image, Matte) and each object's matte;
    the layers' render visibility is as the artist left it."""
    result, output = blender_hint_run(version, shared, tmp_path, monkeypatch, 2, both=True)
    assert result["hints"] == ["plate_hint_Black_swan.0001.png", "plate_hint_Dog.0001.png"], result
    assert result["outputs"] == ["Image", "Matte", "Matte Dog", "Matte Black_swan"], result
    assert result["hide_render"] == [False, False]
    dog, swan = (
        read_image(output / "hints" / f"plate_hint_{n}.0001.png").pixels[..., 0] for n in ("Dog", "Black_swan")
    )
    assert dog[:, 20:190].min() > 0.5 and dog[:, 214:].max() < 0.5, "the Dog layer alone"
    assert swan[:, 240:410].min() > 0.5 and swan[:, :200].max() < 0.5, "the Black swan layer alone"
    for name, keeps, leaves in (
        ("Dog", slice(0, 200), slice(220, None)),
        ("Black_swan", slice(228, None), slice(0, 208)),
    ):
        found = sorted(output.glob(f"plate_matte_{name}.*.png"))
        assert [p.name for p in found] == [f"plate_matte_{name}.{n:04d}.png" for n in (1, 2)], name
        for path in found:
            matte = read_image(path).pixels[..., 0]
            assert matte[:, leaves].max() < 0.5 and matte[:, keeps].mean() > 0.02, path.name


@pytest.mark.blender
@pytest.mark.slow
def test_blender_mask_datablock_starts_a_sam_track(shared, tmp_path, monkeypatch, stand_in):
    """In the host: with a SAM 2.1 model picked in the add-on (stand-in weights added to the worker as a
    derived copy: the path, not quality), the Mask datablock is the keyframe prompt and SAM's memory carries it
    through the shot; the job's manifest names the tracker."""
    _, output = blender_hint_run("4.5.15", shared, tmp_path, monkeypatch, 2, "sam2.1-hiera-tiny", stand_in)
    manifest = next(output.glob("*.mattekit.json")).read_text()
    assert '"sam2.1-hiera-tiny"' in manifest, manifest[:2000]
