"""Bad and hostile plates keep roto's promises: a missing frame, a frame of another size, a DPX
or EXR whose header is wrong, a frame cut short. Each is one sentence (the API's InputError, the CLI's stderr with
exit 2, the worker's error), nothing is written half, and the job resumes: once the plate is mended a re-run
computes only the frames not yet done and leaves the written ones byte for byte. The plates are real frames written
by OpenImageIO, then damaged as a disk, a copy or another program damages them."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from mattekit import roto
from mattekit.errors import InputError
from mattekit.io import read_image
from mattekit.io.sequences import MissingFramesError, open_plate
from plates import MODEL
from roto_runs import files_of, spec
from studio_plates import oiio_write

SIZE = (214, 120)  # width, height of the plate frames
DPX_BITS = {"oiio_BitsPerSample": 10}


def oiio_plate(shared: Path, folder: Path, suffix: str, count: int = 6) -> str:
    """Real DAVIS frames, shrunk, written by OpenImageIO as ``folder/plate.1001<suffix>`` on: EXR half scene-linear,
    DPX 10-bit sRGB-encoded."""
    for i, path in enumerate(sorted((shared / "data" / "davis" / "im" / "dog").iterdir())[:count]):
        write_frame(
            folder / f"plate.{1001 + i:04d}{suffix}",
            cv2.resize(read_image(path).pixels, SIZE, interpolation=cv2.INTER_AREA),
        )
    return str(folder / f"plate.####{suffix}")


def write_frame(path: Path, srgb: np.ndarray) -> None:
    """One plate frame from sRGB pixels (H x W x 3 in [0, 1]): EXR as linear half, DPX as 10-bit sRGB."""
    if path.suffix == ".exr":
        linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4).astype(np.float32)
        oiio_write(path, [(linear, ["R", "G", "B"])], "half")
    else:
        oiio_write(path, [(srgb.astype(np.float32), ["R", "G", "B"])], "uint16", **DPX_BITS)


def dpx_with(path: Path, offset: int, fmt: str, *values) -> None:
    """Overwrite header field(s) of DPX ``path`` (little-endian, as OpenImageIO writes it) at byte ``offset``."""
    data = bytearray(path.read_bytes())
    data[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, *values)
    path.write_bytes(bytes(data))


def cut_short(path: Path) -> bytes:
    """Keep the first half of ``path`` (its header and some pixels); return its whole bytes, to mend it."""
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    return whole


# ------------------------------------------------- refused before any model loads, nothing made


def damage_header(folder: Path, case: str) -> str:
    """Damage frame 1004 of the plate in ``folder`` as ``case`` says; the sentence expected (a regex)."""
    exr, dpx = folder / "plate.1004.exr", folder / "plate.1004.dpx"
    if case == "exr-other-size":
        oiio_write(exr, [(np.zeros((120, 200, 3), np.float32), ["R", "G", "B"])], "half")
        return (
            r"^Frame 1004 of .*plate\.####\.exr is 200x120 but frame 1001 is 214x120: "
            r"every frame of a shot must have one size\.$"
        )
    if case == "exr-header-cut-short":
        exr.write_bytes(exr.read_bytes()[:200])
        return (
            r"^Cannot read .*plate\.1004\.exr: it is damaged or truncated \(end of file attempting to read header\)\.$"
        )
    if case == "dpx-wrong-magic":
        dpx_with(dpx, 0, "4s", b"XXXX")
        return r"^.*plate\.1004\.dpx is not an image mattekit can read \(PNG, JPEG, TIFF, WebP, HEIC/HEIF, AVIF, EXR, DPX\)\.$"
    if case == "dpx-zero-size":  # pixels per line, lines per element
        dpx_with(dpx, 772, "<II", 0, 0)
        return (
            r"^Cannot read .*plate\.1004\.dpx: it is damaged or truncated \(dpx image resolution must be at least "
            r"1x1, but the file specified 0x0x1, 3 chans\)\.$"
        )
    if case == "dpx-huge-size":
        dpx_with(dpx, 772, "<II", 60000, 40000)
        return r"^Cannot read .*plate\.1004\.dpx: it is damaged or truncated \(dpx header claims a \d+ MB image from a \d+ byte file\)\.$"
    if case == "dpx-other-size":  # the original size (what the frame is) of another shot
        dpx_with(dpx, 1424, "<II", 320, 180)
        return (
            r"^Frame 1004 of .*plate\.####\.dpx is 320x180 but frame 1001 is 214x120: "
            r"every frame of a shot must have one size\.$"
        )
    raise AssertionError(case)


HEADER_CASES = [
    "exr-other-size",
    "exr-header-cut-short",
    "dpx-wrong-magic",
    "dpx-zero-size",
    "dpx-huge-size",
    "dpx-other-size",
]


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
@pytest.mark.parametrize("case", HEADER_CASES)
def test_a_bad_header_or_a_size_change_is_one_sentence_before_anything(shared, mirror, tmp_path, case):
    """Every selected frame's header is read when the job is made (no pixels, no model): a frame that is no image
    or of another size than the shot's first is one sentence naming it, and no output folder is made."""
    plate = oiio_plate(shared, tmp_path / "plate", ".exr" if case.startswith("exr") else ".dpx", count=5)
    expected = damage_header(tmp_path / "plate", case)
    out = tmp_path / "out"
    with pytest.raises(InputError, match=expected):
        roto.RotoJob(spec(plate, str(out / "m.####.png")))
    with pytest.raises(
        InputError, match=expected
    ):  # the temporal windows of 1002 and 1003 (radius 1, 2 passes) reach it
        roto.RotoJob(spec(plate, str(out / "m.####.png"), frames="1001-1003"))
    assert not out.exists()
    job = roto.RotoJob(spec(plate, str(out / "m.####.png"), frames="1001-1003", temporal=False))  # none reaches it
    assert job.run().computed == [1001, 1002, 1003]


