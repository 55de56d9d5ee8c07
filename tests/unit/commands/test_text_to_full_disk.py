"""The text commands' standard output (``models list``, ``info``) as a user meets it when it cannot take what they
print: onto a full disk one sentence naming standard output and the cause, exit 2, whether Python buffers the text
or not (it was "Internal error", exit 1, or a silent 141); a reader that has gone, the status of a tool that
SIGPIPE ended (141) and nothing said."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from mattekit import io

FULL = "mattekit: error: Cannot write to standard output: the disk is full.\n"
BUFFERING = pytest.mark.parametrize("buffering", ["raw", "buffered"])  # raw: PYTHONUNBUFFERED=1, as in many CI jobs
COMMANDS = pytest.mark.parametrize("command", [["models", "list"], ["info", "photo.png"]], ids=["models", "info"])


@pytest.fixture
def mattekit(tmp_path):
    """run(command, buffering, stdout) -> the finished ``python -m mattekit`` with standard output ``stdout`` (a
    descriptor) and Python's ``buffering`` of it, in a folder holding photo.png, a small picture with a record."""
    io.write_image(tmp_path / "photo.png", np.zeros((4, 6, 3), np.float32), provenance={"task": "enhance"})
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}

    def run(command, buffering, stdout):
        env_here = dict(env, **({"PYTHONUNBUFFERED": "1"} if buffering == "raw" else {}))
        command = [sys.executable, "-m", "mattekit", *command]
        return subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, env=env_here, cwd=tmp_path, timeout=60)

    return run


@COMMANDS
@BUFFERING
def test_a_text_command_onto_a_full_disk_is_the_disk_full_sentence(mattekit, command, buffering):
    with open("/dev/full", "wb") as full:
        done = mattekit(command, buffering, full)
    assert (done.returncode, done.stderr.decode()) == (2, FULL)


@BUFFERING
def test_a_text_command_whose_reader_has_gone_ends_with_141_and_says_nothing(mattekit, buffering):
    read, write = os.pipe()
    os.close(read)  # the reader left before a byte was written
    try:
        done = mattekit(["models", "list"], buffering, write)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr.decode()) == (141, "")
