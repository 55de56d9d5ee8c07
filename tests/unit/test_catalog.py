"""The catalog's nets and weights: every entry builds its net with the official keys and declares the onnx_as_is its
net calls for, the pinned hashes are those of the real files, rembg's sources and pins are its release's, and
`models list --sources` shows them."""

from __future__ import annotations

import hashlib

import pytest

from mattekit import catalog, nets, weights
from mattekit.options import model_choice


# Each catalog entry's official key list(s) here: a conformance manifest (the upstream state dict's keys, shapes
# and dtypes, from the reference implementation), a real checkpoint in shared/weights (its state dict, unwrapped
# as the manifest's "checkpoint" says), or a real ONNX file (its initializers that kept their upstream names).
_SWIN_L = {"manifest": "birefnet_swin_l"}
OFFICIAL = {
    "u2net": {"manifest": "u2net"},
    "u2net-human-seg": {"manifest": "u2net"},
    "u2netp": {"manifest": "u2netp", "onnx": "u2netp.onnx"},
    "isnet-general-use": {"manifest": "isnetdis", "onnx": "isnet-general-use.imgly-fp16.onnx"},
    "csnet-sod": {"manifest": "csnet_real", "checkpoint": ("csnet-L-x2.pth.tar", "state_dict")},
    "birefnet-general": _SWIN_L,
    "birefnet-portrait": _SWIN_L,
    "birefnet-dis": _SWIN_L,
    "birefnet-hrsod": _SWIN_L,
    "birefnet-cod": _SWIN_L,
    "birefnet-massive": _SWIN_L,
    "birefnet-matting": _SWIN_L,
    "birefnet-hr": _SWIN_L,
    "birefnet-hr-matting": _SWIN_L,
    "birefnet-dynamic": _SWIN_L,
    "birefnet-general-lite": {"manifest": "birefnet_swin_t"},
    "sinet-portrait": {"manifest": "sinet_real", "checkpoint": ("SINet.pth", None)},
    "extremec3-portrait": {"manifest": "extremec3_real", "checkpoint": ("ExtremeC3.pth", None)},
    "depth-anything-v2-small": {"manifest": "depth_anything_v2_vits"},
    "sam2.1-hiera-tiny": {"manifest": "sam2_1_hiera_t_image"},
    "realesr-general-x4v3": {
        "manifest": "srvgg_general_x4v3",
        "checkpoint": ("realesr-general-x4v3.from-ncnn-fp16.pth", "params"),
    },
    "realesrgan-x4plus": {"manifest": "rrdbnet_x4plus"},
    "realesrgan-x2plus": {"manifest": "rrdbnet_x2plus"},
    "realesr-animevideov3": {"manifest": "animevideov3_real", "checkpoint": ("realesr-animevideov3.pth", "params")},
    "rfdn-x4": {"manifest": "rfdn_real", "checkpoint": ("RFDN_AIM.pth", None)},
    "modnet-portrait": {"manifest": "modnet", "onnx": "modnet_photographic_portrait_matting.onnx"},
    # No state-dict list of RVM here, only its ONNX export, and our net does not use upstream's names: it drops
    # wrappers of the upstream modules (LRASPP aspp2 = Sequential(pool, conv, sigmoid), ConvGRU ih/hh =
    # Sequential(conv, activation), decode4 = BottleneckBlock(gru), project_mat = Projection(conv), the refiner's
    # flat conv Sequential). The official .pth would not load into it by name; the renames below are those wrappers.
    "rvm-people": {
        "onnx": "rvm_mobilenetv3_fp32.onnx",
        "renames": (
            ("aspp.aspp2.1.", "aspp.aspp2."),
            (".gru.ih.0.", ".gru.ih."),
            (".gru.hh.0.", ".gru.hh."),
            ("decoder.decode4.gru.", "decoder.decode4."),
            ("project_mat.conv.", "project_mat."),
            ("refiner.conv.6.", "refiner.conv.2."),
        ),
    },
}
# No official key list of these is in shared/ (no manifest, no checkpoint): only their net builds is checked.
NO_OFFICIAL_LIST = {"sam2.1-hiera-small", "sam2.1-hiera-base-plus", "sam2.1-hiera-large"}