def test_a_layered_exr_plate_passes_the_header_check(tmp_path):
    """The header check reads a plate as roto reads its pixels: a layered EXR's colour layer (``beauty.R``...)."""
    for frame in (1, 2):
        oiio_write(
            tmp_path / f"f.{frame:04d}.exr",
            [(np.full((16, 32, 4), 0.5, np.float32), ["beauty.R", "beauty.G", "beauty.B", "beauty.A"])],
            "half",
        )
    plate = open_plate(str(tmp_path / "f.####.exr"))
    plate.check_frames([1, 2])
    assert plate.read(2).pixels.shape == (16, 32, 4)


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_a_missing_frame_is_refused_and_the_others_run_with_skip_missing(shared, mirror, tmp_path):
    """A frame missing inside the shot is refused when the job is made; --skip-missing computes the others; once
    the frame is there, a re-run computes it alone and leaves the others' files as they were."""
    plate = oiio_plate(shared, tmp_path / "plate", ".exr", count=5)
    gone = tmp_path / "plate" / "plate.1003.exr"
    kept = gone.read_bytes()
    gone.unlink()
    out = tmp_path / "out"
    with pytest.raises(
        MissingFramesError,
        match=r"^1 frame\(s\) of .*plate\.####\.exr are missing: 1003 "
        r"\(use --skip-missing to process the others\)\.$",
    ):
        roto.RotoJob(spec(plate, str(out / "m.####.png")))
    assert not out.exists()
    summary = roto.RotoJob(spec(plate, str(out / "m.####.png"), temporal=False, skip_missing=True)).run()
    assert summary.computed == [1001, 1002, 1004, 1005]
    before = files_of(out)
    gone.write_bytes(kept)
    summary = roto.RotoJob(spec(plate, str(out / "m.####.png"), temporal=False)).run()
    assert summary.computed == [1003] and summary.skipped == [1001, 1002, 1004, 1005]
    after = files_of(out)
    assert {name: after[name] for name in before if name.endswith(".png")} == {
        name: data for name, data in before.items() if name.endswith(".png")
    }


# ------------------------------------------------- found mid-run: the frames before it stay


@pytest.mark.parametrize(
    "suffix, radius, written",
    [
        pytest.param(".exr", 0, 3, id="exr"),
        pytest.param(".dpx", 0, 3, id="dpx", marks=pytest.mark.slow),
        pytest.param(".png", 0, 3, id="png", marks=pytest.mark.slow),
        pytest.param(".exr", 1, 1, id="exr-temporal", marks=pytest.mark.slow),
    ],
)  # (each 1-2 s: three in --full only)
def test_a_frame_cut_short_stops_the_run_after_the_frames_before_it(shared, mirror, tmp_path, suffix, radius, written):
    """A frame whose header reads but whose pixels are cut short stops the job when it is reached, in one sentence
    naming it; the frames before it are written whole and journaled (with the temporal filter, those whose window
    reaches the bad frame wait for it), and once it is mended a re-run computes only the rest, the others untouched."""
    if suffix == ".png":
        from plates import make_plate

        plate = make_plate(shared, tmp_path / "plate", 6, size=SIZE)
    else:
        plate = oiio_plate(shared, tmp_path / "plate", suffix)
    damaged = tmp_path / "plate" / f"plate.1004{suffix}"
    whole = cut_short(damaged)
    out = tmp_path / "out"
    options = dict(temporal=radius > 0, radius=radius, workers=2)
    with pytest.raises(InputError, match=rf"^Cannot read .*plate\.1004\{suffix}: .*\.$") as failure:
        roto.RotoJob(spec(plate, str(out / "m.####.png"), **options)).run()
    assert "\n" not in str(failure.value)
    done = [1001 + i for i in range(written)]  # radius 1, 2 passes: frames 1002 and 1003 wait for 1004
    before = files_of(out)
    assert sorted(p.name for p in out.iterdir()) == [".m.mattekit-journal"] + [f"m.{f}.png" for f in done] + [
        "m.mattekit.json"
    ]  # the journal's folder, the mattes, the manifest: no temporary, nothing half
    assert roto.RotoJob(spec(plate, str(out / "m.####.png"), **options)).finished() == set(done)
    damaged.write_bytes(whole)
    summary = roto.RotoJob(spec(plate, str(out / "m.####.png"), **options)).run()
    assert summary.skipped == done and summary.computed == list(range(1001 + written, 1007))
    after = files_of(out)
    assert all(after[name] == data for name, data in before.items() if name.endswith(".png"))


