"""Weights files for the weights tests: the shared real checkpoints they fetch (NAME, BIG, rembg's RMBG), their
WeightFile as the server's official URL gives it or pinned by rembg's md5 only, tampered copies, and checks of a
cached file and of a one-sentence message."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mattekit.fsutil import sha256_file
from mattekit.weights import WeightFile, cache_dir, cached_path, is_cached, verify


NAME = "SINet.pth"  # 445 kB


BIG = "RFDN_AIM.pth"  # 1.7 MB, for resuming


def official(server, name, sums, **kw) -> WeightFile:
    return WeightFile(name, f"{server.base}/official/{name}", kw.pop("sha256", sums[name]), **kw)


def tampered_copy(src: Path, folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / src.name).write_bytes(bytes(data))
    return folder / src.name


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))


def assert_sentence(message: str) -> None:
    assert "\n" not in message and message.endswith("."), message


def assert_cached_ok(wf: WeightFile, path: Path, sums) -> None:
    assert path == cached_path(wf) and path.parent == cache_dir() and is_cached(wf)
    assert sha256_file(path) == sums[wf.name]
    assert not path.with_name(path.name + ".part").exists()
    assert verify(wf)[0]


RMBG = "u2netp.onnx"  # rembg's release file, byte-identical in shared/weights and pinned in the catalog


def rembg_copy(shared, folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / RMBG).write_bytes((shared / "weights" / RMBG).read_bytes())
    return folder / RMBG


def md5_pinned(wf: WeightFile) -> WeightFile:
    """``wf`` as the catalog lists rembg's other releases: its sha256 left out, rembg's md5 the only pin."""
    assert wf.md5 and wf.sha256
    return dataclasses.replace(wf, sha256=None)
