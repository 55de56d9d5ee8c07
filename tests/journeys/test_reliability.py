"""Bad, big and hostile input: a corpus generated here (never committed) of malformed,
tiny, huge-declared and exotic images, run through every CLI task and every worker operation in
subprocesses under an address-space cap (RLIMIT_AS, as ``ulimit -v``), asserting for each run:
success or one ``mattekit: error:`` line, no traceback, no other noise, no hang, inputs unchanged.

The fast part (default run) is two folder runs over a handful of files; the full corpus is ``slow``: one run
per task over all of it (each file's outcome read from that run's lines), each bad file alone once, and it prints
per task the files tried, succeeded, clean errors, tracebacks, hangs and the run's peak RSS.
"""

from __future__ import annotations

import json
import os
import re
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import OpenEXR
import pytest
from PIL import Image

from mattekit import io
from mattekit.io.outputs import IMAGE_SUFFIXES
from mattekit.fsutil import sha256_file

CAP = 6 << 30  # bytes of address space every subprocess may map
TIMEOUT = 240  # seconds one run may take before it counts as a hang
ANIMEVIDEO = "realesr-animevideov3.pth"
TASK_ARGS = {  # every CLI task with an offline model (depth has no weights in the shared folder)
    "remove": ["--model", "csnet-sod"],
    "matte": ["--model", "csnet-sod"],
    "upscale": ["--model", "realesr-animevideov3", "--weights", "{weights}/" + ANIMEVIDEO],
    "bokeh": ["--mask-only", "--segment-model", "csnet-sod"],
    "enhance": [],
    "mask-preview": ["--model", "csnet-sod"],
}


# ----------------------------------------------------------------------------------- the corpus


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _declared_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height grey pixels (its data is one empty row)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _png_chunk(b"IEND", b"")
    )


def _declared_tiff(width: int, height: int) -> bytes:
    """A TIFF directory declaring width x height 8-bit grey pixels in a 1-byte strip."""
    tags = [
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 4, 1, 8),
        (277, 3, 1, 1),
        (278, 4, 1, height),
        (279, 4, 1, 1),
    ]
    out = b"II*\x00" + struct.pack("<I", 9) + b"\0" + struct.pack("<H", len(tags))
    for tag, kind, count, value in tags:
        out += struct.pack("<HHI", tag, kind, count) + (
            struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        )
    return out + struct.pack("<I", 0)


def _exr(path: Path, planes: dict, **header) -> None:
    OpenEXR.File(
        {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage, **header},
        {k: np.ascontiguousarray(v, np.float32) for k, v in planes.items()},
    ).write(str(path))