def _own(entry) -> dict:
    import torch

    with torch.device("meta"):  # keys, shapes and dtypes only: no memory for BiRefNet's 220 M parameters
        net = nets.build(entry.net, **entry.kwargs)
    return {k: (list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in net.state_dict().items()}


@pytest.mark.slow
def test_every_entry_builds_its_net_with_the_official_keys(shared):
    """Every entry's net, built with the catalog's kwargs, has exactly the upstream state dict's keys, shapes and
    dtypes (the conformance manifest of its architecture); where a real checkpoint is here its keys are the net's
    (less the keys the manifest says the file lacks); where a real ONNX file is here, every initializer that kept an
    upstream name is a key of the net with the same shape. BiRefNet-HR, -HR-matting and -dynamic are compared with
    the Swin-L list: the same upstream class and config (their patch order has no weights), no checkpoint of theirs
    is here. The SAM 2.1 entries other than tiny have no official list here (NO_OFFICIAL_LIST): only that they
    build is checked, and that no other entry lacks a list."""
    import json

    import onnx
    import torch

    cat = catalog.load()
    assert set(cat.models) == set(OFFICIAL) | NO_OFFICIAL_LIST, "a new entry needs an official key list, or a reason"
    built = {}  # one build per architecture and kwargs: ten BiRefNet entries share one Swin-L net
    for entry in cat.models.values():
        assert entry.weights.url.startswith("https://"), entry.name
        assert entry.licence, entry.name
        arch = (entry.net, repr(sorted(entry.kwargs.items())))
        if arch not in built:
            built[arch] = _own(entry)
        own = built[arch]
        assert own, entry.name
        sources = OFFICIAL.get(entry.name, {})
        manifest = None
        if "manifest" in sources:
            manifest = json.loads((shared / "conformance" / sources["manifest"] / "manifest.json").read_text())
            want = {key: (shape, dtype) for key, shape, dtype, _ in manifest["state_dict"]}
            assert own.keys() == want.keys(), (
                entry.name,
                sorted(own.keys() - want.keys())[:5],
                sorted(want.keys() - own.keys())[:5],
            )
            assert own == want, (entry.name, [k for k in own if own[k] != want[k]][:5])
        if "checkpoint" in sources:
            name, key = sources["checkpoint"]
            state = torch.load(shared / "weights" / name, map_location="cpu", weights_only=True)
            state = state[key] if key else state
            facts = manifest.get("checkpoint", {})  # the real-weight manifests say what their file lacks
            lacks = set(facts.get("keys_in_model_not_in_checkpoint", []))
            extra = set(facts.get("keys_in_checkpoint_not_in_model", []))
            assert set(state) - set(own) == extra and set(own) - set(state) == lacks, (entry.name, name)
            assert all(list(state[k].shape) == own[k][0] for k in set(state) & set(own)), (entry.name, name)
        if "onnx" in sources:
            model = onnx.load(str(shared / "weights" / sources["onnx"]))
            named = {
                i.name: list(i.dims)
                for i in model.graph.initializer
                if not i.name.startswith("onnx::") and not i.name.isdigit()
            }  # folded convs lost their names
            for old, new in sources.get("renames", ()):
                named = {k.replace(old, new): v for k, v in named.items()}
            assert len(named) >= 10, (entry.name, sources["onnx"])
            assert {k: own.get(k, (None,))[0] for k in named} == named, (entry.name, sources["onnx"])


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
        predictor = runtime.ModelCache().get(model_choice(name, "segment"), "cpu")
        assert predictor.weights_path.parent == weights.cache_dir()


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_each_rows_onnx_as_is_is_what_its_net_says():
    """``onnx_as_is`` is declared; here it is checked against the net of EVERY row: an .onnx file runs as it is
    exactly where the model takes a fixed input size, is not recurrent, and its net (built on the meta device:
    nothing allocated) has a layer :mod:`mattekit.onnx_import` cannot map."""
    torch = pytest.importorskip("torch")
    from mattekit.onnx_import import unmapped_layer

    declared = set()
    for entry in catalog.load().models.values():
        with torch.device("meta"):
            probe = nets.build(entry.net, **entry.kwargs)
        runs = entry.input.size is not None and not entry.recurrent and unmapped_layer(probe) is not None
        assert entry.onnx_as_is == runs, entry.name
        declared |= {entry.name} if entry.onnx_as_is else set()
    assert {"birefnet-general", "birefnet-hr"} <= declared and "birefnet-dynamic" not in declared


# rembg's own pins (pooch "md5:..." in rembg/sessions/u2net.py, u2netp.py, u2net_human_seg.py, dis_general_use.py)
REMBG_MD5 = {
    "u2net.onnx": "60024c5c889badc19c04ad937298a77b",
    "u2netp.onnx": "8e83ca70e441ab06c318d82300c84806",
    "u2net_human_seg.onnx": "c09ddc2e0104f800e3e1bb4652583d1f",
    "isnet-general-use.onnx": "fc16ebd8b0c10d971d3513d564d01e29",
    # rembg/sessions/birefnet_*.py; saved in rembg's folder under the session's name, not the release's
    "birefnet-general.onnx": "7a35a0141cbbc80de11d9c9a28f52697",
    "birefnet-general-lite.onnx": "4fab47adc4ff364be1713e97b7e66334",
    "birefnet-portrait.onnx": "c3a64a6abf20250d090cd055f12a3b67",
    "birefnet-dis.onnx": "2d4d44102b446f33a4ebb2e56c051f2b",
    "birefnet-hrsod.onnx": "c017ade5de8a50ff0fd74d790d268dda",
    "birefnet-cod.onnx": "f6d0d21ca89d287f17e7afe9f5fd3b45",
    "birefnet-massive.onnx": "33e726a2136a3d59eb0fdf613e31e3e9",
}
REMBG_RELEASE = {
    "birefnet-general.onnx": "BiRefNet-general-epoch_244.onnx",
    "birefnet-general-lite.onnx": "BiRefNet-general-bb_swin_v1_tiny-epoch_232.onnx",
    "birefnet-portrait.onnx": "BiRefNet-portrait-epoch_150.onnx",
    "birefnet-dis.onnx": "BiRefNet-DIS-epoch_590.onnx",
    "birefnet-hrsod.onnx": "BiRefNet-HRSOD_DHU-epoch_115.onnx",
    "birefnet-cod.onnx": "BiRefNet-COD-epoch_125.onnx",
    "birefnet-massive.onnx": "BiRefNet-massive-TR_DIS5K_TR_TEs-epoch_420.onnx",
}


def test_rembg_sources_name_rembgs_release_files_and_pin_only_what_was_checked(shared):
    """rembg's ONNX files are listed under their release names with rembg's md5 pins; only u2netp.onnx also has a
    sha256 (its copy in shared/weights is byte-identical to rembg's release), the others are not guessed."""
    sums = dict(line.split()[::-1] for line in (shared / "weights/SHA256SUMS").read_text().splitlines())
    rembg = {
        wf.name: (entry.name, wf)
        for entry in catalog.load().models.values()
        for wf in entry.files
        if "danielgatis/rembg" in wf.url
    }
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
    assert all(
        len(f.md5) == 32 and set(f.md5) <= set("0123456789abcdef")
        for entry in catalog.load().models.values()
        for f in entry.files
        if f.md5
    )


def test_models_list_shows_the_birefnet_family_with_licences_and_sources(capsys):
    """`mattekit models list --sources` lists every BiRefNet model with its licence and, under it, each
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
        got = [line.split() for line in lines[at + 1 : at + 1 + len(files)]]
        assert [g[:2] for g in got] == [[f.name, f.url] for f in files], name
        official = (
            "https://github.com/ZhengPeng7/",
            "https://huggingface.co/ZhengPeng7/",
            "https://github.com/danielgatis/rembg/releases/",
        )  # the authors' releases, rembg's ONNX files
        assert files and all(f.url.startswith(official) for f in files), name
        for g, f in zip(got, files):
            assert (f.md5 in g) if f.md5 else (f.sha256 in g) if f.sha256 else ("no published pin" in " ".join(g))
