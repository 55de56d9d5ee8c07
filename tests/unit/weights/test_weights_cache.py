"""The weights cache shared and checked: processes fetching at once take turns, a mirror file with other bytes listed
as bad and never offered, a named weights file that cannot be one said why, and a file's hash read once per version
and remembered across processes."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from mattekit import weights
from mattekit.fsutil import sha256_file
from mattekit.weights import WeightFile, cache_dir, cached_path, fetch
from weight_files import BIG, NAME, tampered_copy


def _fetch_in_a_process(files: list[WeightFile], start, results) -> None:
    """Child process: wait for the others, then fetch each file; put (ok, path or error) per file."""
    start.wait()
    for wf in files:
        try:
            results.put((True, str(fetch(wf, progress=False))))
        except Exception as exc:  # reported to the parent, which asserts on it
            results.put((False, f"{type(exc).__name__}: {exc}"))


@pytest.mark.slow  # ~12 s: 3 x 4 spawned processes importing torch
def test_processes_sharing_the_cache_take_turns(shared, sums, env, tmp_path):
    """Ray workers and parallel CLI runs share one cache. Four processes fetching the same four files at
    the same moment from a mirror folder all get verified files (a shared ``.part`` used to vanish under
    one of them: FileNotFoundError), and the hashes two unpinned files record on first use both stay."""
    import multiprocessing

    env.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    unpinned = ["ExtremeC3.pth", "realesr-animevideov3.pth"]
    files = [
        WeightFile(name, f"https://example.invalid/{name}", None if name in unpinned else sums[name])
        for name in (NAME, BIG, *unpinned)
    ]
    context = multiprocessing.get_context("spawn")
    for attempt in range(3):
        env.setenv("MATTEKIT_HOME", str(tmp_path / f"home{attempt}"))
        start, results = context.Barrier(4), context.Queue()
        children = [
            context.Process(target=_fetch_in_a_process, args=(files[i:] + files[:i], start, results)) for i in range(4)
        ]
        for child in children:
            child.start()
        outcomes = [results.get(timeout=120) for _ in range(4 * len(files))]
        for child in children:
            child.join(60)
        assert all(ok for ok, _ in outcomes), [message for ok, message in outcomes if not ok]
        assert {Path(path) for _, path in outcomes} == {cached_path(wf) for wf in files}
        assert all(sha256_file(cached_path(wf)) == sums[wf.name] for wf in files)
        assert json.loads((cache_dir() / "hashes.json").read_text()) == {name: sums[name] for name in unpinned}
        litter = sorted(p.name for p in cache_dir().iterdir() if p.name.endswith((".lock", ".part")))
        assert litter == [".downloads.lock", "hashes.json.lock"], litter  # one lock each, not one per model fetched


def test_a_mirror_file_with_other_bytes_is_listed_as_bad_and_never_offered(shared, env, tmp_path, capsys):
    """`models list` says a mirror file of the right name and size but other bytes is not usable, and the
    "available here" advice of a missing model never names it (realesr-animevideov3 was offered, then failed)."""
    from mattekit import catalog
    from mattekit.cli import main

    env.setenv("MATTEKIT_HOME", str(tmp_path / "home"))
    env.setenv("MATTEKIT_OFFLINE", "1")
    env.setenv("MATTEKIT_MIRROR", str(tmp_path / "mirror"))
    tampered_copy(shared / "weights" / "csnet-L-x2.pth.tar", tmp_path / "mirror")
    shutil.copy(shared / "weights" / "SINet.pth", tmp_path / "mirror")
    cat = catalog.load()
    assert cat.availability(cat.get("csnet-sod")) == "bad in mirror"
    assert cat.availability(cat.get("sinet-portrait")) == "in mirror"
    assert [m.name for m, _ in cat.available("segment")] == ["sinet-portrait"]
    assert main(["models", "list", "--task", "segment"]) == 0
    listing = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert " bad in mirror " in listing["csnet-sod"] and " in mirror " in listing["sinet-portrait"]
    assert (
        main(
            [
                "mask-preview",
                str(shared / "data" / "grabcut50" / "im" / "teddy.jpg"),
                "--model",
                "csnet-sod",
                "-o",
                str(tmp_path / "out.png"),
            ]
        )
        == 2
    )
    error = capsys.readouterr().err
    assert "that is here with --model NAME (sinet-portrait)" in error


@pytest.mark.parametrize("kind", ["missing", "folder", "device", "empty"])
def test_a_named_weights_file_that_cannot_be_one_says_why(kind, tmp_path, env, capsys):
    """--weights and `models add` say what is wrong with the path (a folder or /dev/zero was 'does not exist')."""
    from mattekit.cli import main

    env.setenv("MATTEKIT_HOME", str(tmp_path / "home"))
    (tmp_path / "empty.pth").write_bytes(b"")
    path = {
        "missing": tmp_path / "nope.pth",
        "folder": tmp_path,
        "device": Path("/dev/zero"),
        "empty": tmp_path / "empty.pth",
    }[kind]
    words = {
        "missing": "does not exist.",
        "folder": "is a folder; name the weights file inside it.",
        "device": "is not a regular file (a device or a pipe)",
        "empty": "is empty.",
    }[kind]
    photo = tmp_path / "in.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(photo)
    for argv in (
        ["models", "add", "u2netp", str(path)],
        ["mask-preview", str(photo), "--model", "u2netp", "--weights", str(path), "-o", str(tmp_path / "o.png")],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err == f"mattekit: error: Weights file {path} {words}" or (words in err and "\n" not in err), err


def test_a_file_is_hashed_once_per_version_and_remembered_across_processes(tmp_path, monkeypatch):
    """weights.file_sha256 (provenance's and the export cache's name for the weights): read once and remembered in the
    cache's digests.json, so a later process (this one's memory cleared) does not read the file again; a rewrite to
    the same size with the old modification time put back is read again (its change time moved); an unreadable
    record is only a miss; a file changed within the last SETTLED_NS is read at every call (a rewrite in the same
    clock tick would keep its times)."""
    import os
    import time

    from mattekit.weights import cache

    monkeypatch.setenv("MATTEKIT_HOME", str(tmp_path / "home"))
    reads, real = [], cache.file_digests
    monkeypatch.setattr(cache, "file_digests", lambda path, *names: reads.append(path) or real(path, *names))
    path = tmp_path / "weights.bin"
    path.write_bytes(b"first")
    assert weights.file_sha256(path) == weights.file_sha256(path) and len(reads) == 2  # just written: not remembered
    reads.clear()
    monkeypatch.setattr(cache, "SETTLED_NS", 30_000_000)  # 30 ms, waited for below rather than 2 s
    time.sleep(0.05)
    assert weights.file_sha256(path) == hashlib.sha256(b"first").hexdigest() and len(reads) == 1
    cache._DIGESTS.clear()  # as a new process would start
    assert weights.file_sha256(path) == hashlib.sha256(b"first").hexdigest() and len(reads) == 1
    before = path.stat()
    time.sleep(0.05)  # past the file system's clock tick, so that the change time moves
    path.write_bytes(b"third")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    time.sleep(0.05)  # settled again
    cache._DIGESTS.clear()
    assert weights.file_sha256(path) == hashlib.sha256(b"third").hexdigest() and len(reads) == 2
    (cache_dir() / "digests.json").write_text("not json")
    cache._DIGESTS.clear()
    assert weights.file_sha256(path) == hashlib.sha256(b"third").hexdigest() and len(reads) == 3
    rewritten = json.loads((cache_dir() / "digests.json").read_text())  # the unreadable record replaced
    assert rewritten[str(path.resolve())]["sha256"] == hashlib.sha256(b"third").hexdigest()
