"""Image reading and writing that fails: truncated, unreadable and oversized files (declared sizes, a huge EXR
window, PNG metadata that unpacks to hundreds of MB), unwritable outputs and read-only folders; a failed write keeps
the old file, and a write removes its own stale temporaries; a command's files and folders on a full disk or past the
file size limit (issue 91)."""

from __future__ import annotations

import errno
import os
import re
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import OpenEXR
import pytest
from PIL import Image

from mattekit.errors import InputError, OutputError
from mattekit.io import read_image, write_image
from mattekit import io
from mattekit.io import picture, png
from mattekit.cli import main
from pictures import random_image
from small_disks import on_a_small_disk


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".exr"])
def test_truncated_files(tmp_path, suffix):
    write_image(tmp_path / f"full{suffix}", random_image(96, 128))
    data = (tmp_path / f"full{suffix}").read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"^Cannot read .*cut.*: (the file|it) is (truncated|damaged)"):
        read_image(tmp_path / f"cut{suffix}")


def test_unreadable_inputs(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(InputError, match="folder"):
        read_image(tmp_path)
    (tmp_path / "notes.xyz").write_text("hello")
    with pytest.raises(InputError, match=r"notes\.xyz is not an image mattekit can read \(PNG, JPEG"):
        read_image(tmp_path / "notes.xyz")


def test_unwritable_outputs(tmp_path):
    px = random_image()
    with pytest.raises(OutputError, match="not an existing folder"):
        write_image(tmp_path / "nowhere" / "a.png", px)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError):
        write_image(tmp_path / "file" / "a.png", px)
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        write_image(tmp_path / "dir.png", px)


@pytest.mark.parametrize("code, reason", [(errno.ENOSPC, "the disk is full"), (errno.EACCES, "permission denied")])
def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch, code, reason):
    target = tmp_path / "keep.png"
    write_image(target, random_image(seed=1))
    before = target.read_bytes()

    def half_written(self, data):  # a partial file, then the failure
        with open(self, "wb") as f:
            f.write(data[:10])
        raise OSError(code, os.strerror(code))

    class FullDisk:  # the PNG writer streams: its header is in the file when compressing fails
        def compress(self, data):
            raise OSError(code, os.strerror(code))

    monkeypatch.setattr(type(target), "write_bytes", half_written)  # how the TIFF writer ends
    monkeypatch.setattr(png.zlib, "compressobj", lambda *a: FullDisk())
    for name in ("keep.png", "new.tif"):
        with pytest.raises(OutputError, match=rf"^Cannot write .*: {reason}\.$"):
            write_image(tmp_path / name, random_image(seed=2))
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]


def _write_as_unprivileged(target, image) -> str:
    """write_image(target, image) in a child process that gave up root (uid and gid of ``nobody``): the
    OutputError's message, or "" when it wrote. Root may write into any folder, so a folder's modes bind only others."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                write_image(target, image)
                message = ""
            except OutputError as error:
                message = str(error)
            os.write(write, message.encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read().decode()
    assert os.waitpid(pid, 0)[1] == 0, "the unprivileged child failed"
    return message


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_read_only_folder(tmp_path):
    """A folder the user may not write into: one sentence naming the reason, and the file there kept. As root (CI),
    the write is made by a child that gave up root, in a folder everyone may enter."""
    folder = tmp_path / "out"
    if os.geteuid() == 0:
        folder = Path(tempfile.mkdtemp(prefix="mattekit-read-only-"))
        folder.chmod(0o755)
    else:
        folder.mkdir()
    target = folder / "a.png"
    write_image(target, random_image(seed=1))
    before = target.read_bytes()
    folder.chmod(0o555)
    try:
        if os.geteuid() == 0:
            message = _write_as_unprivileged(target, random_image(seed=2))
            assert "permission denied" in message and "a.png" in message, message
        else:
            with pytest.raises(OutputError, match="permission denied"):
                write_image(target, random_image(seed=2))
    finally:
        folder.chmod(0o755)
    assert target.read_bytes() == before
    if os.geteuid() == 0:
        shutil.rmtree(folder)


def test_write_removes_the_targets_stale_temporaries(tmp_path):
    """Temporaries that a killed earlier write of the same file left are removed; others' are not."""
    stale = [tmp_path / ".a.png.0badf00d.tmp", tmp_path / ".a.png.12345678.tmp"]
    others = [tmp_path / ".b.png.0badf00d.tmp", tmp_path / ".a.png.notmine.tmp"]
    for path in stale + others:
        path.write_bytes(b"partial")
    write_image(tmp_path / "a.png", random_image())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.png"] + [p.name for p in others])


