"""The AI Matte add-on in real Blender (bpy 4.5 LTS and 5.0 as modules, each in its own venv), installed
by install/install_blender.py into a fresh HOME.

For each version, one fixture run (:func:`launch`, once per version per session) does what the tests below
assert on, each test on its own part of its record: --dry-run changes nothing; the installer builds the extension
zip, has Blender's own ``blender_ext.py`` validate it, installs and enables it; then ONE headless Blender reads those
preferences (as Blender does at start) and uses the installed add-on: the job properties follow the recorded schema
(types, ranges, defaults, colour spaces sent for a plate), plates loaded as Movie Clips in four colour spaces are
described (the worker's part of that check runs in the test), the model menu comes from the live worker (a model
only in the worker's catalog is offered without reinstalling), the operator runs on real DAVIS frames (real
csnet-sod weights from the shared mirror, through the worker the add-on starts), the composite is rendered and its
alpha scored against the ground truth (IoU printed); in Blender 4.5 also the `people` model on a shot of a person
in motion (IoU printed) and birefnet-general-lite from the menu (stand-in weights); the add-on is disabled, enabled
again and the process must still exit; then --uninstall leaves HOME exactly as it was, and the dry runs of install
and uninstall list the very steps the real runs take (lines, count and the changes to HOME).
Also per version: the portable zip (`--zip`, no path of the building machine) installed into a fresh HOME refuses in
one sentence with no worker and no Python, finds a worker that `mattekit serve` started (by the default state file)
and starts one with $MATTEKIT_PYTHON.
The bpy venvs are built on first use into $MATTEKIT_CACHE by tests/hosts/blender/build_venv.py and reused; a machine
without a Python for bpy fails these tests with the reason (no skip: the host would go unchecked).
"""

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
from PIL import Image

from mattekit.io import colour
from mattekit.catalog import CATALOG_PATH
from mattekit.io import linear_to_srgb, read_image, srgb_to_linear, write_image
from mattekit.io.read import read_plate
from blender_runs import add_derived, bpy_python, shutdown_worker
from checkout import install_module, snapshot

