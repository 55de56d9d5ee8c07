"""The catalog: every entry builds its net, loads its weights where we have them, and keeps its promises."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mattekit import catalog, nets, weights
from mattekit.errors import MattekitError


@pytest.mark.slow
def test_every_entry_builds_its_net_with_the_official_keys():
    cat = catalog.load()
    keys = {}  # one build per architecture and kwargs: seven BiRefNet entries share one Swin-L net
    for entry in cat.models.values():
        shape = (entry.net, repr(sorted(entry.kwargs.items())))
        if shape not in keys:
            keys[shape] = len(nets.build(entry.net, **entry.kwargs).state_dict())
        assert keys[shape] > 0, entry.name
        assert entry.weights.url.startswith("https://"), entry.name
        assert entry.licence, entry.name


def test_defaults_are_commercial_friendly_general_models():
    cat = catalog.load()
    assert set(catalog.TASKS) >= set(cat.defaults)
    for task, name in cat.defaults.items():
        assert cat.models[name].notice is None, f"{name} carries a licence notice but is the {task} default"
    assert cat.default("segment").name in ("isnet-general-use", "u2net")


PERMISSIVE = {"MIT", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause"}


def test_the_segment_default_obeys_the_default_rule():
    """catalog.toml's rule for the segment default (issue 30), its parts a test can check: a permissive licence,
    and the fidelity test's list (its plain path was checked on real weights and photos here). The speed part
    and the published figures are in docs/benchmarks.md ("BiRefNet and the default")."""
    from test_fidelity import MODELS

    cat = catalog.load()
    default = cat.default("segment")
    assert default.licence in PERMISSIVE, f"{default.name}: {default.licence}"
    assert default.name in MODELS, f"{default.name} never passed tests/test_fidelity.py on real weights"
    assert cat.get("objects", "segment").name == default.name
    toml = (Path(catalog.__file__).parent / "catalog.toml").read_text()
    assert "in tests/test_fidelity.py" in toml.split("[aliases]")[0], "the rule is written above [defaults]' end"


def test_known_hashes_match_the_shared_official_files(shared):
    """Files in shared/weights are byte-identical official files: the catalog's sha256 must match them."""
    sums = dict(line.split()[::-1] for line in (shared / "weights/SHA256SUMS").read_text().splitlines())
    # shared/weights/README.md: these two are not byte-identical to the official files.
    for not_official in ("realesr-animevideov3.pth", "realesr-general-x4v3.from-ncnn-fp16.pth"):
        sums.pop(not_official, None)
    checked = 0
    for entry in catalog.load().models.values():
        for wf in entry.files:
            if wf.name in sums and wf.sha256:
                assert wf.sha256 == sums[wf.name], wf.name
                assert hashlib.sha256((shared / "weights" / wf.name).read_bytes()).hexdigest() == wf.sha256
                checked += 1
    assert checked >= 3


def test_real_checkpoints_load_strictly_through_the_catalog(shared, monkeypatch):
    from mattekit import runtime

    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    for name in ("csnet-sod", "sinet-portrait", "extremec3-portrait"):
        predictor = runtime.ModelCache().get(name, "segment", "cpu")
        assert predictor.weights_path.parent == weights.cache_dir()


def test_unknown_model_and_wrong_task_are_sentences():
    cat = catalog.load()
    with pytest.raises(MattekitError, match="Unknown model 'nope'; choose one of: .*csnet-sod"):
        cat.get("nope", "segment")


def test_malformed_catalog_is_refused(tmp_path):
    bad = tmp_path / "catalog.toml"
    bad.write_text('[models.x]\ntask = "segment"\nnet = "u2net:U2NETP"\n')
    with pytest.raises(ValueError, match="malformed"):
        catalog.load(str(bad))


# rembg's own pins (pooch "md5:..." in rembg/sessions/u2net.py, u2netp.py, u2net_human_seg.py, dis_general_use.py)
REMBG_MD5 = {"u2net.onnx": "60024c5c889badc19c04ad937298a77b", "u2netp.onnx": "8e83ca70e441ab06c318d82300c84806",
             "u2net_human_seg.onnx": "c09ddc2e0104f800e3e1bb4652583d1f",
             "isnet-general-use.onnx": "fc16ebd8b0c10d971d3513d564d01e29",
             # rembg/sessions/birefnet_*.py; saved in rembg's folder under the session's name, not the release's
             "birefnet-general.onnx": "7a35a0141cbbc80de11d9c9a28f52697",
             "birefnet-general-lite.onnx": "4fab47adc4ff364be1713e97b7e66334",
             "birefnet-portrait.onnx": "c3a64a6abf20250d090cd055f12a3b67",
             "birefnet-dis.onnx": "2d4d44102b446f33a4ebb2e56c051f2b",
             "birefnet-hrsod.onnx": "c017ade5de8a50ff0fd74d790d268dda",
             "birefnet-cod.onnx": "f6d0d21ca89d287f17e7afe9f5fd3b45",
             "birefnet-massive.onnx": "33e726a2136a3d59eb0fdf613e31e3e9"}