def test_declared_sizes_are_checked_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MAX_PIXELS", "1000")
    io.write_image(tmp_path / "big.png", np.zeros((40, 30, 3), np.float32))
    with pytest.raises(InputError, match=r"declares 30x40 pixels .* set MATTEKIT_MAX_PIXELS=1200 to try anyway\.$"):
        io.read_image(tmp_path / "big.png")
    monkeypatch.setenv("MATTEKIT_MAX_PIXELS", "1200")
    assert io.read_image(tmp_path / "big.png").pixels.shape == (40, 30, 3)
    monkeypatch.setenv("MATTEKIT_MAX_PIXELS", "lots")
    with pytest.raises(InputError, match="MATTEKIT_MAX_PIXELS=lots is not a number"):
        io.read_image(tmp_path / "big.png")
    monkeypatch.delenv("MATTEKIT_MAX_PIXELS")
    assert 1e6 < picture.pixel_budget() < 1e11  # from free memory


def test_a_huge_exr_display_window_is_refused_before_any_allocation(tmp_path):
    header = {
        "compression": OpenEXR.ZIP_COMPRESSION,
        "type": OpenEXR.scanlineimage,
        "dataWindow": ((0, 0), (3, 3)),
        "displayWindow": ((0, 0), (59999, 59999)),
    }
    OpenEXR.File(header, {"R": np.ones((4, 4), np.float32)}).write(str(tmp_path / "wide.exr"))
    with pytest.raises(InputError, match=r"declares 60000x60000 pixels"):
        io.read_image(tmp_path / "wide.exr")


@pytest.mark.parametrize("chunk", [b"zTXt", b"iCCP"])
def test_a_png_whose_metadata_unpacks_to_hundreds_of_mb_is_named_as_such_or_read_without_its_profile(chunk, tmp_path):
    """A valid PNG with a 200 MB (unpacked) text chunk is refused as that, not as 'damaged'; one whose colour profile
    unpacks past Pillow's 1 MB limit (issue 70: refused too) is read without the profile, as sRGB, with a warning:
    its pixels, its layout and its (absent) provenance, as the same PNG without the chunk gives them."""
    import zlib

    from mattekit.io import read_layout, read_provenance

    plain = tmp_path / "plain.png"
    Image.fromarray((np.random.default_rng(3).random((4, 5, 3)) * 255).astype(np.uint8)).save(plain)
    data = plain.read_bytes()
    body = (b"Comment\x00\x00" if chunk == b"zTXt" else b"prof\x00\x00") + zlib.compress(b"a" * (200 << 20))
    packed = struct.pack(">I", len(body)) + chunk + body + struct.pack(">I", zlib.crc32(chunk + body) & 0xFFFFFFFF)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(data[:33] + packed + data[33:])  # right after IHDR
    if chunk == b"zTXt":
        with pytest.raises(
            InputError, match="chunk that unpacks to more than Pillow's safety limit; save the image again"
        ):
            read_image(bomb)
        return
    said = (
        f"{bomb}: its colour profile unpacks to more than 1 MB, Pillow's limit against decompression bombs; read "
        f"without it, as sRGB."
    )
    with pytest.warns(UserWarning, match=re.escape(said)):
        picture = read_image(bomb, integers=True)
    assert np.array_equal(picture.pixels, read_image(plain, integers=True).pixels) and picture.metadata.icc is None
    with pytest.warns(UserWarning, match=re.escape(said)):
        assert read_layout(bomb) == read_layout(plain) and read_provenance(bomb) is None


# ------------------------------------------------------------------ issue 91: a full disk and a file size limit

TOO_LARGE = "it is larger than the file size limit (ulimit -f, or the file system's own)"


def _noise_folder(tmp_path) -> Path:
    """Three noise photos whose PNGs take 58 KB each, then one of 5 KB (named so that it comes last)."""
    folder = tmp_path / "noise"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for name, shape in (
        ("a.png", (120, 160, 3)),
        ("b.png", (120, 160, 3)),
        ("c.png", (120, 160, 3)),
        ("d.png", (30, 40, 3)),
    ):
        io.write_image(folder / name, rng.random(shape, dtype=np.float32))
    return folder


