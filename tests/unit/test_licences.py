"""Licences as published: every catalog model states its weights' licence in its publisher's
words with a link (or that there is none), its code's licence and its training data; a model whose weights carry no
licence says so in one line on its first run, once per user; a default model pinned in the user's config file is
what the CLI, the worker (so GIMP and Blender) and the API use."""

from __future__ import annotations

import numpy as np
import pytest

from mattekit import catalog, io
from mattekit.cli import main
from mattekit.commands.models import terms_lines

PERMISSIVE = {"MIT", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause"}


@pytest.fixture
def mirror(shared, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))


def pin(tmp_path, monkeypatch, text: str):
    """A config file holding ``text``, named by MATTEKIT_CONFIG; the catalog read afresh."""
    config = tmp_path / "config.toml"
    config.write_text(text)
    monkeypatch.setenv("MATTEKIT_CONFIG", str(config))
    catalog.load.cache_clear()
    return config


def test_every_model_states_its_terms_as_published():
    for entry in catalog.load().models.values():
        terms = entry.terms
        assert terms is not None and terms.weights_url.startswith("https://") and terms.code_url.startswith("https://")
        assert entry.training_data, entry.name
        assert terms.code and (terms.stated or "none stated" in entry.licence), entry.name


def test_isnet_says_its_weights_carry_no_licence_and_birefnet_says_what_its_data_are():
    cat = catalog.load()
    isnet = cat.get("isnet-general-use")
    assert not isnet.terms.stated and isnet.terms.code == "Apache-2.0" and "DIS/issues/150" in isnet.terms.weights_url
    assert "published with no licence" in terms_lines(isnet)[0]
    assert (
        "PPM-100" in cat.get("birefnet-matting").training_data
        and "non-commercial" in cat.get("birefnet-matting").training_data
    )
    assert "truly a mistake" in cat.get("birefnet-general").training_data
    assert cat.get("birefnet-general").terms.weights == "All the codes and weights are under the MIT license."


def test_the_default_rule_holds_for_every_default():
    """Each default's weights carry a stated permissive licence, or none is stated and the first run says so with a
    model to pin instead (the rule catalog.toml states above [defaults])."""
    cat = catalog.load()
    for task in cat.defaults:
        entry = cat.default(task)
        assert entry.notice is None, entry.name
        if not entry.terms.stated:
            line = cat.unlicensed_notice(entry, "CONFIG")
            other = cat.get(line.split(f'{task} = "')[1].split('"')[0])
            assert other.terms.stated and other.licence in PERMISSIVE
        else:
            assert entry.licence in PERMISSIVE, entry.name


def test_models_list_shows_the_terms(capsys):
    assert main(["models", "list", "--task", "segment", "--licences"]) == 0
    out = capsys.readouterr().out
    assert (
        'weights: "All the codes and weights are under the MIT license."  https://github.com/ZhengPeng7/BiRefNet/issues/316'
        in out
    )
    assert "weights: published with no licence  https://github.com/xuebinqin/DIS/issues/150" in out
    assert "none stated (code Apache-2.0) (default)" in out


def test_a_model_without_a_licence_says_so_once_per_user(shared, mirror, tmp_path, capsys):
    """rfdn-x4's weights (real, in the mirror) state no licence: the first run prints one line, the next none."""
    image = sorted((shared / "data/sr/Set5/x4/LR").iterdir())[0]
    lines = []
    for run in range(2):
        assert main(["upscale", str(image), "-o", str(tmp_path / f"up{run}.png"), "--model", "rfdn-x4", "-q"]) == 0
        lines.append([line for line in capsys.readouterr().err.splitlines() if "published with no licence" in line])
    assert len(lines[0]) == 1 and lines[1] == []
    assert (
        lines[0][0].startswith(
            "mattekit: model rfdn-x4: its weights were published with no licence (https://github.com/njulj/RFDN; "
        )
        and '[defaults] upscale = "' in lines[0][0]
    )


def test_a_pinned_default_is_used_by_the_cli_and_the_worker(shared, mirror, tmp_path, monkeypatch):
    pin(tmp_path, monkeypatch, '[defaults]\nsegment = "sinet-portrait"\n')
    out = tmp_path / "cut.png"
    assert main(["remove", str(shared / "data/grabcut50/im/person1.jpg"), "-o", str(out)]) == 0
    assert io.read_provenance(out)["models"][0]["name"] == "sinet-portrait"
    assert catalog.load().get("objects").name == "sinet-portrait"
    from mattekit.runtime import ModelCache
    from mattekit.worker.operations import model_menus

    menus = model_menus(ModelCache())["segment"]
    assert [m["name"] for m in menus if m["default"]] == ["sinet-portrait"]
    isnet = next(m for m in menus if m["name"] == "isnet-general-use")
    assert "published with no licence" in isnet["notice"]


@pytest.mark.parametrize(
    "text, words",
    [
        (
            '[defaults]\nsegment = "rfdn-x4"\n',
            "pins segment = 'rfdn-x4', which is no segment model; choose one of: u2net",
        ),
        ("[defaults\n", "is not valid TOML"),
    ],
)
def test_a_bad_pin_is_one_sentence_and_a_non_zero_exit(tmp_path, monkeypatch, capsys, text, words):
    config = pin(tmp_path, monkeypatch, text)
    assert main(["models", "list"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mattekit: error: The config file {config}") and words in err and len(err.splitlines()) == 1


def test_no_first_run_line_for_a_model_whose_weights_state_a_licence():
    cat = catalog.load()
    assert all(cat.unlicensed_notice(m, "C") is None for m in cat.models.values() if m.terms.stated)
    assert np.array([m.terms.stated for m in cat.models.values()]).sum() >= len(cat.models) - 2
