"""The AI Matte add-on's end-to-end runs in real Blender, shared by tests/hosts/blender's test modules: a fresh HOME,
the installer, one headless Blender run per version (:func:`launch`) and what it said (:func:`blender_said`), the
operator run on a plate (:func:`run_ai_matte`) and its mattes scored (:func:`check_case`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from mattekit.io import colour
from mattekit.catalog import CATALOG_PATH
from mattekit.io import read_image, srgb_to_linear, write_image
from blender_runs import add_derived, bpy_python, shutdown_worker
from checkout import snapshot

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "tests" / "hosts" / "blender"  # the scripts run in bpy's python
INSTALLER = ROOT / "install" / "install_blender.py"
FRAMES = 4
SEQUENCE = "blackswan"
PEOPLE_SEQUENCE, PEOPLE_FRAMES = "kite-surf", 6  # a person in motion
# IoU floors: each measured mean less a small margin (the same numbers in both versions, frames within 0.01-0.08)
PEOPLE_MIN_IOU = 0.58  # measured 0.6164 on frames 0-5 (frames 0.563-0.644), MODNet with the temporal filter
SEQUENCE_MIN_IOU = 0.91  # csnet-sod on blackswan frames 0-3 through the installed add-on: measured 0.9283
MOVIE_MIN_IOU = 0.90  # the same frames from an H.264 movie (PyAV's x264) through a Movie Clip node: measured 0.9247
ZIP_MIN_IOU = 0.91  # u2netp on blackswan frames 0-1 through the portable zip: measured 0.935, 0.933 (4.5 and 5.0)
EXTRA_MODEL = "csnet-sod-copy"  # in the worker's catalog only, not in the installer's record


ORT_OWN = ".cache/Microsoft/"  # where ONNX Runtime 1.32 keeps a device id and a database (see home_state)


def home_state(home: Path) -> dict:
    """:func:`snapshot` of HOME without what ONNX Runtime writes there by itself: its ``.cache/Microsoft`` folder (a
    device id and a database, made by every process that opens a session, the worker included; not the installer's,
    so no uninstall of ours removes it)."""
    return {
        path: state
        for path, state in snapshot(home).items()
        if not (path + "/").startswith(ORT_OWN) and not (path == ".cache" and not _others_in(home / ".cache"))
    }


def _others_in(folder: Path) -> bool:
    """``folder`` holds something besides ONNX Runtime's own folder."""
    return any(entry.name != "Microsoft" for entry in folder.iterdir())


