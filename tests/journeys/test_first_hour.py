"""Odd images, names, files, pipes and flags a user meets in the first hour each end in one sentence (or simply
work), never "Internal error", and what needs no model is refused before a model loads."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mattekit import io
from mattekit.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    io.write_image(path, np.random.default_rng(0).random((24, 32, 3)).astype(np.float32))
    return path


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """Offline, an empty cache and an empty mirror: a run that gets as far as loading a model fails on its weights."""
    (tmp_path / "empty-mirror").mkdir()
    monkeypatch.setenv("MATTEKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MATTEKIT_MIRROR", str(tmp_path / "empty-mirror"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "no-rembg"))


def error_line(capsys) -> str:
    """The one line a refused command printed on stderr."""
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mattekit: error: "), lines
    return lines[0].removeprefix("mattekit: error: ")


# ------------------------------------------------------------------ item 7: strips, long names, closed pipes


def test_foreground_of_a_1x65535_strip_is_estimated():
    """Item 7: OpenCV's remap takes planes under 32767 px a side; the strip's levels are longer (it was "Internal
    error (error: OpenCV(...) remap ...)"). The strip's colours equal the same pixels solved as a column."""
    from mattekit.matting import estimate_foreground

    rng = np.random.default_rng(1)
    image = rng.random((1, 65535, 3)).astype(np.float32)
    alpha = (0.5 + 0.5 * np.sin(np.arange(65535) / 50.0)).astype(np.float32)[None]
    fg = estimate_foreground(image, alpha)
    assert fg.shape == (1, 65535, 3) and np.isfinite(fg).all()
    column = estimate_foreground(image.transpose(1, 0, 2).copy(), alpha.T.copy())
    assert np.abs(fg - column.transpose(1, 0, 2)).max() < 1e-4


def test_a_1x65535_strip_photo_is_cut_out(shared, tmp_path, monkeypatch):
    """Item 7, as a user met it: `mattekit remove strip.png` on a 1 x 65535 photo ended in "Internal error"."""
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    strip = tmp_path / "strip.png"
    ramp = np.linspace(0, 1, 65535, dtype=np.float32)
    io.write_image(strip, np.stack([ramp, ramp[::-1], np.full_like(ramp, 0.5)], -1)[None])
    assert main(["remove", str(strip), "--model", "sinet-portrait", "-o", str(tmp_path / "cut.png")]) == 0
    assert io.read_image(tmp_path / "cut.png").pixels.shape == (1, 65535, 4)


def test_a_300_character_output_name_is_one_sentence_naming_the_limit(photo, tmp_path, capsys):
    """Item 7: ENAMETOOLONG was "Internal error (OSError: [Errno 36] File name too long ...)"."""
    assert main(["enhance", str(photo), "-o", str(tmp_path / ("x" * 300 + ".png"))]) == 2
    message = error_line(capsys)
    assert re.fullmatch(
        r"The output name x{40}\.\.\. is 304 bytes long, over the 241 a name may have here "
        r"\(255 less 14 for the temporary name it is written through\); choose a shorter -o\.",
        message,
    )
    assert main(["enhance", str(tmp_path / ("z" * 300 + ".png"))]) == 2  # an input's name too
    assert error_line(capsys).endswith("z.png is longer than a file name may be here (255 bytes).")
    long_folder = tmp_path / ("y" * 300) / "out.png"
    assert main(["enhance", str(photo), "-o", str(long_folder)]) == 2
    assert "is 300 bytes long, over the 255 a name may have here (the file system's limit)" in error_line(capsys)


def test_a_closed_pipe_ends_quietly_with_the_status_of_sigpipe(photo):
    """Item 7: `mattekit enhance x -o - | true` printed "Internal error (BrokenPipeError ...)" and exit 1 (and then,
    exit 141 after 'wrote PNG to standard output', though nothing was)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(
        f"{sys.executable} -m mattekit enhance {photo} -o - | true; exit ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        env=env,
    )
    err = done.stderr.decode()
    assert done.returncode == 141 and "error" not in err and "Traceback" not in err, err
    assert "wrote" not in err, err  # nothing reached standard output: no line says it was written


# ------------------------------------------------------------------ item 8: special files and raw names


@pytest.mark.parametrize("kind", ["fifo", "device", "random", "loop", "broken"])
def test_a_special_file_is_called_what_it_is(kind, tmp_path, capsys):
    """Item 8: a FIFO, a link to /dev/zero or /dev/urandom and a link loop were all "does not exist"."""
    path = tmp_path / "in.png"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind in ("device", "random"):
        path.symlink_to("/dev/zero" if kind == "device" else "/dev/urandom")
    elif kind == "loop":
        path.symlink_to(tmp_path / "other.png")
        (tmp_path / "other.png").symlink_to(path)
    else:
        path.symlink_to(tmp_path / "gone.png")
    assert main(["enhance", str(path)]) == 2
    expected = {
        "fifo": "is a FIFO, not an image file.",
        "device": "is a device, not an image file.",
        "random": "is a device, not an image file.",
        "loop": "is a link loop.",
        "broken": "is a broken link, pointing at nothing.",
    }[kind]
    assert error_line(capsys) == f"{path} {expected}"


def test_a_folder_run_names_the_special_files_it_skips(photo, tmp_path, capsys):
    """Item 8: a folder run skipped FIFOs and link loops silently; now one warning line names them."""
    folder = tmp_path / "in"
    folder.mkdir()
    io.write_image(folder / "a.png", io.read_image(photo).pixels)
    os.mkfifo(folder / "b.png")
    (folder / "c.png").symlink_to(folder / "c.png")
    assert main(["enhance", str(folder), "-o", str(tmp_path / "out")]) == 0
    lines = capsys.readouterr().err.splitlines()
    skipped = [line for line in lines if "Skipped" in line]
    assert skipped == [
        f"mattekit: warning: Skipped 2 entries of {folder} that are not image files: b.png (a FIFO), "
        f"c.png (a link loop)."
    ], lines
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]


def test_names_are_printed_with_control_characters_and_undecodable_bytes_escaped(tmp_path, capsys):
    """Item 8: a name holding a terminal escape, a newline or bytes that are no UTF-8 was printed raw: the escape
    ran on the user's terminal and the newline broke the one-line message."""
    hostile = str(tmp_path / "a\x1bcred\nline") + os.fsdecode(b"\xff") + ".png"
    assert main(["enhance", hostile]) == 2
    message = error_line(capsys)
    assert message == f"{tmp_path}/a\\x1bcred\\nline\\xff.png does not exist."
    Path(hostile).write_bytes(b"not an image")
    assert main(["enhance", hostile]) == 2
    assert "\\x1bcred\\nline\\xff.png" in error_line(capsys)


# ------------------------------------------------------------------ item 9: a result with no subject

EMPTY = "the result is fully transparent (no subject was found); try "
IN_BOX = "the result is fully transparent (no subject was found in the box); try "


@pytest.mark.slow
def test_a_fully_transparent_cut_out_is_written_with_one_warning_line(shared, tmp_path, monkeypatch):
    """Item 9: `remove photo.jpg --box` on an empty corner wrote a fully transparent cut-out without a word; the real
    CLI now names the file in one warning line, writes it all the same and exits 0 (a found subject: no line, below)."""
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    photo, cut = shared / "data/grabcut50/im/person1.jpg", tmp_path / "corner.png"
    run = [sys.executable, "-m", "mattekit", "remove", str(photo), "--model", "sinet-portrait", "--threads", "2"]
    done = subprocess.run(
        run + ["--box", "0,0,40,40", "--hint-model", "none", "-o", str(cut)], capture_output=True, text=True
    )  # the segmentation model answers the box
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "warning" in line]
    assert warned == [
        f"mattekit: warning: {cut}: {IN_BOX}--point on the subject inside the box, or --model with "
        f"another model, or --hint-model at its default (SAM 2.1 answers a box)."
    ], done.stderr
    alpha = io.read_image(cut).pixels[..., 3]
    assert alpha.shape == (450, 600) and not alpha.any()


