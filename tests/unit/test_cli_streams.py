"""The per-file commands as a user meets them: pipes (- in, -o - out), one line per written file, -q,
skipped files counted, licence notices only after the arguments were checked, offline messages."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mattekit import io
from mattekit.io.formats import png_whole
from small_disks import on_a_small_disk

pytestmark = pytest.mark.needs_data


@pytest.fixture
def env(shared, tmp_path):
    return dict(
        os.environ,
        MATTEKIT_MIRROR=str(shared / "weights"),
        MATTEKIT_OFFLINE="1",
        MATTEKIT_HOME=str(tmp_path / "home"),
        OMP_NUM_THREADS="1",
    )


def mattekit(env, *args, stdin: bytes | None = None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "mattekit", *map(str, args)], input=stdin, capture_output=True, env=env, cwd=cwd
    )


@pytest.mark.slow
def test_cat_photo_into_remove_and_the_cut_out_to_stdout(shared, env, tmp_path):
    photo = shared / "data/grabcut50/im/person1.jpg"
    done = mattekit(env, "remove", "-", "-o", "-", "--model", "sinet-portrait", stdin=photo.read_bytes())
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"\x89PNG"), "a PNG on standard output"
    (tmp_path / "cut.png").write_bytes(done.stdout)
    cut = io.read_image(tmp_path / "cut.png")
    assert cut.pixels.shape[2] == 4 and io.read_provenance(tmp_path / "cut.png")["task"] == "remove"
    lines = done.stderr.decode().strip().splitlines()  # the first run on ONNX Runtime exports the net once first
    assert lines[-1] == "mattekit: wrote PNG to standard output" and len(lines) in (1, 3), lines
    assert [line.split(" ")[1] for line in lines[:-1]] in ([], ["exporting", "exported"]), lines
    as_jpeg = mattekit(
        env,
        "remove",
        "-",
        "-o",
        "jpg:-",
        "--model",
        "sinet-portrait",
        "--background",
        "white",
        stdin=photo.read_bytes(),
    )
    assert as_jpeg.returncode == 0 and as_jpeg.stdout.startswith(b"\xff\xd8"), as_jpeg.stderr
    assert as_jpeg.stderr.decode().strip() == "mattekit: wrote JPG to standard output"  # the export is cached now
    no_output = mattekit(env, "enhance", "-", stdin=photo.read_bytes())  # stdin without -o: PNG on stdout
    assert no_output.returncode == 0 and no_output.stdout.startswith(b"\x89PNG"), no_output.stderr
    assert not list(Path(env["MATTEKIT_HOME"]).parent.glob("mattekit-*")), "nothing left behind"


def test_stream_mistakes_are_one_sentence(shared, env, tmp_path):
    empty = mattekit(env, "enhance", "-", "-o", str(tmp_path / "x.png"), stdin=b"")
    assert empty.returncode == 2 and empty.stderr.decode().startswith("mattekit: error: Standard input is empty")
    two = mattekit(
        env, "enhance", shared / "data/grabcut50/im/person1.jpg", shared / "data/grabcut50/im/person2.jpg", "-o", "-"
    )
    assert two.returncode == 2 and "exactly one input" in two.stderr.decode()
    odd = mattekit(env, "enhance", "-", "-o", "gif:-", stdin=b"\x89PNG")
    assert odd.returncode == 2 and "Cannot write gif to standard output" in odd.stderr.decode()


# ------------------------------------------------------------------ issue 91: every byte said written was written

STDOUT_SAYS = "mattekit: error: Cannot write PNG to standard output: {}.\n"
BUFFERING = pytest.mark.parametrize("buffering", ["raw", "buffered"])  # raw: PYTHONUNBUFFERED=1, as in many CI jobs


def _noise(tmp_path: Path, buffering: str) -> tuple[Path, dict]:
    """(A noise photo whose PNG, 160 KB, is more than a pipe holds, the environment with standard output's binary
    layer ``buffering``: "raw", as PYTHONUNBUFFERED makes it, takes part of a write and says how much)."""
    io.write_image(tmp_path / "p.png", np.random.default_rng(9).random((200, 300, 3), dtype=np.float32))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return tmp_path / "p.png", dict(
        env, OMP_NUM_THREADS="1", **({"PYTHONUNBUFFERED": "1"} if buffering == "raw" else {})
    )


@BUFFERING
def test_standard_output_on_a_full_disk_is_the_disk_full_sentence(tmp_path, buffering):
    """Issue 91: `-o -` onto a full disk said "wrote PNG to standard output" and exited 0 over a truncated PNG (a raw
    write's short count was dropped); `> /dev/full` was "Internal error (OSError ...)", exit 1. Now both are the
    disk-full sentence, exit 2."""
    photo, env = _noise(tmp_path, buffering)
    command = [sys.executable, "-m", "mattekit", "enhance", photo, "-o", "-"]
    with open("/dev/full", "wb") as full:
        onto_full = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, env=env)
    assert (onto_full.returncode, onto_full.stderr.decode()) == (2, STDOUT_SAYS.format("the disk is full"))
    small, kept = on_a_small_disk(tmp_path / "disk", 128, command, env, stdout_to=tmp_path / "disk" / "cut.png")
    assert (small.returncode, small.stderr.decode()) == (2, STDOUT_SAYS.format("the disk is full"))
    assert (kept / "cut.png").stat().st_size <= 128 << 10  # (the shell's file: the part the disk took)


def test_standard_output_past_the_file_size_limit_names_standard_output(tmp_path):
    """Issue 91: under `ulimit -f`, `-o -` said "Cannot write <a private temporary>/stdout.png: file too large.", a
    private temporary the user never gave. Now the sentence names standard output and the limit, exit 2; nothing
    is left in the temporary folder."""
    import resource

    photo, env = _noise(tmp_path, "raw")
    (tmp_path / "tmp").mkdir()
    limit = 100_000  # bytes, under the 160 KB PNG

    def cap_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(
        [sys.executable, "-m", "mattekit", "enhance", photo, "-o", "-"],
        capture_output=True,
        env=dict(env, TMPDIR=str(tmp_path / "tmp")),
        preexec_fn=cap_files,
    )
    too_large = "it is larger than the file size limit (ulimit -f, or the file system's own)"
    assert (done.returncode, done.stdout, done.stderr.decode()) == (2, b"", STDOUT_SAYS.format(too_large))
    assert not list((tmp_path / "tmp").iterdir())


@BUFFERING
def test_a_reader_that_leaves_part_way_gets_141_and_no_wrote_line(tmp_path, buffering):
    """Issue 91: `-o - | head -c 100` exited 0 with "wrote PNG to standard output" (the pipe took part of the PNG,
    then its reader left). Now the status of a tool that SIGPIPE ended, 141, and nothing on stderr; a reader that
    stays gets the PNG whole, every chunk to IEND with its right CRC."""
    photo, env = _noise(tmp_path, buffering)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mattekit", "enhance", photo, "-o", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    first = proc.stdout.read(100)
    proc.stdout.close()  # the reader leaves
    said = proc.stderr.read()
    assert (first[:4], proc.wait(60), said) == (b"\x89PNG", 141, b"")
    stays = mattekit(env, "enhance", photo, "-o", "-")
    assert (stays.returncode, stays.stderr.decode()) == (0, "mattekit: wrote PNG to standard output\n")
    assert png_whole(stays.stdout)


@BUFFERING
def test_a_non_blocking_standard_output_gets_the_whole_image(tmp_path, buffering):
    """A pipe whose write end is non-blocking (as some parents leave it) and whose reader is slow: the writes that
    find it full wait for room rather than drop the rest or fail."""
    photo, env = _noise(tmp_path, buffering)
    read, write = os.pipe()
    os.set_blocking(write, False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mattekit", "enhance", photo, "-o", "-"], stdout=write, stderr=subprocess.PIPE, env=env
    )
    os.close(write)
    with open(read, "rb") as reader:
        time.sleep(0.5)  # the pipe fills meanwhile
        got = reader.read()
    assert (proc.wait(60), proc.stderr.read()) == (0, b"mattekit: wrote PNG to standard output\n")
    assert png_whole(got)


@pytest.mark.slow
def test_standard_input_is_decoded_in_memory_and_its_outputs_named_as_before(env, tmp_path):
    picture = np.random.default_rng(3).random((20, 30, 3), dtype=np.float32)
    io.write_image(tmp_path / "a.jpg", picture)
    data = (tmp_path / "a.jpg").read_bytes()
    env = dict(env, TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    work = tmp_path / "work"
    work.mkdir()
    named = mattekit(env, "enhance", "-", "-o", "stdin.jpg", stdin=data, cwd=work)  # standard input is no file here
    assert named.returncode == 0, named.stderr
    assert named.stderr.decode().strip() == "mattekit: wrote stdin.jpg"
    folder = mattekit(env, "enhance", "-", "-o", tmp_path / "out", stdin=data, cwd=work)
    assert folder.returncode == 0 and (tmp_path / "out" / "stdin.jpg").is_file(), folder.stderr
    cut = mattekit(env, "enhance", "-", "-o", tmp_path / "c.png", stdin=data[: len(data) // 2])
    assert (
        cut.returncode == 2
        and cut.stderr.decode() == "mattekit: error: Cannot read standard input: the data is truncated.\n"
    )
    assert not list((tmp_path / "tmp").iterdir()), "no temporary folder for standard input"
    enhanced = io.read_image(work / "stdin.jpg").pixels
    assert np.array_equal(enhanced, io.read_image(tmp_path / "out" / "stdin.jpg").pixels)
    assert io.read_provenance(work / "stdin.jpg")["task"] == "enhance"


@pytest.mark.slow
def test_one_line_per_written_file_skipped_ones_counted_and_quiet(shared, env, tmp_path):
    for name in ("a.png", "b.png"):
        io.write_image(tmp_path / name, np.random.default_rng(0).random((20, 30, 3), dtype=np.float32))
    out = tmp_path / "out"
    first = mattekit(env, "enhance", tmp_path / "a.png", "-o", out)
    assert first.returncode == 0 and f"mattekit: wrote {out / 'a.png'}" in first.stderr.decode()
    again = mattekit(env, "enhance", tmp_path / "a.png", tmp_path / "b.png", "-o", out, "--skip-existing")
    lines = again.stderr.decode()
    assert f"wrote {out / 'b.png'}" in lines and f"wrote {out / 'a.png'}" not in lines
    assert "skipped 1 input(s) whose output already exists" in lines
    quiet = mattekit(env, "enhance", tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "q", "-q")
    assert quiet.returncode == 0 and quiet.stderr == b"" and len(list((tmp_path / "q").iterdir())) == 2


@pytest.mark.slow
def test_licence_notice_comes_only_after_the_arguments_are_checked(shared, env, tmp_path):
    photo = shared / "data/grabcut50/im/person1.jpg"
    bad = mattekit(env, "remove", photo, "-o", photo, "--model", "csnet-sod")  # would replace its input
    assert bad.returncode == 2 and "CC BY-NC" not in bad.stderr.decode() and "is an input" in bad.stderr.decode()
    good = mattekit(env, "remove", photo, "-o", tmp_path / "c.png", "--model", "csnet-sod")
    assert good.returncode == 0 and "non-commercial" in good.stderr.decode().lower()


@pytest.mark.slow
def test_offline_the_missing_default_names_what_is_here_and_the_flag(shared, env, tmp_path):
    photo = shared / "data/grabcut50/im/person1.jpg"
    done = mattekit(env, "remove", photo, "-o", tmp_path / "c.png")
    message = done.stderr.decode()
    assert done.returncode == 2 and message.count("\n") == 1, message
    assert message.startswith("mattekit: error: Register the mirror's converted copy with `mattekit models add ")
    other = mattekit(env, "remove", photo, "-o", tmp_path / "c.png", "--model", "u2net").stderr.decode()
    assert other.startswith("mattekit: error: Pick a segment model that is here with --model NAME (")
    assert "sinet-portrait" in other and "u2net-human-seg" not in other
    bokeh = mattekit(env, "bokeh", photo, "-o", tmp_path / "b.png", "--mask-only", "--segment-model", "u2net")
    assert "Pick a segment model that is here with --segment-model NAME" in bokeh.stderr.decode()
    depth = mattekit(env, "bokeh", photo, "-o", tmp_path / "b.png").stderr.decode()
    assert (
        "error: Unset MATTEKIT_OFFLINE or set MATTEKIT_MIRROR to a folder holding them, or use --mask-only to blur "
        "without a depth model (no depth model is on disk or in a mirror here)"
    ) in depth
    ok = mattekit(env, "bokeh", photo, "-o", tmp_path / "b.png", "--mask-only", "--segment-model", "sinet-portrait")
    assert ok.returncode == 0, ok.stderr


def test_models_list_shows_where_each_model_is_its_size_and_licence(shared, env):
    listing = mattekit(env, "models", "list").stdout.decode().splitlines()
    assert listing[0].split()[:5] == ["name", "task", "weights", "size", "licence"]
    rows = {line.split()[0]: line for line in listing[1:]}
    assert "in mirror" in rows["sinet-portrait"] and "MIT" in rows["sinet-portrait"]
    assert "missing" in rows["isnet-general-use"] and "176.6 MB" in rows["isnet-general-use"]
    mattekit(env, "models", "pull", "sinet-portrait")
    assert (
        "on disk"
        in mattekit(env, "models", "list", "--task", "segment")
        .stdout.decode()
        .split("sinet-portrait")[1]
        .splitlines()[0]
    )
    wrong = mattekit(env, "upscale", shared / "data/grabcut50/im/person1.jpg", "--model", "u2netp").stderr.decode()
    assert "is a segment model, not an upscale model" in wrong


def _damaged_exrs(folder: Path) -> list[Path]:
    """EXRs as a failed render or copy leaves them: cut in half, cut inside the chunk table, and a valid
    magic number and version followed by garbage."""
    io.write_image(folder / "full.exr", np.random.default_rng(4).random((200, 300, 4), dtype=np.float32))
    data = (folder / "full.exr").read_bytes()
    (folder / "half.exr").write_bytes(data[: len(data) // 2])
    (folder / "header-only.exr").write_bytes(data[:400])
    (folder / "garbage.exr").write_bytes(data[:8] + bytes(range(256)) * 2)
    return [folder / "half.exr", folder / "header-only.exr", folder / "garbage.exr"]


@pytest.mark.slow
def test_a_damaged_exr_is_one_line_and_the_decoder_prints_nothing(env, tmp_path):
    """A damaged EXR is one sentence with the decoder's reason; the decoder's own lines (on
    stdout and stderr) stay off the terminal and the pipe."""
    for path in _damaged_exrs(tmp_path):
        for output in (tmp_path / "out.png", "-"):
            done = mattekit(env, "enhance", path, "-o", output)
            lines = done.stderr.decode().splitlines()
            assert (done.returncode, done.stdout, len(lines)) == (2, b"", 1), (path, output, done)
            assert re.fullmatch(
                rf"mattekit: error: Cannot read {re.escape(str(path))}: it is damaged or truncated "
                r"\(.+\)\.",
                lines[0],
            ), lines
    assert not (tmp_path / "out.png").exists()


THREADS_AND_PRINTS = """
import os, sys, threading, warnings
from mattekit import io
from mattekit.errors import InputError
warnings.simplefilter("ignore")
paths, failures = sys.argv[1:], []
def read(path):
    try:
        io.read_image(path)
    except InputError:
        failures.append(path)
threads = [threading.Thread(target=read, args=(path,)) for path in paths * 4]
for thread in threads:
    thread.start()
for i in range(200):  # this thread prints while the others decode
    print(f"out {i}")
    print(f"err {i}", file=sys.stderr)
for thread in threads:
    thread.join()
print(f"failures {len(failures)}")
os.write(1, b"descriptor 1\\n")
os.write(2, b"descriptor 2\\n")
"""


def test_exr_decoders_in_threads_print_nothing_and_other_threads_still_print(tmp_path):
    """Decoding damaged EXRs in threads prints nothing, while other threads' lines still reach the streams, whole
    and in order, and descriptors 1 and 2 lead where they did."""
    damaged = _damaged_exrs(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", THREADS_AND_PRINTS, *map(str, damaged + [tmp_path / "full.exr"])],
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"out {i}" for i in range(200)] + ["failures 12", "descriptor 1"]
    assert done.stderr.splitlines() == [f"err {i}" for i in range(200)] + ["descriptor 2"]


@pytest.mark.parametrize("max_pixels", ["1e6", None], ids=["explicit", "default"])
def test_an_endless_standard_input_is_refused_at_its_cap(tmp_path, max_pixels):
    """``enhance - < /dev/zero`` reads no further than the largest image the pixel limit allows
    takes (16 bytes a pixel, plus 64 MiB of metadata) and says so in one sentence, naming the cap; the child runs
    under an address-space cap, so a run that read on would fail (out of memory) rather than fill this machine.
    Explicit: MATTEKIT_MAX_PIXELS's cap, to the byte. Default (issue 70: untested): the limit that the memory left
    under the 3 GiB address-space cap gives, a tenth of it plus 64 MiB, so at most 3 GiB / 10 + 64 MiB."""
    import resource

    def cap_memory():
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    env = {k: v for k, v in os.environ.items() if k != "MATTEKIT_MAX_PIXELS"}
    env.update(
        MATTEKIT_HOME=str(tmp_path / "home"),
        OMP_NUM_THREADS="1",
        **({"MATTEKIT_MAX_PIXELS": max_pixels} if max_pixels else {}),
    )
    with open("/dev/zero", "rb") as zero:
        done = subprocess.run(
            [sys.executable, "-m", "mattekit", "enhance", "-", "-o", str(tmp_path / "x.png")],
            stdin=zero,
            capture_output=True,
            env=env,
            preexec_fn=cap_memory,
        )
    said = re.fullmatch(
        r"mattekit: error: Standard input goes on past (\d+) MB, the most an image within this "
        r"machine's pixel limit takes; pipe in one image file, or raise MATTEKIT_MAX_PIXELS to allow "
        r"more\.",
        done.stderr.decode().strip(),
    )
    assert done.returncode == 2 and said, done.stderr
    most = 16 * 10**6 + (64 << 20) if max_pixels else 16 * ((3 << 30) // 160) + (64 << 20)
    assert (int(said[1]) == round(most / 1e6)) if max_pixels else (64 << 20) / 1e6 < int(said[1]) <= most / 1e6
    assert not (tmp_path / "x.png").exists()
