"""The weights cache against a real local HTTP server serving the real checkpoints (no mocks): mirrors (a folder,
HTTP) and the official URL, resumed and restarted downloads, tampered and unpinned files, offline, unreachable, silent
and failing servers, size caps, and pickled objects refused."""

from __future__ import annotations

import json
import socket

import pytest
import torch

from mattekit.weights import download
from mattekit.errors import WeightsError
from mattekit.weights import WeightFile, cache_dir, cached_path, fetch, is_cached, load_state_dict_file, verify
from weight_files import BIG, NAME, assert_cached_ok, assert_sentence, flip_byte, official, tampered_copy


def test_cache_dir_follows_mattekit_home(tmp_path, env):
    env.setenv("MATTEKIT_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "weights"
    env.delenv("MATTEKIT_HOME")
    assert cache_dir().name == "weights" and "mattekit" in str(cache_dir())


def test_folder_mirror_needs_no_network(server, shared, sums, env):
    env.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    wf = official(server, NAME, sums)
    assert not is_cached(wf) and verify(wf) == (False, f"{NAME}: not downloaded")
    path = fetch(wf, progress=False)
    assert_cached_ok(wf, path, sums)
    env.setenv("MATTEKIT_MIRROR", str(shared / "nowhere"))
    assert fetch(wf, progress=False) == path  # second call: straight from the cache
    assert server.seen == []
    assert len(load_state_dict_file(path)) > 0


def test_http_mirror(server, sums, env):
    env.setenv("MATTEKIT_MIRROR", server.base + "/mirror/")
    wf = official(server, NAME, sums, size=len((server.routes["mirror"] / NAME).read_bytes()))
    assert_cached_ok(wf, fetch(wf), sums)
    assert server.seen == [(f"/mirror/{NAME}", None)]


@pytest.mark.parametrize("kind", ["http", "folder"])
def test_falls_back_to_official_url(server, sums, env, kind):
    env.setenv("MATTEKIT_MIRROR", server.base + "/empty" if kind == "http" else str(server.routes["empty"]))
    wf = official(server, NAME, sums)
    assert_cached_ok(wf, fetch(wf, progress=False), sums)
    paths = [path for path, _ in server.seen]
    assert paths == ([f"/empty/{NAME}"] if kind == "http" else []) + [f"/official/{NAME}"]


@pytest.mark.parametrize("honour_range", [True, False])
def test_resumes_partial_download(server, shared, sums, env, honour_range):
    server.honour_range = honour_range
    wf = official(server, BIG, sums)
    cache_dir().mkdir(parents=True, exist_ok=True)
    part = cached_path(wf).with_name(BIG + ".part")
    part.write_bytes((shared / "weights" / BIG).read_bytes()[:700_000])
    assert_cached_ok(wf, fetch(wf, progress=False), sums)
    assert server.seen == [(f"/official/{BIG}", "bytes=700000-")]  # a server ignoring Range: start over


def test_stale_complete_part_restarts(server, shared, sums, env):
    wf = official(server, NAME, sums)
    cache_dir().mkdir(parents=True, exist_ok=True)
    cached_path(wf).with_name(NAME + ".part").write_bytes((shared / "weights" / NAME).read_bytes() + b"junk")
    assert_cached_ok(wf, fetch(wf, progress=False), sums)
    assert server.seen[-1] == (f"/official/{NAME}", None)


def test_tampered_download_is_refused(server, shared, sums, env, tmp_path):
    tampered_copy(shared / "weights" / NAME, tmp_path / "bad")
    server.routes["bad"] = tmp_path / "bad"
    wf = WeightFile(NAME, f"{server.base}/bad/{NAME}", sums[NAME])
    with pytest.raises(WeightsError, match="failed verification") as err:
        fetch(wf, progress=False)
    message = str(err.value)
    assert_sentence(message)
    assert f"official URL {wf.url}" in message and "deleted, not cached" in message and sums[NAME] in message
    assert not is_cached(wf) and not cached_path(wf).with_name(NAME + ".part").exists()

    env.setenv("MATTEKIT_MIRROR", f"{server.base}/bad")  # a bad mirror falls back to the official file
    good = official(server, NAME, sums)
    assert_cached_ok(good, fetch(good, progress=False), sums)
    assert [p for p, _ in server.seen][-2:] == [f"/bad/{NAME}", f"/official/{NAME}"]


def test_unknown_sha_is_recorded_then_enforced(server, sums, env):
    wf = official(server, NAME, sums, sha256=None)
    path = fetch(wf, progress=False)
    assert json.loads((cache_dir() / "hashes.json").read_text()) == {NAME: sums[NAME]}
    ok, status = verify(wf)
    assert ok and "recorded" in status
    flip_byte(path)
    ok, status = verify(wf)
    assert not ok and "mismatch" in status and "\n" not in status
    with pytest.raises(WeightsError, match="failed its sha256 check") as err:
        fetch(wf, progress=False)
    assert_sentence(str(err.value))
    assert "delete it" in str(err.value)


def test_offline_without_cache(server, shared, sums, env):
    env.setenv("MATTEKIT_OFFLINE", "1")
    env.setenv("MATTEKIT_MIRROR", f"{server.base}/mirror")
    wf = official(server, NAME, sums)
    with pytest.raises(WeightsError, match="MATTEKIT_OFFLINE=1 forbids downloading") as err:
        fetch(wf, progress=False)
    assert_sentence(str(err.value))
    assert server.seen == [] and not is_cached(wf)
    env.setenv("MATTEKIT_MIRROR", str(shared / "weights"))  # a local folder is still allowed offline
    assert_cached_ok(wf, fetch(wf, progress=False), sums)


def test_unreachable_server(sums, env):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    wf = WeightFile(NAME, f"http://127.0.0.1:{port}/{NAME}", sums[NAME])
    with pytest.raises(WeightsError, match="Could not get the weights file") as err:
        fetch(wf, progress=False)
    assert_sentence(str(err.value))
    assert wf.url in str(err.value) and "unreachable" in str(err.value)
    assert not is_cached(wf)


def test_silent_server_times_out(sums, env):
    env.setattr(download, "TIMEOUT", 0.5)
    with socket.socket() as sock:  # listens, never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        wf = WeightFile(NAME, f"http://127.0.0.1:{sock.getsockname()[1]}/{NAME}", sums[NAME])
        with pytest.raises(WeightsError, match="timed out") as err:
            fetch(wf, progress=False)
    assert_sentence(str(err.value))


def test_http_error_is_a_sentence(server, sums, env):
    wf = WeightFile(NAME, f"{server.base}/official/missing.pth", sums[NAME])
    with pytest.raises(WeightsError, match="HTTP 404") as err:
        fetch(wf, progress=False)
    assert_sentence(str(err.value))


def test_a_download_stops_at_the_catalog_size(server, shared, sums, env, tmp_path):
    """A source sending more than the catalog's size (a mirror streaming without end) is cut off and deleted."""
    big = shared / "weights" / BIG  # served under NAME's name: 1.7 MB for a 445 kB file
    (tmp_path / "huge").mkdir()
    (tmp_path / "huge" / NAME).symlink_to(big)
    server.routes["huge"] = tmp_path / "huge"
    server.handle_error = lambda request, address: None  # the client hanging up early is the point
    size = (shared / "weights" / NAME).stat().st_size
    wf = WeightFile(NAME, f"{server.base}/huge/{NAME}", sums[NAME], size=size)
    with pytest.raises(WeightsError, match=f"more than the {size} expected") as err:
        fetch(wf, progress=False)
    assert_sentence(str(err.value))
    assert not cached_path(wf).exists() and not cached_path(wf).with_name(NAME + ".part").exists()


def test_a_download_without_a_known_size_stops_at_the_cap(server, sums, env, monkeypatch):
    monkeypatch.setattr("mattekit.weights.download.UNKNOWN_SIZE_CAP", 100_000)
    wf = WeightFile(BIG, f"{server.base}/official/{BIG}", sums[BIG])
    with pytest.raises(WeightsError, match="more than the 100000 expected"):
        fetch(wf, progress=False)
    assert not cached_path(wf).with_name(BIG + ".part").exists()


def test_a_weights_file_with_pickled_objects_is_one_sentence(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"weight": torch.zeros(2), "extra": Payload()}, tmp_path / "evil.pth")
    (tmp_path / "garbage.pth").write_bytes(b"\x80\x04not a checkpoint" * 10)
    for name in ("evil.pth", "garbage.pth"):
        with pytest.raises(WeightsError, match="cannot be loaded safely") as err:
            load_state_dict_file(tmp_path / name)
        assert_sentence(str(err.value))
        assert "weights_only" not in str(err.value)


