"""The weights cache against a real local HTTP server serving the real checkpoints (no mocks)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from mattekit import weights
from mattekit.weights import download
from mattekit.errors import WeightsError
from mattekit.fsutil import sha256_file
from mattekit.weights import WeightFile, cache_dir, cached_path, fetch, is_cached, load_state_dict_file, verify

NAME = "SINet.pth"  # 445 kB
BIG = "RFDN_AIM.pth"  # 1.7 MB, for resuming


class _Handler(BaseHTTPRequestHandler):
    """GET /<route>/<name> serves server.routes[route]/name, honouring `Range: bytes=N-`."""

    def do_GET(self):
        srv = self.server
        srv.seen.append((self.path, self.headers.get("Range")))
        route, _, name = self.path.lstrip("/").partition("/")
        folder = srv.routes.get(route)
        if folder is None or "/" in name or not (folder / name).is_file():
            return self.send_error(404)
        data = (folder / name).read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(match[1]) if match and srv.honour_range else 0
        if start >= len(data) > 0:
            return self.send_error(416)
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server(shared, tmp_path):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    (tmp_path / "empty").mkdir()
    srv.routes = {"official": shared / "weights", "mirror": shared / "weights", "empty": tmp_path / "empty"}
    srv.seen, srv.honour_range = [], True
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


@pytest.fixture(scope="module")
def sums(shared) -> dict[str, str]:
    lines = (shared / "weights" / "SHA256SUMS").read_text().split("\n")
    return {name: digest for digest, name in (line.split() for line in lines if line.strip())}


@pytest.fixture
def env(monkeypatch):
    monkeypatch.delenv("MATTEKIT_MIRROR", raising=False)
    monkeypatch.delenv("MATTEKIT_OFFLINE", raising=False)
    return monkeypatch


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
    with pytest.raises(WeightsError, match="does not match its sha256") as err:
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


# ------------------------------------------------------------------ a user's rembg folder, `models import`

RMBG = "u2netp.onnx"  # rembg's release file, byte-identical in shared/weights and pinned in the catalog


def rembg_copy(shared, folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / RMBG).write_bytes((shared / "weights" / RMBG).read_bytes())
    return folder / RMBG


def test_rembg_folder_follows_rembgs_own_rule(tmp_path, env):
    env.setenv("U2NET_HOME", str(tmp_path / "u2"))
    assert weights.rembg_dir() == tmp_path / "u2"
    env.delenv("U2NET_HOME")
    env.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert weights.rembg_dir() == tmp_path / "xdg" / ".u2net"
    env.delenv("XDG_DATA_HOME")
    env.setenv("HOME", str(tmp_path))
    assert weights.rembg_dir() == tmp_path / ".u2net"


def test_a_rembg_folder_file_is_used_offline_after_its_hash_is_checked(shared, sums, env, tmp_path):
    from mattekit import catalog, runtime

    env.setenv("MATTEKIT_OFFLINE", "1")
    env.setenv("U2NET_HOME", str(tmp_path / "u2"))
    source = rembg_copy(shared, tmp_path / "u2")
    cat = catalog.load()
    entry = cat.get("u2netp")
    assert cat.availability(entry) == "in rembg folder"
    path = weights.model_file("u2netp", entry.files, progress=False)
    assert path == cached_path(entry.files[1]) and sha256_file(path) == sums[RMBG]
    assert path.samefile(source)  # same file system: a hard link, no second copy on disk
    assert cat.availability(entry) == "on disk"
    predictor = runtime.ModelCache().get("u2netp", "segment", "cpu")  # the ONNX release runs as the model
    assert predictor.weights_path == path


def test_an_unpinned_file_in_the_rembg_folder_is_not_taken(shared, env, tmp_path):
    env.setenv("MATTEKIT_OFFLINE", "1")
    env.setenv("U2NET_HOME", str(tmp_path))
    source = rembg_copy(shared, tmp_path)
    wf = WeightFile(RMBG, f"https://example.invalid/{RMBG}")  # neither sha256 nor md5: nothing says what it should be
    assert weights.local_folder(wf) is None
    with pytest.raises(WeightsError, match="MATTEKIT_OFFLINE=1") as err:
        fetch(wf, progress=False)
    assert "rembg folder" not in str(err.value) and source.is_file() and not is_cached(wf)


def test_a_rembg_folder_file_with_another_hash_is_refused_and_the_download_goes_on(server, shared, sums, env, tmp_path):
    env.setenv("U2NET_HOME", str(tmp_path / "u2"))
    bad = tampered_copy(shared / "weights" / RMBG, tmp_path / "u2")
    wf = official(server, RMBG, sums)
    with pytest.warns(UserWarning, match=re.escape(f"{bad} is not the catalog's {RMBG} (sha256 ")) as caught:
        assert_cached_ok(wf, fetch(wf, progress=False), sums)
    assert_sentence(str(caught[0].message))
    assert server.seen == [(f"/official/{RMBG}", None)] and bad.is_file()

    cached_path(wf).unlink()
    env.setenv("MATTEKIT_OFFLINE", "1")
    with pytest.warns(UserWarning), pytest.raises(WeightsError, match="MATTEKIT_OFFLINE=1") as err:
        fetch(wf, progress=False)
    assert_sentence(str(err.value))
    assert f"rembg folder {tmp_path / 'u2'} (failed verification" in str(err.value) and "models import" in str(
        err.value
    )
    assert not is_cached(wf)


def test_a_bad_rembg_file_is_one_warning_line_then_one_error_line(shared, env, tmp_path, capsys):
    from mattekit.cli import main

    env.setenv("MATTEKIT_OFFLINE", "1")
    env.setenv("U2NET_HOME", str(tmp_path))
    bad = tampered_copy(shared / "weights" / RMBG, tmp_path)
    assert main(["models", "pull", "u2netp"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"mattekit: warning: {bad} is not the catalog's {RMBG} (sha256 ") and len(lines) == 2
    assert (
        lines[1].startswith("mattekit: error: None of the 2 weight files could be had") and "models import" in lines[1]
    )


def test_models_import_matches_files_by_sha256(shared, sums, env, tmp_path, capsys):
    from mattekit.cli import main

    env.setenv("MATTEKIT_OFFLINE", "1")
    folder = tmp_path / "mine"
    good = rembg_copy(shared, folder)
    bad = tampered_copy(shared / "weights" / RMBG, tmp_path / "bad")
    (folder / "notes.txt").write_text("not weights\n")
    assert main(["models", "import", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == f"{bad}: no catalog model has this file (sha256 {sha256_file(bad)[:16]}…)\n"
    assert err.startswith("mattekit: error: No file among the 1 read matches") and err.count("\n") == 1
    assert not (cache_dir() / RMBG).exists()
    assert main(["models", "import", str(folder), str(shared / "weights" / "SINet.pth")]) == 0
    lines = capsys.readouterr().out.splitlines()
    notes = folder / "notes.txt"
    assert lines[0] == f"{notes}: no catalog model has this file (sha256 {sha256_file(notes)[:16]}…)"
    assert lines[1] == f"{good}: imported as u2netp ({cache_dir() / RMBG})"
    assert lines[2].startswith(f"{shared / 'weights' / 'SINet.pth'}: imported as sinet-portrait") and len(lines) == 3
    assert sha256_file(cache_dir() / RMBG) == sums[RMBG] and sha256_file(cache_dir() / "SINet.pth") == sums["SINet.pth"]
    assert main(["models", "list", "--task", "segment"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "on disk" in rows["u2netp"] and "on disk" in rows["sinet-portrait"]
    assert main(["models", "import", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err == f"mattekit: error: {tmp_path / 'nowhere'} does not exist.\n"


# ------------------------------------------------------------------ files pinned by rembg's md5 only


def md5_pinned(wf: WeightFile) -> WeightFile:
    """``wf`` as the catalog lists rembg's other releases: its sha256 left out, rembg's md5 the only pin."""
    assert wf.md5 and wf.sha256
    return dataclasses.replace(wf, sha256=None)


@pytest.fixture
def md5_catalog(tmp_path, env):
    """$MATTEKIT_CATALOG: the real catalog with the sha256 of u2netp.onnx deleted, so that its md5 (rembg's pin,
    as the catalog has it) is the only pin, like u2net.onnx's, u2net_human_seg.onnx's and isnet-general-use.onnx's."""
    from mattekit import catalog

    text = catalog.CATALOG_PATH.read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if line.lstrip().startswith(f'{{ name = "{RMBG}"'))
    assert ', md5 = "' in line
    path = tmp_path / "catalog.toml"
    path.write_text(text.replace(line, re.sub(r' sha256 = "[0-9a-f]{64}",', "", line)), encoding="utf-8")
    env.setenv("MATTEKIT_CATALOG", str(path))
    catalog.load.cache_clear()
    wf = catalog.load().get("u2netp").files[1]
    assert wf.name == RMBG and wf.sha256 is None and wf.md5
    return wf