def installer(env: dict, *args: str) -> str:
    run = subprocess.run([sys.executable, str(INSTALLER), *args], env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    return run.stdout


def catalog_with_extra_model(path: Path) -> Path:
    """The project's catalog plus EXTRA_MODEL (csnet-sod under another name)."""
    text = CATALOG_PATH.read_text()
    start = text.index("[models.csnet-sod]")
    end = text.index("\n[", start + 1)
    path.write_text(text + "\n" + text[start:end].replace("[models.csnet-sod]", f"[models.{EXTRA_MODEL}]") + "\n")
    return path


def fresh_home(shared: Path, tmp_path: Path, monkeypatch) -> dict:
    """The environment of a fresh HOME (tmp_path/home) with weights from the shared mirror; this process
    gets its HOME and MATTEKIT_HOME too, so that it finds the worker the add-on starts (shutdown_worker)."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "BLENDER_USER_RESOURCES",
            "XDG_CONFIG_HOME",
            "XDG_CACHE_HOME",
            "XDG_STATE_HOME",
            "MATTEKIT_WORKER_STATE",
            "MATTEKIT_CATALOG",
        )
    }
    env.update(
        HOME=str(home),
        MATTEKIT_HOME=str(tmp_path / "mattekit-home"),
        MATTEKIT_MIRROR=str(shared / "weights"),
        OMP_NUM_THREADS="1",
        MATTEKIT_ALLOW_DIRS=os.pathsep.join([str(shared), str(tmp_path)]),
    )  # roto's paths
    for name in ("HOME", "MATTEKIT_HOME"):
        monkeypatch.setenv(name, env[name])
    return env


def run_ai_matte(python: Path, env: dict, plate: Path, frames: int, mattes: Path, renders: Path, *args: str) -> dict:
    """tests/hosts/blender/e2e_ai_matte.py in bpy's python on the first ``frames`` of ``plate``; its RESULT record."""
    try:
        run = subprocess.run(
            [
                str(python),
                str(HERE / "e2e_ai_matte.py"),
                "--plate",
                str(plate),
                "--frames",
                str(frames),
                "--output",
                str(mattes),
                "--renders",
                str(renders),
                *args,
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
    return json.loads(lines[-1][len("RESULT ") :])


def make_movie(plate: Path, path: Path, count: int) -> Path | None:
    """The plate's first frames as an H.264 movie (None without PyAV)."""
    try:
        import av
    except ImportError:
        return None
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": "12", "g": "3"})
        first = cv2.imread(str(plate / "00000.jpg"))
        stream.height, stream.width = first.shape[:2]
        stream.pix_fmt = "yuv420p"
        for i in range(count):
            rgb = np.ascontiguousarray(cv2.imread(str(plate / f"{i:05d}.jpg"))[..., ::-1])
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def check_case(case: dict, renders: Path, mattes: Path, plate: Path, truths: Path, pairs) -> list[float]:
    """Assert what the operator built and what was rendered; returns the IoU per frame.

    pairs: (render frame, matte file, plate frame index) for each rendered frame.
    """
    assert case["operator"] == ["FINISHED"]
    assert case["job_forgotten"], "the add-on left its ended job in the worker's table (it fills up: 429)"
    assert len(case["groups"]) == 1 and case["groups"][0].startswith("AI Matte") and case["rerun_groups"] == 1
    assert case["linked"] == {"plate_to_group": True, "group_to_output": True}
    assert case["matte"]["colorspace"] == "Non-Color" and case["matte"]["source"] == "SEQUENCE"
    assert case["renders"] == [f"frame_{f:04d}.png" for f, _, _ in pairs]
    ious = []
    for frame, matte_file, index in pairs:
        render = cv2.imread(str(renders / f"frame_{frame:04d}.png"), cv2.IMREAD_UNCHANGED)
        assert render is not None and render.shape[2] == 4
        alpha = render[..., 3].astype(np.float32) / 255
        truth = cv2.imread(str(truths / f"{index:05d}.png"), cv2.IMREAD_GRAYSCALE) > 127
        pred = alpha >= 0.5
        ious.append(float(np.count_nonzero(pred & truth) / max(1, np.count_nonzero(pred | truth))))
        # the right matte file on the right frame
        matte = cv2.imread(str(mattes / matte_file), cv2.IMREAD_UNCHANGED).astype(np.float32) / 65535
        assert np.abs(alpha - matte).max() <= 1.5 / 255, (frame, matte_file)
        # Apply Mask keeps the plate's colours (straight alpha) where the subject is: the right plate frame
        photo = cv2.imread(str(plate / f"{index:05d}.jpg"))
        inside = alpha > 0.5
        assert np.abs(render[..., :3].astype(np.float32) - photo)[inside].mean() < 4.0, (frame, index)
    return ious


COLOUR_PLATES = {  # name: (suffix, the colour space set on the clip in Blender, None: Blender's default)
    "png": (".png", None),
    "acescg": (".exr", "ACEScg"),
    "linear": (".exr", None),
    "float-tiff": (".tif", None),
}


def colour_plates(shared: Path, folder: Path) -> dict[str, list]:
    """Two DAVIS frames, shrunk, as one picture in four plates: 8-bit sRGB PNG, float EXR in ACEScg (converted with
    mattekit's own config), float EXR in linear Rec.709, float TIFF sRGB-encoded (which Blender reads as sRGB and
    mattekit alone as linear); {name: [first frame file, the colour space to set]}."""
    from studio_plates import oiio_write

    to_acescg = colour.config().getProcessor(colour.NETWORK_SPACE, "ACEScg").getDefaultCPUProcessor()
    cases = {}
    (folder / "png").mkdir(parents=True)
    for frame in (1, 2):
        photo = cv2.resize(
            read_image(shared / "data" / "davis" / "im" / SEQUENCE / f"{frame - 1:05d}.jpg").pixels,
            (160, 96),
            interpolation=cv2.INTER_AREA,
        )
        write_image(folder / "png" / f"p.{frame:04d}.png", photo)
        srgb = read_image(folder / "png" / f"p.{frame:04d}.png").pixels  # the 8-bit values the PNG holds
        acescg = srgb.copy()
        to_acescg.applyRGB(acescg)
        for name, pixels in (("acescg", acescg), ("linear", srgb_to_linear(srgb)), ("float-tiff", srgb)):
            oiio_write(folder / name / f"p.{frame:04d}{COLOUR_PLATES[name][0]}", [(pixels, ["R", "G", "B"])])
    for name, (suffix, space) in COLOUR_PLATES.items():
        cases[name] = [str(folder / name / f"p.0001{suffix}"), space]
    return cases


LTS = "4.5.15"  # the people and BiRefNet cases run in this version alone: the add-on's code is the same for both
EXIT_WAIT = 60  # seconds Blender may take to exit once it printed its record (4.5 hangs there with classes registered)


def run_blender(python: Path, env: dict, args: list[str], timeout: float = 1800) -> dict:
    """e2e_ai_matte.py (beside this file) in bpy's python with ``args``: {"result": its RESULT record or None,
    "exited": whether the process ended by itself within EXIT_WAIT s of printing it, "returncode", "output": its last
    lines}."""
    with open(Path(env["HOME"]).parent / "blender.out", "w+") as out:
        proc = subprocess.Popen(
            [str(python), str(HERE / "e2e_ai_matte.py"), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        start, printed = time.monotonic(), None
        while proc.poll() is None:
            if printed is None and "\nRESULT " in "\n" + Path(out.name).read_text():
                printed = time.monotonic()
            if (printed and time.monotonic() - printed > EXIT_WAIT) or time.monotonic() - start > timeout:
                break
            time.sleep(0.5)
        exited = proc.poll() is not None
        if not exited:
            proc.kill()
        returncode = proc.wait()
        text = Path(out.name).read_text()
    found = [line for line in text.splitlines() if line.startswith("RESULT ")]
    return {
        "result": json.loads(found[-1][len("RESULT ") :]) if found else None,
        "exited": exited,
        "returncode": returncode,
        "output": text[-4000:],
    }


def launch(version: str, shared: Path, tmp_path: Path, checkpoints) -> dict:
    """The install, one Blender run of every check that shares its scene, and the uninstall, in a fresh HOME; the
    record the tests assert on (installer outputs, HOME snapshots, the Blender run's record)."""
    python = bpy_python(version)
    rec = {"version": version, "python": python, "folder": tmp_path}
    with pytest.MonkeyPatch.context() as monkeypatch:
        env = fresh_home(shared, tmp_path, monkeypatch)
        home = rec["home"] = Path(env["HOME"])
        if version == LTS:  # stand-in weights for birefnet-general-lite, as a derived copy
            add_derived(env, "birefnet-general-lite", checkpoints[0]["pth"])
        rec["before"] = home_state(home)
        rec["planned"] = installer(env, "--bpy-python", str(python), "--dry-run")
        rec["after_dry_run"] = home_state(home)
        rec["done"] = installer(env, "--bpy-python", str(python))
        rec["installed"] = home_state(home)
        rec["again"] = installer(env, "--bpy-python", str(python))
        folder = rec["addon"] = (
            home / ".config" / "blender" / version[:3] / "extensions" / "user_default" / "mattekit_ai_matte"
        )
        rec["record"] = json.loads((folder / "mattekit_worker.json").read_text())
        rec["addon_files"] = {p.name for p in folder.iterdir()}

        checks = tmp_path / "checks"
        (checks / "plate").mkdir(parents=True)
        for frame in (1, 2):  # a plate for the colour-space check: Blender reads it in the colour space it is set to
            write_image(checks / "plate" / f"p.{frame:04d}.exr", np.full((8, 12, 3), 0.5, np.float32))
        rec["colour_cases"] = colour_plates(shared, tmp_path / "plates")
        plate = shared / "data" / "davis" / "im" / SEQUENCE
        (tmp_path / "renders").mkdir()
        rec["movie"] = make_movie(plate, tmp_path / f"{SEQUENCE}.mp4", FRAMES + 2)
        cases = (
            []
            if version != LTS
            else [
                "--case",
                "people",
                "people",
                str(shared / "data" / "davis" / "im" / PEOPLE_SEQUENCE),
                str(PEOPLE_FRAMES),
                "--case",
                "birefnet",
                "birefnet-general-lite",
                str(plate),
                "1",
            ]
        )
        run_env = dict(env, MATTEKIT_CATALOG=str(catalog_with_extra_model(tmp_path / "catalog.toml")))
        try:
            rec["run"] = run_blender(
                python,
                run_env,
                [
                    "--plate",
                    str(plate),
                    "--frames",
                    str(FRAMES),
                    "--output",
                    str(tmp_path / "mattes"),
                    "--renders",
                    str(tmp_path / "renders"),
                    "--extra-model",
                    EXTRA_MODEL,
                    *(["--movie", str(rec["movie"])] if rec["movie"] else []),
                    *cases,
                    "--exit-registered",
                    "--checks",
                    json.dumps(
                        {
                            "folder": str(checks),
                            "colour_cases": rec["colour_cases"],
                            "colour_out": str(tmp_path / "colour-out"),
                        }
                    ),
                ],
            )
        finally:
            shutdown_worker()
        rec["used"] = home_state(home)
        rec["planned_uninstall"] = installer(env, "--bpy-python", str(python), "--uninstall", "--dry-run")
        rec["after_uninstall_dry_run"] = home_state(home)
        rec["uninstalled"] = installer(env, "--bpy-python", str(python), "--uninstall")
        rec["after_uninstall"] = home_state(home)
        rec["uninstall_again"] = installer(env, "--bpy-python", str(python), "--uninstall")
        rec["after"] = home_state(home)
    return rec


def blender_said(rec: dict, *keys: str):
    """The part of the Blender run's record under ``keys`` (a failure with Blender's last output when missing)."""
    part = rec["run"]["result"]
    for key in keys:
        assert isinstance(part, dict) and key in part, (keys, rec["run"]["returncode"], rec["run"]["output"])
        part = part[key]
    return part