def test_the_python_api_warns_of_a_fully_transparent_result(shared, tmp_path, monkeypatch):
    """Item 9 in Python: a UserWarning naming the file (or, for arrays, none), the options in Python's words."""
    import mattekit

    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    photo = tmp_path / "photo.jpg"
    photo.symlink_to(shared / "data/grabcut50/im/person1.jpg")
    with pytest.warns(UserWarning) as caught:
        target = mattekit.remove_background(photo, model="sinet-portrait", box=(0, 0, 40, 40), hint_model="none")
        alpha = mattekit.remove_background(
            io.read_image(photo).pixels, model="sinet-portrait", box=(0, 0, 40, 40), hint_model="none", result="alpha"
        )
    assert target == tmp_path / "photo_cutout.png" and not alpha.any()
    tail = (
        "point= on the subject inside the box, or model= with another model, or hint_model= at its default (SAM 2.1 "
        "answers a box)."
    )
    assert [str(w.message) for w in caught] == [f"{target}: {IN_BOX}{tail}", IN_BOX[:1].upper() + IN_BOX[1:] + tail]


def test_after_a_box_the_empty_result_advises_what_else_may_find_the_subject_not_a_box():
    """Issue 70: after --box, the note advised "--box around the subject"; now what else may find the subject in the
    box: a point on it, and the other answerer (SAM 2.1 where the segmentation model answered, and back); without a
    box, the box is still the advice."""
    from mattekit.running.runner import transparent_note
    from mattekit.tasks import registry

    task = registry.tasks()["remove"]
    empty = {task.outputs[0].name: np.zeros((4, 4, 4), np.float32)}
    with_sam = task.make_options({"box": "0,0,40,40"})
    assert transparent_note(task, empty, with_sam) == (
        f"{IN_BOX}--point on the subject inside the box, or --hint-model none (the segmentation model answers the box)."
    )
    assert "--box" not in transparent_note(task, empty, task.make_options({"box": "0,0,40,40", "hint_model": "none"}))
    assert transparent_note(task, empty, task.make_options({})) == (
        f"{EMPTY}--model with another model, or --box around the subject or --point on it."
    )