pytestmark = [pytest.mark.blender, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent  # the scripts run in bpy's python
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


@pytest.fixture(scope="module")
def blender(shared, tmp_path_factory, checkpoints):
    """blender(version): :func:`launch`'s record for that version, made on first use (a failure, kept, is raised again
    for each test that asks)."""
    made = {}

    def get(version: str) -> dict:
        if version not in made:
            try:
                made[version] = launch(version, shared, tmp_path_factory.mktemp(f"blender-{version}"), checkpoints)
            except BaseException as exc:  # noqa: BLE001 - pytest.fail's outcome too: every test of the version says it
                made[version] = exc
        if isinstance(made[version], BaseException):
            raise made[version]
        return made[version]

    return get


def blender_said(rec: dict, *keys: str):
    """The part of the Blender run's record under ``keys`` (a failure with Blender's last output when missing)."""
    part = rec["run"]["result"]
    for key in keys:
        assert isinstance(part, dict) and key in part, (keys, rec["run"]["returncode"], rec["run"]["output"])
        part = part[key]
    return part


@pytest.mark.parametrize("version", ["4.5.15", "5.0.1"])
def test_install_and_uninstall_leave_home_as_it_was(version, blender, shared):
    rec = blender(version)
    print(rec["planned"], rec["done"], rec["planned_uninstall"], rec["uninstalled"], sep="\n")
    assert (
        "would install mattekit_ai_matte" in rec["planned"]
        and "passes Blender's own extension validation" in rec["planned"]
    )
    assert rec["after_dry_run"] == rec["before"], "--dry-run changed HOME"
    assert "install_blender: install mattekit_ai_matte" in rec["done"]
    assert "already up to date" in rec["again"]
    assert rec["record"]["python"] == os.path.abspath(sys.executable)
    assert rec["record"]["environment"]["MATTEKIT_MIRROR"] == str(shared / "weights")
    assert {"mattekit_wire", "mattekit_install.json"} <= rec["addon_files"]
    assert f"would remove folder {rec['home'] / '.config'}" in rec["planned_uninstall"]
    assert rec["after_uninstall_dry_run"] == rec["used"], "--uninstall --dry-run changed HOME"
    assert rec["after_uninstall"] == rec["before"], "--uninstall left HOME changed"
    assert "nothing to remove" in rec["uninstall_again"]
    assert rec["after"] == rec["before"]


@pytest.mark.parametrize("version", ["4.5.15", "5.0.1"])
def test_ai_matte_in_blender(version, blender, shared):
    rec = blender(version)
    blender_said(rec, "sequence")
    result = rec["run"]["result"]
    assert result["enabled"] and result["disabled"]
    options = set(result["options"])  # the job's properties, from the recorded roto schema
    assert options >= {"model", "device", "temporal", "refine", "radius", "use_radius", "bit_depth", "overwrite"}
    assert not options & {"plate", "output", "frames"}
    assert result["extra_model"] == {"before_worker": False, "from_live_worker": True}
    # the checks before the operator left the job's values at their defaults (they would change this run)
    assert blender_said(rec, "job_properties", "reset") == blender_said(rec, "job_properties", "defaults")
    plate, truths = (shared / "data" / "davis" / kind / SEQUENCE for kind in ("im", "gt"))
    renders, mattes = rec["folder"] / "renders", rec["folder"] / "mattes"
    # image sequence 00000.jpg.. on scene frames 1..: scene frame f shows plate file f-1
    ious = check_case(
        result["sequence"],
        renders / "sequence",
        mattes,
        plate,
        truths,
        [(f, f"{SEQUENCE}_matte.{f - 1:05d}.png", f - 1) for f in range(1, FRAMES + 1)],
    )
    print(
        f"Blender {result['blender']}: AI Matte IoU per frame {[round(x, 4) for x in ious]}, mean {np.mean(ious):.4f}"
    )
    assert np.mean(ious) > SEQUENCE_MIN_IOU
    if rec["movie"]:  # movie frame 1 at scene frame 9: scene frame f shows movie frame f-8 (DAVIS frame f-9)
        ious = check_case(
            result["movie"],
            renders / "movie",
            mattes / "movie",
            plate,
            truths,
            [(f, f"{SEQUENCE}_matte.{f - 8:04d}.png", f - 9) for f in range(10, 10 + FRAMES)],
        )
        print(
            f"Blender {result['blender']}: AI Matte on a Movie Clip, IoU per frame {[round(x, 4) for x in ious]}, "
            f"mean {np.mean(ious):.4f}"
        )
        assert np.mean(ious) > MOVIE_MIN_IOU


def test_ai_matte_on_people_with_the_people_model(blender, shared):
    """The AI Matte operator with the `people` model (MODNet through the temporal filter, from the Blender
    model menu) on a shot of a person in motion (DAVIS kite-surf): the rendered alpha's IoU is printed and
    bounded below. One Blender version (the LTS): the add-on's code is the same for both."""
    rec = blender(LTS)
    case = blender_said(rec, "people")
    assert case["model"] == "people"
    plate, truths = (shared / "data" / "davis" / kind / PEOPLE_SEQUENCE for kind in ("im", "gt"))
    ious = check_case(
        case,
        rec["folder"] / "renders" / "people",
        rec["folder"] / "mattes" / "people",
        plate,
        truths,
        [(f, f"{PEOPLE_SEQUENCE}_matte.{f - 1:05d}.png", f - 1) for f in range(1, PEOPLE_FRAMES + 1)],
    )
    print(
        f"Blender {rec['run']['result']['blender']}: AI Matte with model people on {PEOPLE_SEQUENCE}, alpha IoU per "
        f"frame {[round(x, 4) for x in ious]}, mean {np.mean(ious):.4f}"
    )
    assert np.mean(ious) > PEOPLE_MIN_IOU


def test_ai_matte_with_birefnet_from_the_model_menu(blender, shared):
    """In the host: birefnet-general-lite picked from the AI Matte model menu mattes a frame through the
    worker (stand-in weights added as a derived copy: the path, not quality, so no IoU bound); the node group
    shows the matte the worker wrote. One Blender version and one frame: BiRefNet at 1024 x 1024 on one CPU thread."""
    rec = blender(LTS)
    case = blender_said(rec, "birefnet")
    assert case["model"] == "birefnet-general-lite"
    plate, truths = (shared / "data" / "davis" / kind / SEQUENCE for kind in ("im", "gt"))
    mattes = rec["folder"] / "mattes" / "birefnet"
    check_case(
        case, rec["folder"] / "renders" / "birefnet", mattes, plate, truths, [(1, f"{SEQUENCE}_matte.00000.png", 0)]
    )
    manifest = next(mattes.glob("*.mattekit.json")).read_text()
    assert '"birefnet-general-lite"' in manifest, manifest[:2000]


@pytest.mark.parametrize("version", ["4.5.15", "5.0.1"])
def test_exit_with_addon_still_registered(version, blender):
    """bpy 4.5 hangs at interpreter exit while add-on classes are registered; the add-on's exit hook
    unregisters them, so a script that ends with it enabled (disabled, then enabled again) still exits."""
    rec = blender(version)
    assert blender_said(rec, "registered_at_exit")
    assert rec["run"]["exited"], f"Blender did not exit within {EXIT_WAIT} s of its last line:\n{rec['run']['output']}"
    assert rec["run"]["returncode"] == 0, rec["run"]["output"]


@pytest.mark.parametrize("version", ["4.5.15", "5.0.1"])
def test_job_properties_follow_the_recorded_schema(version, blender):
    """bool -> Bool, number with minimum/maximum -> Int with min/max (nullable: a use_ toggle), choices -> Enum,
    path -> FILE_PATH string, model -> Enum of the recorded models; values go back in the worker's types."""
    rec = blender(version)
    result = blender_said(rec, "job_properties")
    props = result["properties"]
    assert not set(props) & {"plate", "output", "frames", "weights"}  # the add-on's own, and a CLI-only option
    assert props["refine"]["type"] == "BOOLEAN" and props["device"] == {
        "type": "STRING",
        "name": "Device",
        "subtype": "NONE",
    }
    assert props["radius"]["type"] == "INT" and (props["radius"]["min"], props["radius"]["max"]) == (0, 32)
    assert props["use_radius"]["type"] == "BOOLEAN" and props["threads"]["min"] == 1
    assert props["bit_depth"]["items"] == ["8", "16", "32"]
    assert props["rgba"]["subtype"] == "FILE_PATH" and props["fg"]["subtype"] == "FILE_PATH"
    assert props["model"]["type"] == "ENUM"
    assert result["birefnet_model"] == "birefnet-general-lite"  # the model menu holds the BiRefNet family too
    assert props["keep_personal"]["type"] == "BOOLEAN"  # the plate's personal metadata in --layers files: left out
    assert result["defaults"] == {
        "device": "auto",
        "refine": True,
        "temporal": True,
        "bit_depth": 16,
        "skip_missing": False,
        "overwrite": False,
        "keep_personal": False,
    }
    assert result["changed"] == dict(
        result["defaults"],
        model="csnet-sod",
        radius=3,
        bit_depth=8,
        refine=False,
        rgba=str(rec["folder"] / "checks" / "cut.####.png"),
    )
    assert result["unknown_model"] == "refused" and blender_said(rec, "unregistered")
    spaces = result["colorspaces"]
    config = spaces["ACEScg"].partition("@")[2]
    assert Path(config).is_file() and config.endswith("config.ocio"), spaces  # Blender's own OCIO config
    assert spaces == {
        "ACEScg": "ACEScg@" + config,
        "Linear Rec.709": "Linear Rec.709@" + config,
        "Filmic Log": "Filmic Log@" + config,
        "sRGB": "sRGB@" + config,
        "Non-Color": None,
        "job's own": "ACES2065-1",
    }
    # the worker converts with Blender's config exactly as with its own for the spaces both know; Filmic Log too
    pixels = np.random.default_rng(0).random((16, 16, 3), dtype=np.float32) * 4
    for blender_name, ours in (("ACEScg", "ACEScg"), ("Linear Rec.709", "Linear Rec.709 (sRGB)")):
        space = colour.check_colorspace(spaces[blender_name])
        assert np.abs(colour.to_network(pixels, space) - colour.to_network(pixels, ours)).max() <= 2e-4
    filmic = colour.to_network(pixels, colour.check_colorspace(spaces["Filmic Log"]))
    assert filmic.shape == pixels.shape and 0 < filmic.mean() < 1


@pytest.mark.parametrize("version", ["4.5.15", "5.0.1"])
def test_a_clip_in_acescg_gives_the_mattes_of_the_srgb_png(version, blender, mirror, make_worker):
    """In numbers: one picture as an sRGB PNG, an ACEScg EXR (its clip set to ACEScg), a linear
    EXR and a float TIFF (Blender's defaults: Linear Rec.709, sRGB), each loaded as a Movie Clip in real Blender.
    The add-on names each float clip's colour space in Blender's config (the PNG's sRGB is mattekit's own reading);
    with it the worker gives the networks what Blender itself shows of the frame (its scene-linear pixels,
    sRGB-encoded) and the PNG's picture, within 1/255, and the roto jobs the add-on builds give the PNG's mattes
    within 1/255 through a real worker (the ACEScg clip at every pixel, the others at all but 0.1% of them)."""
    rec = blender(version)
    cases, out = rec["colour_cases"], rec["folder"] / "colour-out"
    result = blender_said(rec, "plate_colour")
    assert {name: case["colorspace"] for name, case in result.items()} == {
        "png": "sRGB",
        "acescg": "ACEScg",
        "linear": "Linear Rec.709",
        "float-tiff": "sRGB",
    }
    config = result["acescg"]["options"]["colorspace"].partition("@")[2]
    assert Path(config).is_file() and f"bpy/{version[:3]}/datafiles" in config, config  # Blender's own config
    sent = {name: case["options"].get("colorspace") for name, case in result.items()}
    assert sent == {
        "png": None,
        "acescg": "ACEScg@" + config,
        "linear": "Linear Rec.709@" + config,
        "float-tiff": "sRGB@" + config,
    }  # an integer file in sRGB: mattekit's own reading, unconverted
    network, mattes = {}, {}
    _, worker = make_worker(allow_dirs=[str(rec["folder"])])
    for name, case in result.items():
        options = case["options"]
        assert options["frames"] == "1-2", options
        network[name] = read_plate(cases[name][0], sent[name]).pixels
        shown = np.load(out / f"{name}.npy")  # Blender's own reading: float scene-linear, bytes as stored
        shown = np.clip(linear_to_srgb(shown), 0, 1) if case["float"] else shown
        assert np.abs(network[name] - shown).max() <= 1 / 255, name
        worker.run("roto", [], options)
        mattes[name] = [
            read_image(path).pixels[..., 0] for path in sorted(Path(options["output"]).parent.glob("*.png"))
        ]
        assert len(mattes[name]) == 2, name
    print(
        f"Blender {version}: network input vs the PNG's, max |d| "
        + ", ".join(f"{n} {np.abs(network[n] - network['png']).max():.2e}" for n in network)
        + "; mattes vs the PNG's, max |d| "
        + ", ".join(
            f"{n} {max(np.abs(a - b).max() for a, b in zip(mattes[n], mattes['png'])):.2e} "
            f"({sum(np.count_nonzero(np.abs(a - b) > 1 / 255) for a, b in zip(mattes[n], mattes['png']))} "
            "pixels over 1/255)"
            for n in mattes
        )
    )
    for name in network:
        assert np.abs(network[name] - network["png"]).max() <= 1 / 255, name
        off = [np.count_nonzero(np.abs(a - b) > 1 / 255) / a.size for a, b in zip(mattes[name], mattes["png"])]
        # Blender 4.5's matrices to ACES2065-1 differ from the ACES config's by ~1e-4, which moves a pixel whose
        # network value is 0.5 to the other side (the refined matte keeps each pixel on the network's side of 0.5)
        assert max(off) <= (0 if name == "acescg" else 1e-3), (name, off)
    alone = read_plate(cases["float-tiff"][0]).pixels  # mattekit's own default for a float TIFF: linear
    assert np.abs(alone - network["png"]).max() > 0.1  # so the colour space Blender reads it in had to be sent


def steps_said(output: str, dry_run: bool) -> list[str]:
    """The installer's step lines ("install_blender: [would ]STEP"; its sentences, which end in a full stop,
    left out), without the prefix."""
    prefix = "install_blender: would " if dry_run else "install_blender: "
    return [line[len(prefix) :] for line in output.splitlines() if line.startswith(prefix) and not line.endswith(".")]


def changed_paths(before: dict, after: dict, home: Path) -> set[str]:
    """The paths (absolute) that ``after`` adds, drops or changes relative to ``before`` (snapshots of home)."""
    return {str(home / p) for p in set(before) | set(after) if before.get(p) != after.get(p)}


@pytest.mark.parametrize("version", ["4.5.15", "5.0.1"])
def test_dry_runs_list_what_the_runs_do(version, blender):
    """Install and uninstall, each first as a dry run: the real run says the very steps the dry run listed (the
    same lines, the same count) and changes HOME exactly as they say (that the dry runs change nothing, and the
    uninstall leaves HOME as it was: test_install_and_uninstall_leave_home_as_it_was)."""
    rec = blender(version)
    home, module, traces = rec["home"], install_module("install_blender"), install_module("blender_traces")
    planned, done = rec["planned"], rec["done"]
    steps = steps_said(planned, True)
    assert steps and steps == steps_said(done, False), (planned, done)
    assert "1 change(s) planned" in planned and "1 change(s);" in done
    user = home / ".config" / "blender" / version[:3]
    folder, userpref = user / "extensions" / "user_default" / "mattekit_ai_matte", user / "config" / "userpref.blend"
    assert steps == [
        f"install mattekit_ai_matte (12 files and mattekit_install.json) into {folder}, enable it "
        f"and save the preferences ({userpref})"
    ]
    # what the install changed: the add-on's folder, the preferences, the folders holding them, Blender's own caches
    changed = changed_paths(rec["before"], rec["installed"], home)
    said = {str(folder), str(userpref)}
    assert said <= changed
    assert {
        p
        for p in changed
        if not any(module.within(p, s) for s in said)
        and not traces.is_blender_cache(p, str(user))
        and Path(p).name not in traces.CACHE_FOLDERS
    } == set(), "the install changed what it did not say"

    planned, done = rec["planned_uninstall"], rec["uninstalled"]
    steps = steps_said(planned, True)
    assert steps == steps_said(done, False), (planned, done)
    count = len([s for s in steps if not s.startswith("keep ")])
    assert f"{count} change(s) planned." in planned and f"add-on removed ({count} change(s))." in done
    assert steps[0].startswith(f"disable mattekit_ai_matte and remove {folder} through Blender")
    listed = {
        s.split(" ", 2)[2] if s.startswith("remove folder ") else s.split(" ", 1)[1]
        for s in steps[1:]
        if s.startswith("remove ")
    }
    removed = changed_paths(rec["used"], rec["after_uninstall"], home)  # from HOME as the Blender run left it
    # a folder the uninstall says it keeps (~/.cache, once it holds what ONNX Runtime made in the worker the Blender
    # run started) is still there: only home_state leaves it out of the snapshot, holding nothing else now
    kept = {s.split(" ", 2)[2].split(" (", 1)[0] for s in steps if s.startswith("keep folder ")}
    assert all(Path(p).is_dir() for p in removed & kept), removed & kept
    assert removed - kept == listed | {p for p in removed if (p + os.sep).startswith(str(folder) + os.sep)}


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
