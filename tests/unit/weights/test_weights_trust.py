"""A weights file on disk is trusted only for bytes mattekit read: a forged identity record in digests.json, a bit flip
under kept metadata and a tampered-then-restored file never give an output (one sentence, exit 2), a failed
``models verify`` is refused by later runs, an ONNX export is named by the bytes it was built from, and a file whose
change time is fresh is not remembered."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mattekit import catalog, engines, io, weights
from mattekit.errors import WeightsCheckFailed
from mattekit.weights import cache, cache_dir

MODEL, FILE = "sinet-portrait", "SINet.pth"


@pytest.fixture
def run(mirror, tmp_path, capsys, monkeypatch):
    """run(name) -> (exit code, standard error's lines, the output's pixels or None): ``mattekit remove`` of a small
    portrait with sinet-portrait into ``name``. The cache's files are remembered 30 ms after they change (not 2 s),
    and it keeps ONNX exports of its own."""
    from mattekit.cli import main

    monkeypatch.setattr(cache, "SETTLED_NS", 30_000_000)
    (cache_dir() / "onnx").unlink()  # the session's shared exports stay out of this test's cache
    (cache_dir() / FILE).write_bytes((mirror / FILE).read_bytes())  # a copy of its own: never a link to the mirror's
    photo = tmp_path / "photo.png"
    Image.open(mirror.parent / "data/grabcut50/im/106024.jpg").convert("RGB").resize((48, 64)).save(photo)

    def run_once(name: str):
        out = tmp_path / name
        code = main(["remove", str(photo), "-o", str(out), "--model", MODEL, "-q"])
        lines = capsys.readouterr().err.strip().splitlines()
        return code, lines, io.read_image(out).pixels if out.exists() else None

    return run_once


def _settle(path: Path) -> None:
    """Wait until ``path``'s last change is older than the settle window (30 ms here)."""
    time.sleep(0.05)


def _fetched() -> Path:
    """The cached weights of sinet-portrait, fetched (checked whole) and, once settled, remembered."""
    path = weights.model_file(MODEL, catalog.load().get(MODEL).files)
    _settle(path)
    assert weights.file_sha256(path)  # read and remembered
    return path


