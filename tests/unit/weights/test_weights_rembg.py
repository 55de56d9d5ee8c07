"""A user's rembg folder and ``models import``: rembg's own folder rule, its files used offline once their hash is
checked (sha256, or rembg's md5 where that is the catalog's only pin), unpinned or other files refused, and files
matched by hash on import."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

import pytest

from mattekit import weights
from mattekit.errors import WeightsError
from mattekit.fsutil import sha256_file
from mattekit.weights import WeightFile, cache_dir, cached_path, fetch, is_cached, verify
from mattekit.options import model_choice
from weight_files import RMBG, assert_cached_ok, assert_sentence, md5_pinned, official, rembg_copy, tampered_copy


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
    predictor = runtime.ModelCache().get(model_choice("u2netp", "segment"), "cpu")  # the ONNX release runs as the model
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
    predictor = runtime.ModelCache().get(model_choice("u2netp", "segment"), "cpu")
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
        WeightsError, match=re.escape(f"failed its md5 check (damaged or changed: expected {pin.md5}, got {bad_md5})")
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
