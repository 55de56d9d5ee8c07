"""An OCIO config a request names (NAME@CONFIG) is confined: every file it makes OpenColorIO read is a regular file
beside it or in the worker's allowed folders, read once through one descriptor (mattekit.io.colour, mattekit.fsutil).
OCIO holds the GIL while it reads, so a FIFO or an endless device read by it would freeze the whole worker: the
worker-level cases run a real worker process and give each request a deadline, so a frozen worker fails the test."""

from __future__ import annotations

import http.client
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import PyOpenColorIO as ocio
import pytest

from mattekit import fsutil
from mattekit.io import colour
from mattekit.errors import InputError
from mattekit.io import write_image
from mattekit.wire import client, protocol
from checkout import this_python

CORE = str(Path(__file__).resolve().parents[2] / "core")
MODEL = "csnet-sod"  # real weights from the shared mirror; 0.7 MB, fast on CPU
HALF = "Version 1\nFrom 0.0 1.0\nLength 2\nComponents 1\n{\n0.0\n0.5\n}\n"  # a 1D LUT: 1.0 -> 0.5


def lut_config(path: Path, src: str, search: str = "luts") -> Path:
    """The built-in CG config plus colour space "lutty" (FileTransform ``src`` to the reference), saved at ``path``."""
    cfg = ocio.Config.CreateFromFile("ocio://cg-config-latest")
    space = ocio.ColorSpace(name="lutty")
    space.setTransform(ocio.FileTransform(src=src), ocio.COLORSPACE_DIR_TO_REFERENCE)
    cfg.addColorSpace(space)
    cfg.setSearchPath(search)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cfg.serialize())
    return path


@pytest.fixture
def world(tmp_path):
    """(allowed folder with a plate, a folder outside it holding a show's configs and LUTs, a folder elsewhere)."""
    allowed, show, elsewhere = tmp_path / "allowed", tmp_path / "show", tmp_path / "elsewhere"
    for folder in (allowed / "plate", show / "luts", elsewhere):
        folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for frame in (1, 2):
        write_image(allowed / "plate" / f"f.{frame:04d}.png", rng.random((12, 16, 3)).astype(np.float32))
    (show / "luts" / "half.spi1d").write_text(HALF)
    (elsewhere / "half.spi1d").write_text(HALF)
    (allowed / "half.spi1d").write_text(HALF)
    os.mkfifo(show / "luts" / "fifo.spi1d")
    return allowed, show, elsewhere


def test_hostile_configs_are_refused_quickly_by_a_real_worker_and_a_clean_one_works(
    world, tmp_path, shared, monkeypatch
):
    """A real worker process (this checkout's), its allowed folder ``allowed``; configs outside it, as Blender's
    own is. Each hostile config is one sentence (400) and the worker answers its health check after each; a config
    beside its LUTs, or naming one in the allowed folder, runs roto with its colour space."""
    allowed, show, elsewhere = world
    monkeypatch.delenv("OCIO", raising=False)
    monkeypatch.setenv("MATTEKIT_ALLOW_DIRS", str(allowed))
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    outside = "its folder and the worker's allowed folders"
    hostile = {
        lut_config(
            show / "fifo.ocio", "fifo.spi1d"
        ): f"names {show / 'luts' / 'fifo.spi1d'}, which is a FIFO, not a regular file.",
        lut_config(show / "zero.ocio", "/dev/zero"): f"names /dev/zero, which lies outside {outside}.",
        lut_config(show / "urandom.ocio", "/dev/urandom"): f"names /dev/urandom, which lies outside {outside}.",
        lut_config(
            show / "away.ocio", str(elsewhere / "half.spi1d")
        ): f"names {elsewhere / 'half.spi1d'}, which lies outside {outside}.",
        lut_config(
            show / "search.ocio", "half.spi1d", str(elsewhere)
        ): f"searches {elsewhere} for files, outside {outside}.",
        lut_config(show / "devices.ocio", "zero", "/dev"): f"searches /dev for files, outside {outside}.",
    }
    state = tmp_path / "state" / "worker.json"
    worker = client.start_worker(this_python(tmp_path), str(state), idle_timeout=120)
    host, port = worker.url.removeprefix("http://").split(":")

    def request(method, path, options=None, timeout=30):
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)  # a frozen worker fails the test, not CI
        meta = {protocol.META_HEADER: json.dumps({"inputs": [], "options": options or {}})}
        conn.request(method, path, body=b"", headers={"Authorization": f"Bearer {worker.token}", **meta})
        answer = conn.getresponse()
        status, body = answer.status, answer.read()
        body = json.loads(body) if body else {}  # (roto answers no pixels)
        conn.close()
        return status, body

    def roto(config, out, timeout=30):  # (a run that is taken loads the model: more time, on a busy machine)
        return request(
            "POST",
            "/v1/run/roto",
            dict(
                plate=str(allowed / "plate" / "f.####.png"),
                model=MODEL,
                output=str(allowed / out / "m.####.png"),
                colorspace=f"lutty@{config}",
            ),
            timeout,
        )

    try:
        for config, words in hostile.items():
            status, answer = roto(config, "refused")
            assert (status, answer["error"]["code"]) == (400, "bad_option"), answer
            assert answer["error"]["message"] == f"The OCIO config {config} {words}", answer
            assert request("GET", "/v1/health")[0] == 200
        for name, src in (("clean", "half.spi1d"), ("named", str(allowed / "half.spi1d"))):
            status, answer = roto(lut_config(show / f"{name}.ocio", src), name, timeout=600)
            assert status == 200, answer
            assert {"m.0001.png", "m.0002.png", "m.mattekit.json"} <= {p.name for p in (allowed / name).iterdir()}
    finally:
        os.kill(json.loads(state.read_text())["pid"], signal.SIGKILL)
    assert not (allowed / "refused").exists()