def test_a_cached_file_is_read_once_per_version_at_its_uses_and_a_changed_one_refused(server, sums, env, monkeypatch):
    """Each use of a cached file with a known sha256 (every run's start) checks it against the digest remembered for
    that version of the file (size, times, inode: :func:`mattekit.weights.file_sha256`), so IS-Net's 176 MB is not
    read again at each run; a rewrite, even with its old modification time put back, is read and refused."""
    import os
    import time

    from mattekit.weights import cache

    reads, real = [], cache.file_digests
    monkeypatch.setattr(
        cache, "file_digests", lambda path, *names, **kw: reads.append(path) or real(path, *names, **kw)
    )
    wf = official(server, NAME, sums)
    path = fetch(wf, progress=False)  # downloaded and checked
    monkeypatch.setattr(cache, "SETTLED_NS", 30_000_000)  # 30 ms, waited for here rather than 2 s
    time.sleep(0.05)
    reads.clear()
    assert fetch(wf, progress=False) == path and len(reads) == 1  # this version read once, then remembered
    assert fetch(wf, progress=False) == path and fetch(wf, progress=False) == path and len(reads) == 1
    time.sleep(0.05)  # past the file system's clock tick, so that the change time moves
    before = path.stat()
    flip_byte(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(WeightsError, match="failed its sha256 check"):
        fetch(wf, progress=False)
    assert len(reads) == 2 and not verify(wf)[0]