def test_the_catalogs_md5_of_u2netp_onnx_lets_rembgs_file_in_and_records_its_sha256(shared, sums, env, tmp_path):
    """The real catalog entry's md5 against the real file (no hash computed here): taken from rembg's folder offline,
    its sha256 recorded on first use and checked from then on."""
    from mattekit import catalog

    env.setenv("MATTEKIT_OFFLINE", "1")
    env.setenv("U2NET_HOME", str(tmp_path / "u2"))
    source = rembg_copy(shared, tmp_path / "u2")
    wf = md5_pinned(catalog.load().get("u2netp").files[1])
    assert weights.local_folder(wf) == "rembg folder" and weights.pinned_sha256s([wf]) == set()
    path = fetch(wf, progress=False)
    assert path == cached_path(wf) and path.samefile(source)
    assert json.loads((cache_dir() / "hashes.json").read_text()) == {RMBG: sums[RMBG]}
    assert weights.pinned_sha256s([wf]) == {sums[RMBG]}
    ok, status = verify(wf)
    assert ok and status == f"{RMBG}: ok (sha256 {sums[RMBG][:16]}…, md5 is rembg's pin)"
    assert fetch(wf, progress=False) == path  # now checked against the recorded sha256 too


def test_a_model_pinned_by_md5_runs_from_rembgs_folder_and_is_not_marked_derived(
    shared, sums, env, tmp_path, md5_catalog
):
    from mattekit import catalog, runtime

    env.setenv("MATTEKIT_OFFLINE", "1")
    env.setenv("U2NET_HOME", str(tmp_path / "u2"))
    rembg_copy(shared, tmp_path / "u2")
    entry = catalog.load().get("u2netp")
    assert catalog.load().availability(entry) == "in rembg folder"
    predictor = runtime.ModelCache().get("u2netp", "segment", "cpu")
    assert predictor.weights_path == cached_path(md5_catalog)
    assert predictor.provenance()["sha256"] == sums[RMBG] and predictor.provenance()["derived"] is False