REMBG_RELEASE = {"birefnet-general.onnx": "BiRefNet-general-epoch_244.onnx",
                 "birefnet-general-lite.onnx": "BiRefNet-general-bb_swin_v1_tiny-epoch_232.onnx",
                 "birefnet-portrait.onnx": "BiRefNet-portrait-epoch_150.onnx",
                 "birefnet-dis.onnx": "BiRefNet-DIS-epoch_590.onnx",
                 "birefnet-hrsod.onnx": "BiRefNet-HRSOD_DHU-epoch_115.onnx",
                 "birefnet-cod.onnx": "BiRefNet-COD-epoch_125.onnx",
                 "birefnet-massive.onnx": "BiRefNet-massive-TR_DIS5K_TR_TEs-epoch_420.onnx"}


def test_rembg_sources_name_rembgs_release_files_and_pin_only_what_was_checked(shared):
    """rembg's ONNX files are listed under their release names with rembg's md5 pins; only u2netp.onnx also has a
    sha256 (its copy in shared/weights is byte-identical to rembg's release), the others are not guessed."""
    sums = dict(line.split()[::-1] for line in (shared / "weights/SHA256SUMS").read_text().splitlines())
    rembg = {wf.name: (entry.name, wf) for entry in catalog.load().models.values() for wf in entry.files
             if "danielgatis/rembg" in wf.url}
    assert set(rembg) == set(REMBG_MD5)
    for name, (model, wf) in rembg.items():
        release = REMBG_RELEASE.get(name, name)
        assert wf.url == f"https://github.com/danielgatis/rembg/releases/download/v0.0.0/{release}", model
        assert wf.sha256 == sums.get(name), f"{model}: a pinned sha256 must be one checked on a real file"
        assert wf.md5 == REMBG_MD5[name] and weights.pinned(wf), model


def test_the_md5_pin_of_u2netp_onnx_is_that_of_the_real_file(shared):
    """The one rembg release we hold: the catalog's md5 for it (rembg's pin) is the md5 of its bytes, so the md5
    path is checked against a real file."""
    wf = catalog.load().get("u2netp").files[1]
    assert wf.name == "u2netp.onnx"
    assert hashlib.md5((shared / "weights" / wf.name).read_bytes()).hexdigest() == wf.md5
    assert all(len(f.md5) == 32 and set(f.md5) <= set("0123456789abcdef")
               for entry in catalog.load().models.values() for f in entry.files if f.md5)


def test_models_list_shows_the_birefnet_family_with_licences_and_sources(capsys):
    """Issue 30: `mattekit models list --sources` lists every BiRefNet model with its licence and, under it, each
    weights file's official source (the authors' release, or rembg's ONNX) and its pin (sha256, rembg's md5, or
    none published)."""
    from mattekit.cli import main

    assert main(["models", "list", "--sources"]) == 0
    lines = capsys.readouterr().out.splitlines()
    family = [n for n in catalog.load().models if n.startswith("birefnet")]
    assert len(family) >= 11
    for name in family:
        at = next(i for i, line in enumerate(lines) if line.split()[0] == name)
        assert "MIT" in lines[at].split()
        files = catalog.load().get(name).files
        got = [line.split() for line in lines[at + 1:at + 1 + len(files)]]
        assert [g[:2] for g in got] == [[f.name, f.url] for f in files], name
        official = ("https://github.com/ZhengPeng7/", "https://huggingface.co/ZhengPeng7/",
                    "https://github.com/danielgatis/rembg/releases/")  # the authors' releases, rembg's ONNX files
        assert files and all(f.url.startswith(official) for f in files), name
        for g, f in zip(got, files):
            assert (f.md5 in g) if f.md5 else (f.sha256 in g) if f.sha256 else ("no published pin" in " ".join(g))