# ------------------------------------------------------------------ item 15: the first export and one long image


@pytest.mark.slow
def test_the_first_onnx_export_is_announced_and_timed_without_carriage_returns_in_a_log(shared, tmp_path):
    """Item 15: the first `remove` after `models add` spent ~31 s exporting to ONNX with one bare line. The real CLI
    in a fresh home, stderr a pipe (a CI log): a line as the export starts (what, roughly how long), one with its
    time when done, no carriage return; the second run finds the export cached and says nothing of it."""
    env = dict(
        os.environ,
        MATTEKIT_HOME=str(tmp_path / "home"),
        MATTEKIT_MIRROR=str(shared / "weights"),
        MATTEKIT_OFFLINE="1",
        MATTEKIT_BACKEND="onnx",
        OMP_NUM_THREADS="2",
    )
    photo = shared / "data/grabcut50/im/person1.jpg"
    run = [sys.executable, "-m", "mattekit", "remove", str(photo), "--model", "sinet-portrait", "-o"]
    first = subprocess.run(run + [str(tmp_path / "a.png")], env=env, capture_output=True, text=True)
    assert first.returncode == 0 and "\r" not in first.stderr, first.stderr
    lines = first.stderr.splitlines()
    assert (
        lines[0] == ("mattekit: exporting sinet-portrait to ONNX once (seconds to a minute; cached for later runs)...")
        and len(lines) == 3
    ), lines
    assert re.fullmatch(r"mattekit: exported sinet-portrait to ONNX in \d+ s\.", lines[1]), lines
    assert lines[2] == f"mattekit: wrote {tmp_path / 'a.png'}"
    again = subprocess.run(run + [str(tmp_path / "b.png")], env=env, capture_output=True, text=True)
    assert again.returncode == 0 and again.stderr == f"mattekit: wrote {tmp_path / 'b.png'}\n", again.stderr


def test_one_image_that_takes_long_says_what_it_is_working_on(shared, tmp_path, monkeypatch, capsys):
    """Item 15: a single image got no progress line at all (folder runs get one per file). Past SLOW seconds (here
    made 0) the real run says which input it is working on, once, off a terminal; a quick one says nothing."""
    from mattekit.commands import files

    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    photo = shared / "data/grabcut50/im/person1.jpg"
    command = ["remove", str(photo), "--model", "sinet-portrait", "-o"]
    assert main(command + [str(tmp_path / "quick.png")]) == 0  # (the subject is found: no item 9 warning either)
    assert [line for line in capsys.readouterr().err.splitlines() if "working on" in line or "warning" in line] == []
    monkeypatch.setattr(files, "SLOW", 0.0)
    assert main(command + [str(tmp_path / "slow.png")]) == 0
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"mattekit: working on {photo}...",
        f"mattekit: wrote {tmp_path / 'slow.png'}",
    ]


