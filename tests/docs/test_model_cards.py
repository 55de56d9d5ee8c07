"""models/: one card per catalog model, and each card quotes its model's licence and pins as the catalog has them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
CARDS = ROOT / "models"
CATALOG = tomllib.loads((ROOT / "core" / "mattekit" / "catalog.toml").read_text(encoding="utf-8"))
MODELS = CATALOG["models"]


def card(name: str) -> str:
    return (CARDS / f"{name}.md").read_text(encoding="utf-8")


def test_every_catalog_model_has_a_card_and_every_card_names_a_catalog_model():
    cards = {path.stem for path in CARDS.glob("*.md") if path.name != "README.md"}
    assert sorted(set(MODELS) - cards) == [], "catalog models without a card in models/"
    assert sorted(cards - set(MODELS)) == [], "cards in models/ that name no catalog model"


def test_the_index_lists_every_card():
    index = (CARDS / "README.md").read_text(encoding="utf-8")
    for name in MODELS:
        assert f"[{name}]({name}.md)" in index, name


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_card_quotes_its_models_licence_and_pins(name):
    entry, text = MODELS[name], card(name)
    assert text.startswith(f"# {name}\n"), name
    assert f"`{entry['licence']}`" in text, f"{name}: licence {entry['licence']!r}"
    if "notice" in entry:
        assert entry["notice"] in text, f"{name}: notice"
    for wf in entry["files"]:
        for key in ("name", "url", "sha256", "md5"):
            if key in wf:
                assert wf[key] in text, f"{name}: {key} of {wf['name']}"
        if "size" in wf:
            assert f"size {wf['size']} bytes" in text, f"{name}: size of {wf['name']}"
        else:
            assert "no size" in text, f"{name}: {wf['name']} has no size in the catalog; the card must say so"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_card_quotes_no_pin_the_catalog_lacks(name):
    """Every full sha256 written in a card is a pin of that model's files (other files are named, not hashed)."""
    import re

    pins = {wf.get("sha256") for wf in MODELS[name]["files"]}
    for found in re.findall(r"\b[0-9a-f]{64}\b", card(name)):
        assert found in pins, f"{name}: {found} is no sha256 of this model's files"


def test_the_catalog_points_at_each_card():
    text = (ROOT / "core" / "mattekit" / "catalog.toml").read_text(encoding="utf-8")
    for name in MODELS:
        # A name with a dot is quoted
        header = f"[models.{name}]" if f"[models.{name}]" in text else f'[models."{name}"]'
        start = text.index(header)
        end = text.find("\n[", start + 1)
        assert f"card: models/{name}.md" in text[start : end if end > 0 else None], name


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_card_shows_its_models_terms_as_published(name):
    """The card's Licence section holds what `mattekit models list --licences` prints for the model."""
    from mattekit import catalog
    from mattekit.commands.models import terms_lines

    entry = catalog.parse((ROOT / "core" / "mattekit" / "catalog.toml").read_text(encoding="utf-8")).models[name]
    text = card(name)
    for line in terms_lines(entry):
        assert f"- {line}\n" in text, f"{name}: {line}"