def _swap_after_check(monkeypatch, target: Path, swap) -> None:
    """Run ``swap()`` once, right after mattekit.fsutil has resolved ``target``'s real path and before it opens it:
    the moment an attacker would aim for."""
    resolve = os.path.realpath

    def resolved(path, *args, **kwargs):
        real = resolve(path, *args, **kwargs)
        if str(path) == str(target) and not getattr(resolved, "done", False):
            resolved.done = True
            swap()
        return real

    monkeypatch.setattr(fsutil.os.path, "realpath", resolved)


def test_a_swap_between_the_check_and_the_open_is_refused(world, monkeypatch):
    """The file checked is the file read: a LUT swapped for a link (to /dev/zero), the folder above it swapped for a
    link to a folder elsewhere, and the config itself swapped for a FIFO, each between the check and the open: one
    sentence each, nothing blocks; the same config reads its LUT when nobody swaps it."""
    allowed, show, elsewhere = world
    monkeypatch.delenv("OCIO", raising=False)
    within = lambda real: real.startswith(str(allowed) + os.sep)  # noqa: E731 - the worker's allowed folders
    config = lut_config(show / "swap.ocio", "half.spi1d")
    lut = show / "luts" / "half.spi1d"

    def to_link():
        lut.rename(show / "luts" / "kept.spi1d")
        lut.symlink_to("/dev/zero")

    _swap_after_check(monkeypatch, lut, to_link)
    with pytest.raises(InputError) as refused:
        colour.confine(f"lutty@{config}", within)
    assert (
        str(refused.value) == f"The OCIO config {config} names {lut}, which was replaced by a link while it was opened."
    )

    lut.unlink()
    (show / "luts" / "kept.spi1d").rename(lut)
    monkeypatch.undo()
    monkeypatch.delenv("OCIO", raising=False)
    colour.confine(f"lutty@{config}", within)  # nobody swaps: taken, and its LUT applied (1.0 -> 0.5 linear)
    np.testing.assert_allclose(
        colour.to_network(np.ones((1, 1, 3)), f"lutty@{config}"),
        colour.to_network(np.full((1, 1, 3), 0.5), colour.LINEAR_SRGB),
        atol=1e-6,
    )

    def folder_away():
        (show / "luts").rename(show / "luts-kept")
        (show / "luts").symlink_to(elsewhere, target_is_directory=True)

    other = lut_config(show / "other.ocio", "half.spi1d")
    _swap_after_check(monkeypatch, lut, folder_away)
    with pytest.raises(InputError) as refused:
        colour.confine(f"lutty@{other}", within)
    assert str(refused.value) == (
        f"The OCIO config {other} names {lut}, which was moved outside its folder and the "
        f"worker's allowed folders while it was opened."
    )

    third = lut_config(show / "third.ocio", "half.spi1d")
    _swap_after_check(monkeypatch, third, lambda: (third.unlink(), os.mkfifo(third)))
    with pytest.raises(InputError) as refused:
        colour.confine(f"lutty@{third}", within)
    assert str(refused.value) == f"Cannot load the OCIO config {third}: it is a FIFO, not a regular file."


def test_the_cli_reads_no_device_a_config_names(world, tmp_path):
    """The user's own config (the CLI confines nothing) naming /dev/zero: one sentence, exit 2, at once; OCIO would
    read it for ever (a subprocess with a memory cap and a deadline, so that a regression fails rather than hangs)."""
    allowed, show, _ = world
    config = lut_config(show / "zero.ocio", "/dev/zero")
    env = dict(os.environ, PYTHONPATH=CORE)
    env.pop("OCIO", None)
    cap = lambda: resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # noqa: E731
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mattekit",
            "roto",
            str(allowed / "plate" / "f.####.png"),
            "-o",
            str(tmp_path / "out" / "m.####.png"),
            "--model",
            MODEL,
            "--colorspace",
            f"lutty@{config}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=cap,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"mattekit: error: The OCIO config {config} names /dev/zero, which is a device, not a regular file."
    ), done.stderr
    assert not (tmp_path / "out").exists()
