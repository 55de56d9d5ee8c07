"""The portable zip of the AI Matte add-on (`--zip`, no path of the building machine) installed into a fresh HOME in
real Blender: it refuses in one sentence with no worker and no Python, finds a worker that `mattekit serve` started
(by the default state file) and starts one with $MATTEKIT_PYTHON; and the plate's shadow on the node group's Shadow
output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mattekit.io import linear_to_srgb
from blender_runs import bpy_python, shutdown_worker

from blender_e2e import HERE, LTS, ROOT, SEQUENCE, ZIP_MIN_IOU, blender_said, check_case, fresh_home, installer
from blender_e2e import run_ai_matte, run_blender

pytestmark = [pytest.mark.blender, pytest.mark.slow]


def other_machine(tmp_path: Path, monkeypatch, frames: int, shared: Path) -> tuple[dict, Path]:
    """A fresh HOME as on another machine, holding a plate (the first ``frames`` of the DAVIS sequence, copied
    under HOME: a worker's default roto folders), and the environment of its Blender: nothing of mattekit set.
    This process gets that HOME too, without MATTEKIT_HOME, so that it finds the worker by the default state file."""
    home = tmp_path / "other"
    plate = home / "shots" / SEQUENCE
    plate.mkdir(parents=True)
    for index in range(frames):
        (plate / f"{index:05d}.jpg").write_bytes(
            (shared / "data" / "davis" / "im" / SEQUENCE / f"{index:05d}.jpg").read_bytes()
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "BLENDER_", "MATTEKIT_"))}
    env.update(HOME=str(home), OMP_NUM_THREADS="1")
    monkeypatch.setenv("HOME", str(home))
    for name in ("MATTEKIT_HOME", "MATTEKIT_WORKER_STATE", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    return env, plate


@pytest.mark.parametrize("version", ["4.5.15", "5.0.1"])
def test_the_zip_finds_the_worker_on_another_machine(version, shared, tmp_path, monkeypatch):
    """The zip that install_blender.py --zip writes (no path of the machine that built it), installed into a
    fresh HOME as Blender's Install from Disk does: with no worker and no Python set, the operator refuses in
    one sentence saying what to do; with a worker started by `mattekit serve` (its default state file under
    that HOME) it finds it and runs the job; with $MATTEKIT_PYTHON set and no worker, it starts one."""
    python = bpy_python(version)
    builder = tmp_path / "builder"
    builder.mkdir()
    archive = tmp_path / "dist" / "mattekit_ai_matte-0.1.0.zip"
    archive.parent.mkdir()
    built = installer(dict(os.environ, HOME=str(builder), PATH="/usr/bin:/bin"), "--zip", str(archive))
    assert f"write {archive}" in built and "no Blender found" in built
    frames = 2
    env, plate = other_machine(tmp_path, monkeypatch, frames, shared)
    added = subprocess.run(
        [str(python), str(ROOT / "install" / "inside_blender.py"), "install", str(archive)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert added.returncode == 0 and '"ok": true' in added.stdout, (added.stdout + added.stderr)[-3000:]
    home = Path(env["HOME"])
    state = home / ".local" / "state" / "mattekit" / "worker.json"  # the default state file on Linux
    truths = shared / "data" / "davis" / "gt" / SEQUENCE

    # (b) no worker, no Python: one sentence, no traceback
    run = subprocess.run(
        [
            str(python),
            str(HERE / "e2e_ai_matte.py"),
            "--plate",
            str(plate),
            "--frames",
            str(frames),
            "--output",
            str(home / "shots" / "none"),
            "--renders",
            str(tmp_path / "none"),
            "--model",
            "u2netp",
            "--refused",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, (run.stdout + run.stderr)[-3000:]
    refused = json.loads(lines[-1][len("RESULT ") :])["refused"]
    print(f"Blender {version}, no worker and no Python: {refused}")
    assert refused["operator"] in (None, ["CANCELLED"])
    assert refused["message"] == (
        "Error: No mattekit worker is running and no Python for one is set: start one with "
        "'mattekit serve', or set the worker's Python in the add-on preferences.\n"
    )
    assert "Traceback" not in run.stdout + run.stderr and not state.exists()

    # (a) a worker started by `mattekit serve` on that machine: found by its default state file
    serve_env = dict(env, MATTEKIT_MIRROR=str(shared / "weights"), MATTEKIT_OFFLINE="1", PYTHONPATH=str(ROOT / "core"))
    serve = subprocess.Popen(
        [sys.executable, "-m", "mattekit", "serve", "--idle-timeout", "300"],
        env=serve_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        from mattekit.wire import client

        for _ in range(600):
            if client.find_worker(str(state), timeout=1.0) is not None or serve.poll() is not None:
                break
            time.sleep(0.1)
        assert client.find_worker(str(state)) is not None, "mattekit serve did not write the default state file"
        renders, mattes = tmp_path / "renders-served", home / "shots" / "mattes-served"
        renders.mkdir()
        result = run_ai_matte(python, env, plate, frames, mattes, renders, "--model", "u2netp")
        assert serve.wait(timeout=60) == 0  # run_ai_matte stopped it: it was that worker the add-on used
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
    assert result["enabled"] and result["model"] == "u2netp"
    ious = check_case(
        result["sequence"],
        renders / "sequence",
        mattes,
        plate,
        truths,
        [(f, f"{SEQUENCE}_matte.{f - 1:05d}.png", f - 1) for f in range(1, frames + 1)],
    )
    print(f"Blender {version}, worker from `mattekit serve`: IoU per frame {[round(x, 4) for x in ious]}")
    assert np.mean(ious) > ZIP_MIN_IOU

    # (c) $MATTEKIT_PYTHON set and no worker: the add-on starts one (with the settings of Blender's environment)
    renders, mattes = tmp_path / "renders-started", home / "shots" / "mattes-started"
    renders.mkdir()
    started_env = dict(
        env, MATTEKIT_PYTHON=sys.executable, MATTEKIT_MIRROR=str(shared / "weights"), MATTEKIT_OFFLINE="1"
    )
    result = run_ai_matte(python, started_env, plate, frames, mattes, renders, "--model", "u2netp")
    assert (state.parent / "worker.log").is_file(), "the add-on did not start a worker with the default state file"
    ious = check_case(
        result["sequence"],
        renders / "sequence",
        mattes,
        plate,
        truths,
        [(f, f"{SEQUENCE}_matte.{f - 1:05d}.png", f - 1) for f in range(1, frames + 1)],
    )
    print(f"Blender {version}, worker started with $MATTEKIT_PYTHON: IoU per frame {[round(x, 4) for x in ious]}")
    assert np.mean(ious) > ZIP_MIN_IOU


# The AI Matte add-on's Shadow: a Shadow output on the node group giving the plate's own shadow (issue 83).
def test_ai_matte_gives_the_plates_shadow_on_a_shadow_output(shared, tmp_path, monkeypatch):
    from mattekit_bench import shadow_scenes

    python = bpy_python(LTS)
    env = fresh_home(shared, tmp_path, monkeypatch)
    installer(env, "--bpy-python", str(python))
    scene = shadow_scenes.example(shared / "data")
    plate = tmp_path / "plate"
    plate.mkdir()
    for n in range(2):
        Image.fromarray(np.round(scene.photo * 255).astype(np.uint8)).save(plate / f"{n:05d}.jpg", quality=95)
    try:
        rec = {
            "run": run_blender(
                python,
                env,
                [
                    "--plate",
                    str(plate),
                    "--frames",
                    "2",
                    "--output",
                    str(tmp_path / "mattes"),
                    "--renders",
                    str(tmp_path / "renders"),
                    "--model",
                    "u2netp",
                    "--shadow",
                ],
            )
        }
    finally:
        shutdown_worker()
    case = blender_said(rec, "sequence")
    assert case["operator"] == ["FINISHED"] and case["rerun_groups"] == 1, case
    assert case["group_outputs"] == ["Image", "Matte", "Shadow"], case["group_outputs"]
    shadows = sorted((tmp_path / "mattes").glob("*_shadow.*.png"))
    assert len(shadows) == 2, sorted(p.name for p in (tmp_path / "mattes").iterdir())
    matte = np.asarray(Image.open(shadows[0]).convert("F")) / (
        65535.0 if Image.open(shadows[0]).mode.startswith("I") else 255.0
    )
    region = (scene.shadow > 0.2) & (scene.alpha < 0.01)
    assert matte[region].mean() > 0.15, "the subject's shadow in the sequence"
    assert case["shadow_renders"] == ["frame_0001.png", "frame_0002.png"], case["shadow_renders"]
    rendered = np.asarray(Image.open(tmp_path / "renders" / "shadow" / "frame_0001.png").convert("RGB"))[..., 0] / 255.0
    difference = np.abs(rendered - linear_to_srgb(matte.astype(np.float32)))[region].mean()
    print(
        f"real Blender {LTS}: the AI Matte group's Shadow output renders the worker's shadow matte within "
        f"{difference:.4f} (mean, sRGB) where the composite's shadow is"
    )
    assert difference < 0.02