def test_a_file_with_another_md5_is_refused_in_one_sentence(server, shared, sums, env, tmp_path):
    from mattekit import catalog

    env.setenv("U2NET_HOME", str(tmp_path / "u2"))
    bad = tampered_copy(shared / "weights" / RMBG, tmp_path / "u2")
    server.routes["bad"] = tmp_path / "u2"
    pin = md5_pinned(catalog.load().get("u2netp").files[1])
    wf = dataclasses.replace(pin, url=f"{server.base}/bad/{RMBG}")
    bad_md5 = hashlib.md5(bad.read_bytes()).hexdigest()
    with pytest.warns(UserWarning) as caught, pytest.raises(WeightsError) as err:
        fetch(wf, progress=False)
    assert [str(w.message) for w in caught] == [
        f"{bad} is not the catalog's {RMBG} (md5 {bad_md5}, expected {pin.md5}); it was not used."
    ]
    assert_sentence(str(err.value))
    assert (
        f"official URL {wf.url} (failed verification: md5 {bad_md5}, expected {pin.md5}; the download was deleted"
        in str(err.value)
    )
    assert not is_cached(wf) and not cached_path(wf).with_name(RMBG + ".part").exists()
    assert not (cache_dir() / "hashes.json").exists()

    cached_path(wf).write_bytes(bad.read_bytes())  # put in the cache by hand
    with pytest.raises(
        WeightsError, match=re.escape(f"does not match its md5 (expected {pin.md5}, got {bad_md5})")
    ) as err:
        fetch(wf, progress=False)
    assert_sentence(str(err.value))
    assert not verify(wf)[0] and not (cache_dir() / "hashes.json").exists()