def _replace(path: Path, data: bytes) -> None:
    """Put ``data`` at ``path`` as a new file (a new inode), as an editor or a copy does."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _flipped(data: bytes) -> bytes:
    return data[:-1000] + bytes([data[-1000] ^ 0x80]) + data[-999:]


def _identity(path: Path) -> list[int]:
    st = path.resolve().stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _tamper_and_forge(path: Path, good: bytes) -> None:
    """Put ``good`` with one bit flipped at ``path`` and edit digests.json to give the tampered file's identity the
    digest remembered for the good one (the red team's forged record); settled, as a new process finds it."""
    _replace(path, _flipped(good))
    record = json.loads((cache_dir() / "digests.json").read_text())
    record[str(path.resolve())]["identity"] = _identity(path)
    (cache_dir() / "digests.json").write_text(json.dumps(record))
    cache._DIGESTS.clear()
    _settle(path)


def _refused(code: int, lines: list[str], pixels, path: Path) -> None:
    assert code == 2 and pixels is None, (code, lines)
    assert len(lines) == 1 and f"The weights file {path} on disk failed its sha256 check" in lines[0], lines
    assert f"so it was not used; delete it, then `mattekit models pull {MODEL}` fetches it again." in lines[0]


def test_a_forged_identity_record_does_not_let_a_tampered_file_run(run, mirror):
    """digests.json edited to give a tampered file's identity the pinned digest is a miss: the file is read whole and
    refused (the red team's tampered SINet ran with exit 0), and ``models verify`` says FAILED."""
    from mattekit.cli import main

    path = _fetched()
    assert (cache_dir() / "digests.key").stat().st_mode & 0o077 == 0  # the key the records are signed with: the owner's
    _tamper_and_forge(path, path.read_bytes())
    _refused(*run("forged.png"), path)
    assert main(["models", "verify", MODEL]) == 1


def test_a_bit_flip_under_kept_metadata_is_refused_and_a_failed_verify_holds(run, mirror, capsys, monkeypatch):
    """A byte flipped in place with the modification time put back is read whole (its change time moved) and refused;
    a flip the record cannot see (bit rot under a record made for this very version) is refused once ``models verify``
    read it, and at the first use after the record's RECHECK_NS."""
    from mattekit.cli import main

    path = _fetched()
    data = path.read_bytes()
    assert weights.file_sha256(path) == hashlib.sha256(data).hexdigest()
    before = path.stat()
    assert before.st_nlink == 1  # (written in place below)
    path.write_bytes(_flipped(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    _settle(path)
    _refused(*run("flipped.png"), path)

    rotted = _identity(path)
    cache.remember(path.resolve(), rotted, hashlib.sha256(data).hexdigest())  # the good digest, for the rotted bytes
    cache._DIGESTS.clear()
    recheck = cache.RECHECK_NS
    monkeypatch.setattr(cache, "RECHECK_NS", 0)  # the record is past its time: read whole again
    _refused(*run("recheck.png"), path)
    monkeypatch.setattr(cache, "RECHECK_NS", recheck)
    cache.remember(path.resolve(), rotted, hashlib.sha256(data).hexdigest())
    cache._DIGESTS.clear()
    assert main(["models", "verify", MODEL]) == 1 and "FAILED" in capsys.readouterr().out
    cache._DIGESTS.clear()
    _refused(*run("after-verify.png"), path)


@pytest.mark.slow  # 2 runs that load the model (~7 s here)
def test_a_tampered_then_restored_file_gives_no_output_and_leaves_no_export(run, mirror):
    """A tampered file with a forged record is refused before any export is made from it, so once the good bytes are
    back the run gives what it gave before (the red team's export, named by the claimed digest, kept giving empty
    mattes after the restore)."""
    code, _, good = run("good.png")
    assert code == 0 and good is not None
    path = cache_dir() / FILE
    original = path.read_bytes()
    for export in (cache_dir() / "onnx").glob("*.onnx"):  # a cache without the export: a new torch, say
        export.unlink()
    _settle(path)
    weights.file_sha256(path)
    _tamper_and_forge(path, original)
    _refused(*run("tampered.png"), path)
    assert not list((cache_dir() / "onnx").glob("*.onnx"))
    _replace(path, original)
    cache._DIGESTS.clear()
    code, lines, restored = run("restored.png")
    assert code == 0 and np.array_equal(restored, good), lines


def test_an_onnx_export_is_named_by_the_bytes_it_was_built_from(mirror, tmp_path):
    """A weights file that changes between its check and the load that builds the export gives no export: the one
    made would carry the checked digest's name for other weights."""
    entry = catalog.load().get(MODEL)
    path = tmp_path / FILE
    path.write_bytes((mirror / FILE).read_bytes())
    (cache_dir() / "onnx").unlink()
    made = engines.recipe_for(entry, path)

    def load():
        _replace(path, _flipped(path.read_bytes()))  # another process writes the file meanwhile
        return engines.load_net(entry, path)

    with pytest.raises(WeightsCheckFailed, match=f"The weights file {path} changed after it was checked"):
        engines.onnx_engine(load, made.index, made.weights, made.spec, made.example, made.dynamic_size, label=MODEL)
    assert not list((cache_dir() / "onnx").glob("*.onnx"))


def test_a_file_whose_change_time_is_fresh_is_not_remembered(tmp_path, monkeypatch):
    """A file whose modification time is old but whose change time is within SETTLED_NS (its times set back just
    now, or written in this clock tick) is read at every use: a rewrite in the same tick could keep its identity."""
    reads, real = [], cache.file_digests
    monkeypatch.setattr(
        cache, "file_digests", lambda path, *names, **kw: reads.append(path) or real(path, *names, **kw)
    )
    path = tmp_path / "weights.bin"
    path.write_bytes(b"weights")
    old = time.time_ns() - 60 * 10**9
    os.utime(path, ns=(old, old))  # the modification time a minute back; the change time is now
    for _ in range(3):
        cache._DIGESTS.clear()
        assert weights.file_sha256(path) == hashlib.sha256(b"weights").hexdigest()
    assert len(reads) == 3