def make_corpus(folder: Path, only: set[str] | None = None) -> dict[str, bool]:
    """Write the corpus into ``folder``: {file name: whether it is a valid image mattekit must process}."""
    rng = np.random.default_rng(14)
    photo = rng.random((48, 64, 3)).astype(np.float32)
    corpus: dict[str, bool] = {}

    def add(name: str, valid: bool, write) -> None:
        if only is None or name in only:
            write(folder / name)
            corpus[name] = valid

    add("photo.png", True, lambda p: io.write_image(p, photo))
    add("photo.jpg", True, lambda p: io.write_image(p, photo))
    add("pixel_1x1.png", True, lambda p: io.write_image(p, photo[:1, :1]))
    add("pixels_2x2.png", True, lambda p: io.write_image(p, photo[:2, :2]))
    add("strip_65535x1.png", True, lambda p: Image.new("L", (65535, 1), 90).save(p))  # the 271-byte strip
    add("strip_1x65535.png", True, lambda p: Image.new("L", (1, 65535), 90).save(p))
    add("strip_2x3000.png", True, lambda p: io.write_image(p, rng.random((2, 3000, 3)).astype(np.float32)))
    add("strip_3000x2.png", True, lambda p: io.write_image(p, rng.random((3000, 2, 3)).astype(np.float32)))
    add("cmyk.jpg", True, lambda p: Image.fromarray((photo * 255).astype(np.uint8)).convert("CMYK").save(p))
    add(
        "palette.png",
        True,
        lambda p: Image.fromarray((photo * 255).astype(np.uint8)).quantize(16).save(p, transparency=0),
    )
    add("deep16.png", True, lambda p: io.write_image(p, photo, bit_depth=16))
    add("grey16.tif", True, lambda p: Image.fromarray((photo[..., 0] * 65535).astype(np.uint16)).save(p))
    add("float_rgb.tif", True, lambda p: __import__("cv2").imwrite(str(p), photo))
    add(
        "nan.exr",
        True,
        lambda p: _exr(
            p,
            {
                "R": np.where(photo[..., 0] > 0.5, np.nan, 1e6),
                "G": photo[..., 1] * -5,
                "B": np.full(photo.shape[:2], np.inf),
            },
        ),
    )
    frames = [Image.fromarray((photo * 255 * k / 3).astype(np.uint8)) for k in (1, 2, 3)]
    add("animated.gif", True, lambda p: frames[0].save(p, save_all=True, append_images=frames[1:], duration=50))
    add("animated.webp", True, lambda p: frames[0].save(p, save_all=True, append_images=frames[1:], duration=50))
    add("animated.png", True, lambda p: frames[0].save(p, save_all=True, append_images=frames[1:], duration=50))
    add("multipage.tif", True, lambda p: frames[0].save(p, save_all=True, append_images=frames[1:]))
    add("png_named_as.jpg", True, lambda p: Image.fromarray((photo * 255).astype(np.uint8)).save(p, format="PNG"))
    exif = Image.Exif()
    exif[0x0112] = 6
    add("rotated_exif.jpg", True, lambda p: Image.fromarray((photo * 255).astype(np.uint8)).save(p, exif=exif))
    add("no_read_permission.png", os.geteuid() == 0, lambda p: (io.write_image(p, photo), p.chmod(0)))
    add("empty.png", False, lambda p: p.write_bytes(b""))
    add("truncated.png", False, lambda p: (io.write_image(p, photo), p.write_bytes(p.read_bytes()[:300])))
    add("truncated.jpg", False, lambda p: (io.write_image(p, photo), p.write_bytes(p.read_bytes()[:400])))
    add("truncated.exr", False, lambda p: (_exr(p, {"R": photo[..., 0]}), p.write_bytes(p.read_bytes()[:200])))
    add("declared_65535x65535.png", False, lambda p: p.write_bytes(_declared_png(65535, 65535)))
    add("declared_200000x200000.tif", False, lambda p: p.write_bytes(_declared_tiff(200000, 200000)))
    add(
        "display_60000x60000.exr",
        False,
        lambda p: _exr(p, {"R": photo[:4, :4, 0]}, dataWindow=((0, 0), (3, 3)), displayWindow=((0, 0), (59999, 59999))),
    )
    add("random_bytes.png", False, lambda p: p.write_bytes(rng.bytes(5000)))
    add("text.jpg", False, lambda p: p.write_text("not an image\n"))
    add("html.webp", False, lambda p: p.write_text("<html><body>hello</body></html>\n"))
    add("folder.png", False, lambda p: p.mkdir())
    return corpus


def _hashes(folder: Path) -> dict[str, str]:
    """sha256 of every input (as root, unreadable ones included); folders by name only."""
    out = {}
    for p in sorted(folder.iterdir()):
        if p.is_dir():
            out[p.name] = "folder"
        else:
            mode = p.stat().st_mode
            p.chmod(mode | 0o400)
            out[p.name] = f"{sha256_file(p)} {oct(mode)}"
            p.chmod(mode)
    return out


def _listed(path: Path) -> bool:
    """Whether a folder run takes ``path`` (image files by extension; GIF is not among them)."""
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


# ----------------------------------------------------------------------------------- capped runs


@dataclass
class Run:
    returncode: int
    stderr: str
    seconds: float
    peak_kb: int  # the child's maximum RSS
    hung: bool


def _cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


