"""The model as a value (issue 82): a model option holds the model after its check, so a command looks its model
up in the catalog once; and only the engines and the Predictor read a model's catalog entry (others ask the
Predictor: its task, upsampling, input size, scale, recurrence, and :meth:`~mattekit.predictor.Predictor.to_image`)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from mattekit import catalog, cli, io

from plates import make_plate

PACKAGE = Path(catalog.__file__).resolve().parent


def _small_photo(shared: Path, folder: Path, side: int) -> Path:
    """A real photo (grabcut50's first), shrunk to at most ``side`` px, as a PNG in ``folder``."""
    import cv2

    source = sorted((shared / "data" / "grabcut50" / "im").iterdir())[0]
    pixels = io.read_image(source).pixels
    scale = side / max(pixels.shape[:2])
    small = cv2.resize(
        pixels, (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale)), interpolation=cv2.INTER_AREA
    )
    path = folder / "photo.png"
    io.write_image(path, small)
    return path


@pytest.fixture
def lookups(monkeypatch):
    """The model names looked up in the catalog (:meth:`mattekit.catalog.Catalog.get`) while a test runs, in
    order."""
    seen: list[str] = []
    get = catalog.Catalog.get

    def counted_get(self, name, task=None):
        seen.append(name)
        return get(self, name, task)

    monkeypatch.setattr(catalog.Catalog, "get", counted_get)
    return seen


@pytest.mark.parametrize(
    "command, side, model",
    [
        ("remove", 160, ["--model", "u2netp"]),
        ("remove", 160, ["--model", "u2netp", "--box", "20,20,120,120", "--hint-model", "none"]),
        ("upscale", 24, ["--model", "rfdn-x4"]),
        pytest.param("matte", 160, ["--model", "people"], marks=pytest.mark.slow),  # an alias of a matting model (its
        # task decides the model's kind); slow: MODNet's first load here (20 s on the shared 2 cores)
    ],
)
def test_a_command_looks_its_model_up_once(command, side, model, shared, mirror, tmp_path, lookups):
    """A real CLI run in this process asks the catalog for its model once: the option's check finds it and every
    later step (which task the model does, the output's {scale}, loading, provenance) reads the value it holds."""
    photo = _small_photo(shared, tmp_path, side)
    out = tmp_path / "out.png"
    assert cli.main([command, str(photo), "-o", str(out), "--device", "cpu", *model]) == 0
    assert out.is_file()
    assert lookups == model[1:2]


def test_a_model_without_its_weights_is_looked_up_once_too(shared, mirror, tmp_path, lookups, capsys):
    """The sentence on a model whose weights are missing names the model the option holds (no lookup again)."""
    photo = _small_photo(shared, tmp_path, 24)
    assert cli.main(["upscale", str(photo), "-o", str(tmp_path / "out.png"), "--model", "realesr-general-x4v3"]) == 2
    assert "the weights of realesr-general-x4v3 cannot be had here" in capsys.readouterr().err
    assert lookups == ["realesr-general-x4v3"]


def test_roto_looks_its_model_up_once(shared, mirror, tmp_path, lookups):
    plate = make_plate(shared, tmp_path / "plate", 2, size=(96, 54))
    out = tmp_path / "out" / "m.####.png"
    assert cli.main(["roto", plate, "-o", str(out), "--model", "u2netp", "--device", "cpu"]) == 0
    assert len(list(out.parent.glob("m.*.png"))) == 2
    assert lookups == ["u2netp"]


def test_a_model_choice_prints_as_its_name_and_holds_the_row():
    """The checked option is the name as given (an alias stays the alias) and the catalog row it stands for."""
    from mattekit.options import ModelChoice
    from mattekit.tasks import registry

    options = registry.get("remove").make_options({"model": "people"}, host="cli")
    assert isinstance(options.model, ModelChoice)
    assert str(options.model) == "people" and options.model.entry is catalog.load().get("modnet-portrait")
    assert registry.get("remove").option_table()["model"].text(options.model) == "people"


def test_a_loaded_model_from_the_api_is_the_value(shared, mirror):
    """The API's model= a loaded Predictor: the option holds it, and the run uses it (nothing loads by name)."""
    import mattekit
    from mattekit.options import OptionError
    from mattekit.tasks import registry

    predictor = mattekit.load_model("u2netp", device="cpu")
    options = registry.get("remove").make_options({"model": predictor}, host="api")
    assert options.model.predictor is predictor and str(options.model) == "u2netp"
    with pytest.raises(OptionError, match="Model 'u2netp' is a segment model, not an upscale model"):
        registry.get("upscale").make_options({"model": predictor}, host="api")
    image = np.full((40, 40, 3), 0.5, np.float32)
    mattekit.clear_models()
    alpha = mattekit.remove_background(image, model=predictor, result="alpha")
    assert alpha.shape == (40, 40) and mattekit.api.models_cache().loaded() == []


def _entry_reaches(path: Path) -> list[str]:
    """Reads of a catalog row outside the Predictor and the model option's value (:class:`mattekit.options.ModelChoice`)
    in the module at ``path``: ``X.entry.Y`` (read through another object), ``predictor.entry``, ``self.entry`` (a row
    kept as an object's own: a copy read at will) and a row stored in any attribute; 'file:line: source'."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name in ("Predictor", "ModelChoice"):
            inside |= {id(n) for n in ast.walk(node)}
    stored = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and any(isinstance(t, (ast.Attribute, ast.Tuple)) for t in node.targets)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in inside or not isinstance(node, ast.Attribute) or node.attr != "entry":
            continue
        owner = node.value
        kept = isinstance(owner, ast.Name) and owner.id == "self"
        named_predictor = ast.unparse(owner).endswith("predictor")
        chained = any(isinstance(parent, ast.Attribute) and parent.value is node for parent in ast.walk(tree))
        if kept or named_predictor or chained or id(node) in stored:
            found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_only_the_engines_and_the_predictor_read_a_models_entry():
    """Algorithm code asks the Predictor (or the checked option) for what it needs of its model, never
    ``predictor.entry.*``, and keeps no copy of a row (roto kept one and read it 15 times): 0 reaches outside
    mattekit/engines/, the Predictor and ModelChoice; a function may still be handed the row it reads."""
    reaches = [
        hit
        for path in sorted(PACKAGE.rglob("*.py"))
        if "engines" not in path.relative_to(PACKAGE).parts
        for hit in _entry_reaches(path)
    ]
    assert reaches == []
