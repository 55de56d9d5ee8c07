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
The portable zip and the Shadow output: test_blender_portable.py; the runs both use: tests/helpers/blender_e2e.py.
The bpy venvs are built on first use into $MATTEKIT_CACHE by tests/hosts/blender/build_venv.py and reused; a machine
without a Python for bpy fails these tests with the reason (no skip: the host would go unchecked).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from mattekit.io import colour
from mattekit.io import linear_to_srgb, read_image
from mattekit.io.read import read_plate
from checkout import install_module

from blender_e2e import EXIT_WAIT, FRAMES, LTS, MOVIE_MIN_IOU, PEOPLE_FRAMES, PEOPLE_MIN_IOU, PEOPLE_SEQUENCE, SEQUENCE
from blender_e2e import SEQUENCE_MIN_IOU, blender_said, check_case, launch

pytestmark = [pytest.mark.blender, pytest.mark.slow]


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
        f"install mattekit_ai_matte (13 files and mattekit_install.json) into {folder}, enable it "
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