def test_models_import_and_add_match_a_file_by_rembgs_md5(shared, sums, env, tmp_path, capsys, md5_catalog):
    from mattekit.cli import main

    env.setenv("MATTEKIT_OFFLINE", "1")
    good = rembg_copy(shared, tmp_path / "mine")
    bad = tampered_copy(shared / "weights" / RMBG, tmp_path / "bad")
    assert main(["models", "import", str(bad)]) == 2
    assert capsys.readouterr().out == f"{bad}: no catalog model has this file (sha256 {sha256_file(bad)[:16]}…)\n"
    assert main(["models", "import", str(tmp_path / "mine")]) == 0
    assert capsys.readouterr().out == f"{good}: imported as u2netp ({cache_dir() / RMBG})\n"
    assert json.loads((cache_dir() / "hashes.json").read_text()) == {RMBG: sums[RMBG]}
    assert main(["models", "verify", "u2netp"]) == 0
    assert capsys.readouterr().out == f"u2netp: ok: {RMBG}: ok (sha256 {sums[RMBG][:16]}…, md5 is rembg's pin)\n"
    assert weights.model_file("u2netp", [md5_catalog], progress=False) == cache_dir() / RMBG

    (cache_dir() / RMBG).unlink()
    (cache_dir() / "hashes.json").unlink()
    assert main(["models", "add", "u2netp", str(good)]) == 0
    assert "is the catalog's file (hash ok)" in capsys.readouterr().out
    assert sha256_file(cache_dir() / RMBG) == sums[RMBG] and weights.added("u2netp") is None


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
    record is only a miss."""
    import os
    import time

    from mattekit.weights import cache

    monkeypatch.setenv("MATTEKIT_HOME", str(tmp_path / "home"))
    reads, real = [], cache.file_digests
    monkeypatch.setattr(cache, "file_digests", lambda path, *names: reads.append(path) or real(path, *names))
    path = tmp_path / "weights.bin"
    path.write_bytes(b"first")
    assert weights.file_sha256(path) == hashlib.sha256(b"first").hexdigest() and len(reads) == 1
    cache._DIGESTS.clear()  # as a new process would start
    assert weights.file_sha256(path) == hashlib.sha256(b"first").hexdigest() and len(reads) == 1
    before = path.stat()
    time.sleep(0.05)  # past the file system's clock tick, so that the change time moves
    path.write_bytes(b"third")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    cache._DIGESTS.clear()
    assert weights.file_sha256(path) == hashlib.sha256(b"third").hexdigest() and len(reads) == 2
    (cache_dir() / "digests.json").write_text("not json")
    cache._DIGESTS.clear()
    assert weights.file_sha256(path) == hashlib.sha256(b"third").hexdigest() and len(reads) == 3
    rewritten = json.loads((cache_dir() / "digests.json").read_text())  # the unreadable record replaced
    assert rewritten[str(path.resolve())]["sha256"] == hashlib.sha256(b"third").hexdigest()