@pytest.mark.slow
def test_the_cli_says_one_sentence_and_exits_2(shared, tmp_path):
    """``mattekit roto`` on a plate with a frame of another size, then with a frame cut short: stderr ends with one
    line ``mattekit: error: ...``, no traceback, exit 2; the frames before the cut-short one are written."""
    plate = oiio_plate(shared, tmp_path / "plate", ".exr", count=5)
    odd = tmp_path / "plate" / "plate.1005.exr"
    right = odd.read_bytes()
    damage_header(tmp_path / "plate", "exr-other-size")  # frame 1004
    args = [
        sys.executable,
        "-m",
        "mattekit",
        "roto",
        plate,
        "-o",
        str(tmp_path / "out" / "m.####.png"),
        "--model",
        MODEL,
        "--device",
        "cpu",
        "--threads",
        "1",
        "--no-temporal",
    ]
    env = dict(__import__("os").environ, MATTEKIT_MIRROR=str(shared / "weights"), MATTEKIT_OFFLINE="1")
    first = subprocess.run(args, capture_output=True, text=True, timeout=180, env=env)
    assert first.returncode == 2 and "Traceback" not in first.stderr, first.stderr
    assert first.stderr.strip().splitlines()[-1] == (
        f"mattekit: error: Frame 1004 of {plate} is 200x120 but frame 1001 "
        "is 214x120: every frame of a shot must have one size."
    )
    assert not (tmp_path / "out").exists()
    (tmp_path / "plate" / "plate.1004.exr").write_bytes(right)
    cut_short(odd)
    second = subprocess.run(args, capture_output=True, text=True, timeout=180, env=env)
    assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr
    assert second.stderr.strip().splitlines()[-1] == (
        f"mattekit: error: Cannot read {odd}: it is damaged or truncated "
        "(some scanline chunks were missing or corrupted)."
    )
    assert sorted(p.name for p in (tmp_path / "out").glob("m.*.png")) == [f"m.{f}.png" for f in range(1001, 1005)]


def test_the_worker_says_what_the_job_says(shared, mirror, make_worker, tmp_path):
    """Through ``mattekit serve``: a plate refused by its headers is refused before the job is queued (400), a frame
    cut short fails the job; each with the very sentence the job itself gives."""
    from mattekit.wire.client import WorkerError

    plate = oiio_plate(shared, tmp_path / "plate", ".exr", count=4)
    right = (tmp_path / "plate" / "plate.1004.exr").read_bytes()
    damage_header(tmp_path / "plate", "exr-other-size")
    options = {
        "plate": plate,
        "output": str(tmp_path / "out" / "m.####.png"),
        "model": MODEL,
        "device": "cpu",
        "temporal": False,
    }
    _, worker = make_worker(allow_dirs=[str(tmp_path)])
    with pytest.raises(InputError) as job_error:
        roto.RotoJob(spec(plate, options["output"], temporal=False))
    with pytest.raises(WorkerError) as err:
        worker.submit("roto", [], options)
    assert (err.value.status, err.value.code, str(err.value)) == (400, "bad_option", str(job_error.value))
    damaged = tmp_path / "plate" / "plate.1004.exr"
    damaged.write_bytes(right)
    cut_short(damaged)
    with pytest.raises(InputError) as job_error:
        roto.RotoJob(spec(plate, str(tmp_path / "api" / "m.####.png"), temporal=False)).run()
    with pytest.raises(WorkerError) as err:
        worker.run("roto", [], options, progress=lambda fraction, message: None)
    assert str(err.value) == str(job_error.value)
    assert sorted(p.name for p in (tmp_path / "out").glob("m.*.png")) == ["m.1001.png", "m.1002.png", "m.1003.png"]