def run_capped(argv: list[str], env: dict, timeout: float = TIMEOUT) -> Run:
    """Run ``argv`` under the address-space cap; its own peak RSS comes from wait4."""
    with tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env, preexec_fn=_cap)
        hung = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                hung = True
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    return Run(proc.returncode, text, time.monotonic() - start, usage.ru_maxrss, hung)


def _env(shared: Path, home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATTEKIT_")}
    repo_core = str(Path(__file__).resolve().parents[2] / "core")
    env.update(
        MATTEKIT_MIRROR=str(shared / "weights"),
        MATTEKIT_OFFLINE="1",
        MATTEKIT_HOME=str(home),
        OMP_NUM_THREADS="1",
        PYTHONPATH=repo_core + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return env


def _mattekit(task: str, shared: Path) -> list[str]:
    return [sys.executable, "-m", "mattekit", task] + [a.format(weights=shared / "weights") for a in TASK_ARGS[task]]


def lines(stderr: str) -> list[str]:
    """stderr's lines, progress-bar redraws (carriage returns) split off."""
    return [line for line in re.split(r"[\r\n]+", stderr) if line.strip()]


def noise(stderr: str) -> list[str]:
    """Lines that are not mattekit's own (tracebacks, library messages, warnings with source paths)."""
    return [
        line for line in lines(stderr) if not line.startswith("mattekit: ") and not re.match(r"^\s*\d+%\|", line)
    ]  # the progress bar of folder runs


def check_single(run: Run, out: Path, valid: bool, what: str) -> str:
    """'ok' or 'error' for one file's run; fails the test on a hang, traceback, noise or a wrong outcome."""
    assert not run.hung, f"{what}: no answer after {TIMEOUT} s"
    assert "Traceback" not in run.stderr and not noise(run.stderr), f"{what}:\n{run.stderr}"
    errors = [line for line in lines(run.stderr) if line.startswith("mattekit: error:")]
    if run.returncode == 0:
        assert not errors and out.is_file(), f"{what}: exit 0 but {run.stderr!r}"
        assert valid, f"{what}: an invalid input was accepted"
        return "ok"
    assert run.returncode == 2 and len(errors) == 1 and errors[0].endswith("."), (
        f"{what}: exit {run.returncode}:\n{run.stderr}"
    )
    assert not valid, f"{what}: a valid image failed: {errors[0]}"
    assert not out.exists()
    return "error"


# ----------------------------------------------------------------------------------- fast part

FAST = {
    "photo.png",
    "strip_2x3000.png",
    "animated.webp",
    "empty.png",
    "truncated.png",
    "declared_65535x65535.png",
    "display_60000x60000.exr",
    "folder.png",
}


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
@pytest.mark.needs_data
@pytest.mark.parametrize("task", ["remove", "enhance"])
def test_a_folder_of_hostile_files_under_the_cap(task, tmp_path, shared):
    corpus_dir = tmp_path / "in"
    corpus_dir.mkdir()
    corpus = make_corpus(corpus_dir, FAST)
    before = _hashes(corpus_dir)
    out = tmp_path / "out"
    home = Path(os.environ["MATTEKIT_HOME"])  # conftest's, whose ONNX exports the session's tests share
    run = run_capped(_mattekit(task, shared) + [str(corpus_dir), "-o", str(out)], _env(shared, home))
    assert not run.hung and "Traceback" not in run.stderr and not noise(run.stderr), run.stderr
    assert run.returncode == 1, run.stderr
    valid = sorted(Path(n).stem for n, ok in corpus.items() if ok)
    assert sorted(p.stem for p in out.iterdir()) == valid
    files = [n for n, ok in corpus.items() if not ok and _listed(corpus_dir / n)]
    for name in files:
        assert any(line.startswith("mattekit: error:") and name in line for line in lines(run.stderr)), name
    assert f"{len(files)} of {len(files) + len(valid)} images failed" in run.stderr
    assert "only the first is used" in run.stderr  # the animated WebP
    assert _hashes(corpus_dir) == before
    assert run.peak_kb * 1024 < CAP


# ----------------------------------------------------------------------------------- the full corpus


@pytest.fixture
def full_corpus(tmp_path):
    """(folder, {name: valid}, hashes before any run) of the whole corpus."""
    folder = tmp_path / "in"
    folder.mkdir()
    corpus = make_corpus(folder)
    return folder, corpus, _hashes(folder)


RUN_TIMEOUT = 1200  # seconds one run over the whole corpus may take before it counts as a hang


def output_stems(names: list[str]) -> dict[str, str]:
    """{input name: the stem of its output in a ``-o FOLDER`` run}: inputs of one folder sharing a stem get their
    extension in it (``photo_png``), as :func:`mattekit.io.naming.plan_outputs` names them."""
    stems = [Path(n).stem.lower() for n in names]
    return {
        n: f"{Path(n).stem}_{Path(n).suffix[1:].lower()}" if stems.count(Path(n).stem.lower()) > 1 else Path(n).stem
        for n in names
    }


def check_each_file(run: Run, out: Path, corpus: dict[str, bool], corpus_dir: Path, what: str) -> dict[str, str]:
    """{name: 'ok' or 'error'} for each input of one run over several files (``corpus``: {name: valid}); fails the
    test unless each valid file has its one output and each bad one its one ``mattekit: error: PATH: sentence.``
    line (a clean refusal: no internal error, no out of memory) and no output, the run's summary names exactly the bad
    ones and the exit status is 1; no hang, traceback or other noise."""
    assert not run.hung, f"{what}: no answer after {RUN_TIMEOUT} s:\n{run.stderr[-3000:]}"
    assert "Traceback" not in run.stderr and not noise(run.stderr), f"{what}:\n{run.stderr}"
    written = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    said = sorted(Path(line.rpartition(" wrote ")[2]).name for line in lines(run.stderr) if " wrote " in line)
    assert written == said and not any(n.endswith(".tmp") for n in written), (what, written, said)
    stems = output_stems(list(corpus))
    outcome = {}
    for name, valid in corpus.items():
        path = str(corpus_dir / name)
        errors = [line for line in lines(run.stderr) if line.startswith(f"mattekit: error: {path}: ")]
        outputs = [n for n in written if Path(n).stem == stems[name]]
        if errors:
            sentence = errors[0][len(f"mattekit: error: {path}: ") :]
            assert len(errors) == 1 and sentence.endswith("."), f"{what} {name}: {errors}"
            assert not sentence.startswith(("Internal error", "Out of memory")), f"{what} {name}: {sentence}"
            assert not valid, f"{what} {name}: a valid image failed: {sentence}"
            assert not outputs, f"{what} {name}: an output {outputs} beside its error"
            outcome[name] = "error"
        else:
            assert valid, f"{what} {name}: an invalid input was accepted (no error line):\n{run.stderr}"
            assert len(outputs) == 1, f"{what} {name}: outputs {outputs}"
            outcome[name] = "ok"
    bad = [name for name, result in outcome.items() if result == "error"]
    summary = [line for line in lines(run.stderr) if line.startswith("mattekit: ") and " images failed: " in line]
    head = f"mattekit: {len(bad)} of {len(corpus)} images failed: "
    assert len(summary) == 1 and summary[0].startswith(head), (what, head, summary)
    assert sorted(summary[0][len(head) :].split(", ")) == sorted(str(corpus_dir / n) for n in bad), (what, summary)
    assert run.returncode == 1, f"{what}: exit {run.returncode}"
    return outcome


@pytest.mark.slow
@pytest.mark.needs_data
@pytest.mark.parametrize("task", list(TASK_ARGS))
def test_every_corpus_file_through_every_task(task, tmp_path, shared, full_corpus):
    """One capped run of the task over the whole corpus (its folder, whose images a folder run takes, and the files
    it does not list named one by one): each file's own outcome (its output, or one clean sentence naming it), the
    summary, exit 1, inputs unchanged. The folder entry (``folder.png``) and the single-file refusal path: below."""
    corpus_dir, corpus, before = full_corpus
    files = {name: valid for name, valid in corpus.items() if (corpus_dir / name).is_file()}
    unlisted = [name for name in files if not _listed(corpus_dir / name)]
    assert unlisted == ["animated.gif"], unlisted  # a folder run leaves GIF out: named itself here
    out = tmp_path / "out"
    run = run_capped(
        _mattekit(task, shared) + [str(corpus_dir)] + [str(corpus_dir / n) for n in unlisted] + ["-o", str(out)],
        _env(shared, tmp_path / "home"),
        timeout=RUN_TIMEOUT,
    )
    outcome = check_each_file(run, out, files, corpus_dir, task)
    assert _hashes(corpus_dir) == before
    assert run.peak_kb * 1024 < CAP
    print(
        f"\ncorpus through {task} in one run under RLIMIT_AS = {CAP >> 30} GiB: {len(outcome)} files tried, "
        f"{list(outcome.values()).count('ok')} ok, {list(outcome.values()).count('error')} clean errors, "
        f"0 tracebacks, 0 hangs; peak RSS {run.peak_kb / 1024:.0f} MiB, {run.seconds:.0f} s"
    )


@pytest.mark.slow
@pytest.mark.needs_data
def test_each_bad_file_alone_is_one_sentence(tmp_path, shared, full_corpus):
    """A single bad input (each of the corpus's, the folder named like an image too) is refused with one
    ``mattekit: error:`` sentence and exit 2, no output (the single-input path: its header is checked before any
    model loads, a failure is raised as it is). The task is the same for all: this path is the same for every task
    up to reading the image, which each task's run above covers file by file."""
    corpus_dir, corpus, before = full_corpus
    env = _env(shared, tmp_path / "home")
    for i, name in enumerate(n for n, valid in corpus.items() if not valid):
        out = tmp_path / "out" / f"{i}.png"
        run = run_capped(_mattekit("remove", shared) + [str(corpus_dir / name), "-o", str(out)], env)
        assert check_single(run, out, False, f"remove {name}") == "error"
    assert _hashes(corpus_dir) == before


# ----------------------------------------------------------------------------------- the worker

SHAPES = [(1, 1), (2, 2), (1, 4000), (4000, 1), (2, 3000), (48, 64)]


@pytest.mark.slow
@pytest.mark.needs_data
def test_every_worker_operation_on_degenerate_shapes(tmp_path, shared):
    from mattekit.wire import client

    env = _env(shared, tmp_path / "home")
    state = tmp_path / "state" / "worker.json"
    argv = [
        sys.executable,
        "-m",
        "mattekit",
        "serve",
        "--state-file",
        str(state),
        "--allow-dir",
        str(tmp_path),
        "--idle-timeout",
        "600",
    ]
    err = open(tmp_path / "serve.err", "wb")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env, preexec_fn=_cap)
    try:
        deadline = time.time() + 120
        while not state.exists():
            assert proc.poll() is None and time.time() < deadline, (tmp_path / "serve.err").read_text()
            time.sleep(0.2)
        worker = client.WorkerClient(*_address(state))
        counts, reasons = {}, {}
        rng = np.random.default_rng(1)
        for op in worker.schema()["operations"]:
            if op["name"] == "roto":
                continue  # paths, not pixels: its confinement and bad paths are tested in test_server.py
            options = {
                name: "csnet-sod"
                for name, spec in op["options"].items()  # a task or a list of tasks
                if "segment" in ([spec["model"]] if isinstance(spec.get("model"), str) else spec.get("model") or [])
            }
            if op["name"] == "bokeh":
                options["mask_only"] = True
            if op["name"] == "matte":
                options["model"] = "csnet-sod"  # a segmentation model whose mask is matted
            if op["name"] == "upscale":
                options["model"] = "rfdn-x4"  # the worker takes no weights path; the shared animevideov3 is a re-export
            for h, w in SHAPES:
                inputs = {
                    p["name"]: client.Pixels(
                        (rng.random((h, w, max(p["channels"]))) * 255).astype(np.uint8).tobytes(),
                        w,
                        h,
                        max(p["channels"]),
                    )
                    for p in op["inputs"]
                    if not p["optional"]
                }
                try:
                    worker.run(op["name"], inputs, options)
                    outcome = "ok"
                except client.WorkerError as exc:
                    message = str(exc)
                    assert exc.status is not None and 400 <= exc.status < 500, (op["name"], h, w, exc.status, message)
                    assert "\n" not in message and message.endswith("."), message
                    outcome = "error"
                    reasons.setdefault(op["name"], message)
                counts.setdefault(op["name"], {"ok": 0, "error": 0})[outcome] += 1
        assert worker.health()
        failed = {name: reasons[name] for name, c in counts.items() if c["error"] and name != "depth"}
        assert not failed, failed  # depth alone has no offline weights: its 422 says so in one sentence
        worker.shutdown()
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()
    log = (tmp_path / "serve.err").read_text()
    assert "Traceback" not in log, log
    print(
        f"\nworker operations under RLIMIT_AS = {CAP >> 30} GiB on shapes {SHAPES}: "
        + json.dumps(counts)
        + f"; first errors: {json.dumps(reasons)}; children's peak RSS {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MiB"
    )


def _address(state: Path) -> tuple[str, str]:
    data = json.loads(state.read_text())
    return data["url"], data["token"]


@pytest.mark.parametrize(
    "command", [["remove", "IN"], ["upscale", "IN"], ["enhance", "IN"], ["serve"], ["bench", "speed", "--no-rembg"]]
)
@pytest.mark.parametrize("count", ["0", "-1", "100000"])
def test_threads_out_of_range_is_one_sentence_before_anything_runs(command, count, tmp_path, capsys):
    """Every command's --threads has one range (1..1024): 0, -1 and 100000 (which crashed OpenMP) are
    refused in one sentence with status 2, before any model loads or any file is written."""
    from mattekit import cli

    photo = tmp_path / "in.png"
    Image.new("RGB", (8, 8)).save(photo)
    argv = [str(photo) if a == "IN" else a for a in command] + ["--threads", count]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"mattekit: error: --threads must be a whole number from 1 to 1024, not {count}.", err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


BAD_BEFORE_ANY_MODEL = {  # each refused in one sentence before a model loads
    "empty input name": (["remove", ""], "An input name is empty"),
    "one -o file for two inputs": (["remove", "IN", "IN2", "-o", "OUT/one.png"], "names one image file, but 2 inputs"),
    "-o with a non-image extension": (["remove", "IN", "-o", "OUT/out.txt"], "is not an image file name"),
    "upscale --tile 1": (["upscale", "IN", "--tile", "1"], "--tile must be 0 (no tiling) or at least 64, not 1."),
    "upscale --scale with --width": (["upscale", "IN", "--scale", "2", "--width", "100"], "Give --scale or --width"),
    "bokeh --blades 2": (["bokeh", "IN", "--blades", "2"], "--blades must be 0 (round) or from 3 to 16, not 2."),
    "bokeh --strength with --f-number": (
        ["bokeh", "IN", "--strength", "2", "--f-number", "2"],
        "Give --strength or --f-number",
    ),
    "matte --trimap with --mask": (
        ["matte", "IN", "--trimap", "IN2", "--mask", "IN2"],
        "Give a trimap or a mask, not both",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_BEFORE_ANY_MODEL))
def test_bad_arguments_are_refused_before_any_model_loads(case, tmp_path, monkeypatch, capsys):
    """Offline with an empty weights cache and no mirror, loading any model would fail with another message:
    the sentence seen proves the check came first. Exit 2, one line, nothing written."""
    from mattekit import cli

    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    monkeypatch.delenv("MATTEKIT_MIRROR", raising=False)
    monkeypatch.chdir(tmp_path)
    for name in ("in.png", "in2.png"):
        Image.new("RGB", (16, 12), (200, 90, 40)).save(tmp_path / name)
    (tmp_path / "out").mkdir()
    argv, words = BAD_BEFORE_ANY_MODEL[case]
    replace = {"IN": str(tmp_path / "in.png"), "IN2": str(tmp_path / "in2.png")}
    argv = [replace.get(a, a.replace("OUT", str(tmp_path / "out"))) for a in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("mattekit: error: ") and words in err and err.endswith("."), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "in2.png", "out"] and not any(
        (tmp_path / "out").iterdir()
    )


@pytest.mark.parametrize(
    "name, make, words",
    [
        ("notes.txt", lambda p: p.write_text("just notes"), "notes.txt is not an image mattekit can read"),
        ("huge.png", lambda p: Image.new("1", (6000, 5000)).save(p), "declares 6000x5000 pixels"),
    ],
)
def test_a_single_input_that_cannot_be_read_is_refused_before_torch_is_imported(name, make, words, tmp_path):
    """`remove notes.txt` is refused as no image by its header alone, before torch is imported or the default
    model's weights are sought. In a fresh process, offline, no mirror."""
    make(tmp_path / name)
    code = (
        "import sys; from mattekit.cli import main; code = main(['remove', sys.argv[1]]); "
        "print('torch imported' if 'torch' in sys.modules else 'no torch'); sys.exit(code)"
    )
    env = {k: v for k, v in os.environ.items() if k != "MATTEKIT_MIRROR"}
    env.update(MATTEKIT_OFFLINE="1", MATTEKIT_MAX_PIXELS="1000000")
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / name)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2 and done.stdout.strip() == "no torch", (done.stdout, done.stderr)
    err = done.stderr.strip()
    assert "\n" not in err and err.startswith("mattekit: error: ") and words in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


