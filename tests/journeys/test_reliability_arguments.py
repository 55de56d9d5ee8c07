"""Bad arguments refused in one sentence before anything runs: --threads out of range, each task's contradictory or
impossible options before any model loads, a single input that is no image before torch is imported, ``serve``'s bad
flags before it listens; and values starting with a minus taken as values."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from PIL import Image


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