def _command(*args) -> list:
    return [sys.executable, "-m", "mattekit", *args]


def _cli(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(_command(*args), capture_output=True, env=dict(os.environ, OMP_NUM_THREADS="1"), **kwargs)


def _only_whole(said: str, folder: Path, reference: Path) -> list[str]:
    """The names of the files a run ``said`` it wrote, checked to be all ``folder`` holds (no part, no temporary),
    each with the bytes of ``reference``'s file of that name (written where nothing ran short)."""
    wrote = sorted(Path(name).name for name in re.findall(r"wrote (\S+)", said))
    assert sorted(p.name for p in folder.iterdir()) == wrote, said
    assert all((folder / name).read_bytes() == (reference / name).read_bytes() for name in wrote)
    return wrote


def test_files_and_folders_on_a_full_disk_hold_only_whole_outputs(tmp_path):
    """Issue 91's target for files and folders: on a full disk, the disk-full sentence for each output that did not
    fit (exit 2 for one, 1 for a folder), and every output the run says it wrote is whole."""
    photos = _noise_folder(tmp_path)
    assert main(["enhance", str(photos), "-o", str(tmp_path / "reference"), "-q"]) == 0
    one, kept = on_a_small_disk(
        tmp_path / "one", 32, _command("enhance", photos / "a.png", "-o", tmp_path / "one/a.png"), os.environ
    )
    assert (one.returncode, one.stderr.decode()) == (
        2,
        f"mattekit: error: Cannot write {tmp_path / 'one/a.png'}: the disk is full.\n",
    )
    assert not list(kept.iterdir())
    many, kept = on_a_small_disk(
        tmp_path / "many", 160, _command("enhance", photos, "-o", tmp_path / "many/out"), os.environ
    )
    said = many.stderr.decode()
    assert many.returncode == 1 and f"Cannot write {tmp_path / 'many/out/c.png'}: the disk is full." in said, said
    assert _only_whole(said, kept / "out", tmp_path / "reference") == ["a.png", "b.png", "d.png"]


def test_files_and_folders_past_the_file_size_limit_hold_only_whole_outputs(tmp_path):
    """Under `ulimit -f` (RLIMIT_FSIZE): the too-large sentence naming the limit for each output past it (exit 2 for
    one, 1 for a folder), nothing short left, and the outputs within it whole."""
    photos = _noise_folder(tmp_path)
    assert main(["enhance", str(photos), "-o", str(tmp_path / "reference"), "-q"]) == 0

    def cap_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, 30_000))

    one = _cli("enhance", photos / "a.png", "-o", tmp_path / "one.png", preexec_fn=cap_files)
    assert (one.returncode, one.stderr.decode()) == (
        2,
        f"mattekit: error: Cannot write {tmp_path / 'one.png'}: {TOO_LARGE}.\n",
    )
    assert sorted(p.name for p in tmp_path.iterdir() if "one" in p.name) == []
    many = _cli("enhance", photos, "-o", tmp_path / "out", preexec_fn=cap_files)
    said = many.stderr.decode()
    assert many.returncode == 1 and said.count(TOO_LARGE) == 3, said
    assert _only_whole(said, tmp_path / "out", tmp_path / "reference") == ["d.png"]


@pytest.mark.slow
def test_a_folder_a_models_run_fills_a_full_disk_with_holds_only_whole_outputs(shared, tmp_path):
    """The same for a model's run of several photos, whose cut-outs the pipeline's writers finish and write."""
    env = dict(os.environ, MATTEKIT_MIRROR=str(shared / "weights"), MATTEKIT_OFFLINE="1", OMP_NUM_THREADS="1")
    photos, remove = _noise_folder(tmp_path), ("remove", "--model", "u2netp", "-q")
    assert subprocess.run(_command(*remove, photos, "-o", tmp_path / "reference"), env=env).returncode == 0
    many, kept = on_a_small_disk(
        tmp_path / "many", 160, _command(*remove[:3], photos, "-o", tmp_path / "many/out"), env
    )
    said = many.stderr.decode()
    assert many.returncode == 1 and "the disk is full." in said, said
    assert 0 < len(_only_whole(said, kept / "out", tmp_path / "reference")) < 4