SERVE_REFUSED = {  # `mattekit serve` flags, each one sentence before anything starts
    "--max-request-mb nan": (["--max-request-mb", "nan"], "--max-request-mb must be a number of MB above 0, not nan."),
    "--max-request-mb -1": (["--max-request-mb", "-1"], "--max-request-mb must be a number of MB above 0, not -1."),
    "--max-queued-mb inf": (["--max-queued-mb", "inf"], "--max-queued-mb must be a number of MB above 0, not inf."),
    "--idle-timeout nan": (["--idle-timeout", "nan"], "--idle-timeout must be a number of seconds, 0 or more"),
    "--host 999.1.1.1": (["--host", "999.1.1.1"], "--host '999.1.1.1' is not an address this machine can listen on"),
    "--allow-dir missing": (["--allow-dir", "NOWHERE"], "is not an existing folder."),
    "--log-file under a file": (["--log-file", "FILE/log.txt"], "is not a writable folder."),
    "--state-file under a file": (["--state-file", "FILE/worker.json"], "is not a writable folder."),
    "--state-file a folder": (["--state-file", "DIR"], "is a folder; give a file name."),
}


@pytest.mark.parametrize("case", sorted(SERVE_REFUSED))
def test_serve_refuses_bad_flags_in_one_sentence_before_listening(case, tmp_path, monkeypatch, capsys):
    from mattekit.commands import serve

    monkeypatch.setenv("MATTEKIT_HOME", str(tmp_path / "home"))
    (tmp_path / "file").write_text("a file, not a folder")
    args, words = SERVE_REFUSED[case]
    where = {"NOWHERE": str(tmp_path / "nowhere"), "FILE": str(tmp_path / "file"), "DIR": str(tmp_path)}
    args = [where.get(a, a.replace("FILE", where["FILE"])) for a in args]
    assert serve.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("mattekit: error: ") and words in err and err.endswith("."), err
    assert not (tmp_path / "home").exists()  # nothing started: no state file, no folder made


@pytest.mark.parametrize(
    "argv, dest, value",
    [
        (["remove", "in.png", "--box", "-5,-5,10,10"], "box", "-5,-5,10,10"),
        (["remove", "in.png", "--point", "-1,-1"], "point", ["-1,-1"]),
        (["roto", "p.####.png", "-o", "o", "--frames", "-3--1"], "frames", "-3--1"),
    ],
)
def test_a_value_starting_with_a_minus_is_taken_as_a_value(argv, dest, value):
    """`--box -5,-5,10,10` needed `--box=-5,-5,10,10` (argparse took the value for a flag)."""
    from mattekit import cli

    found = {k: v for k, v in vars(cli.build_parser(argv[0]).parse_args(argv)).items() if k.endswith(dest)}
    assert list(found.values()) in ([value], [[value]]), found