# ------------------------------------------------------------------ item 10: flags, info -, the worker's words


def test_debug_after_the_command_is_accepted(photo, capsys):
    """Item 10: the error sentences say "rerun with --debug", and `mattekit info x.png --debug` was refused."""
    assert main(["info", str(photo), "--debug"]) == 0
    assert capsys.readouterr().out.startswith(f"{photo}: PNG 32 x 24")


def test_info_of_standard_input_is_a_user_error(capsys):
    """Item 10: `mattekit info -` exited 1; the README promises 2 for a user's error."""
    assert main(["info", "-"]) == 2
    assert error_line(capsys) == "mattekit info reads files, not standard input (-); name an image or a roto manifest."


# ------------------------------------------------------------------ item 11: checks before any model loads


def test_a_point_outside_the_image_is_refused_before_any_model_loads(photo, no_weights, capsys):
    """Item 11: `--point 99999,5` was refused only after the model loaded (here: offline without weights, the
    weights error came first)."""
    assert main(["remove", str(photo), "--point", "99999,5"]) == 2
    assert error_line(capsys) == "The point 99999,5 lies outside the 32x24 image."
    assert main(["remove", str(photo), "--box", "40,30,50,50"]) == 2
    assert error_line(capsys) == "The box '40,30,50,50' lies outside the 32x24 image."


def test_an_unwritable_output_folder_is_refused_before_any_model_loads(photo, no_weights, tmp_path, capsys):
    """Item 11: `-o /proc/x.png` was refused only after the model loaded; nothing is left in a writable folder."""
    assert main(["remove", str(photo), "-o", "/proc/x.png"]) == 2
    assert error_line(capsys).startswith("Cannot write in the output folder /proc (")
    assert main(["remove", str(photo), "-o", "/proc/new/folder/x.png"]) == 2
    assert error_line(capsys).startswith("Cannot write in the output folder /proc (")
    assert main(["remove", str(photo), "-o", str(tmp_path / "out" / "x.png")]) == 2
    assert "models list --sources" in error_line(capsys)  # past the checks: the weights are missing
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*.tmp"))  # the check left nothing


# ------------------------------------------------------------------ items 12 and 14: missing weights


def test_the_missing_default_says_its_fix_first_in_one_short_sentence(shared, tmp_path, monkeypatch, capsys):
    """Item 14: the error was one line of 900-1,100 characters with the fix last; item 12: the README's offline
    paragraph named a portrait model for photos in general, where the error gives the right fix."""
    mirror = shared / "weights"
    monkeypatch.setenv("MATTEKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MATTEKIT_MIRROR", str(mirror))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    photo = shared / "data/grabcut50/im/person1.jpg"
    assert main(["remove", str(photo), "-o", str(tmp_path / "c.png")]) == 2
    message = error_line(capsys)
    fix = f"mattekit models add isnet-general-use {mirror}/isnet-general-use.imgly-fp16.onnx --derived"
    assert message == (
        f"Register the mirror's converted copy with `{fix}`: the weights of isnet-general-use cannot be had "
        f"here (`mattekit models list --sources` shows where they are looked for)."
    )
    readme = (ROOT / "README.md").read_text()
    assert fix.replace(str(mirror), '"$MATTEKIT_MIRROR"') in readme and "--model sinet-portrait`" not in readme
    assert main(["remove", str(photo), "-o", str(tmp_path / "c.png"), "--debug"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and lines[0] == f"mattekit: error: {message}"
    assert "MATTEKIT_OFFLINE=1" in lines[1] and f"mirror folder {mirror}" in lines[1]  # the places tried
    assert main(["remove", str(photo), "-o", str(tmp_path / "c.png"), "--model", "u2net"]) == 2
    message = error_line(capsys)
    assert message.startswith("Pick a segment model that is here with --model NAME (") and len(message) < 300
