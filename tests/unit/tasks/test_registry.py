"""The task registry: one declaration per task drives the CLI, the schema and the Python API."""

from __future__ import annotations

import io as bytes_io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mattekit
from mattekit.cli import build_parser
from mattekit.options import OptionError
from mattekit.tasks import registry

ROOT = Path(__file__).resolve().parents[3]


def test_every_task_is_declared_with_checked_options():
    tasks = registry.tasks()
    assert {"remove", "matte", "upscale", "bokeh", "enhance", "depth", "mask-preview"} <= set(tasks)
    for task in tasks.values():
        assert task.inputs[0].name == "image" and task.outputs
        defaults = task.make_options({})  # every default passes its own declaration
        for option in task.declared:
            assert option.help, f"{task.name}.{option.name} has no help"
            assert option.check(getattr(defaults, option.name)) == getattr(defaults, option.name)
        json.dumps(task.describe("worker"))  # the schema is plain JSON


def test_tasks_declare_the_settings_their_algorithms_take():
    """A task passes its options on to the algorithm layer by field name (``Settings.of(options)``): each
    setting of the algorithm is declared by the task, with the same default."""
    import dataclasses

    from mattekit.tasks import common
    from mattekit.ops import retouch
    from mattekit.finish.matte import MattingOptions

    for name in ("remove", "matte"):  # the cut-out's options are declared once, and these tasks' options are them
        assert issubclass(registry.get(name).options, common.CutoutOptions)
    for settings, name in ((MattingOptions, "matte"), (retouch.RetouchOptions, "enhance")):
        declared = {o.name: o.default for o in registry.get(name).declared}
        for f in dataclasses.fields(settings):
            assert f.name in declared and declared[f.name] == f.default, f"{name}: {f.name}"
        defaults = registry.get(name).make_options({})
        assert settings.of(defaults) == settings()


@pytest.mark.parametrize(
    "values, words",
    [
        ({"strength": float("nan")}, "finite"),
        ({"strength": 3.0}, "at most 1"),
        ({"tile": -1}, "at least 0"),
        ({"alpha": "sharp"}, "one of model, bicubic"),
        ({"scale": "2"}, "a number"),
        ({"width": True}, "whole number"),
        ({"colour": 1}, "has no option colour"),
    ],
)
def test_bad_values_are_one_sentence_naming_the_option(values, words):
    with pytest.raises(OptionError, match=re.escape(words)):
        registry.get("upscale").make_options(values)


def test_paths_are_not_worker_options():
    with pytest.raises(OptionError, match="has no option weights"):
        registry.get("remove").make_options({"weights": "/etc/passwd"}, host="worker")
    assert "weights" not in registry.get("remove").describe("worker")["options"]


@pytest.mark.parametrize("command", sorted(registry.tasks()) + ["roto", "models", "serve", "bench", "info", "doctor"])
def test_every_command_prints_its_help(command, capsys):
    from mattekit.cli import main

    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0 and "usage: mattekit " + command in capsys.readouterr().out


def test_cli_flags_come_from_the_declaration():
    parser = build_parser("bokeh")
    sub = next(a for a in parser._actions if a.dest == "command").choices["bokeh"]
    flags = {s for a in sub._actions for s in a.option_strings}
    for option in registry.get("bokeh").declared:
        assert option.flag in flags
    assert {"--no-mask-only", "--subject"} <= flags  # booleans, ports
    assert not {"--highlights", "--model"} & flags  # the old flags of an unreleased version are gone


def test_bad_values_are_sentences(tmp_path, capsys):
    from mattekit.cli import main

    image = tmp_path / "grey.png"
    from mattekit import io

    io.write_image(image, np.full((24, 32, 3), 0.4, np.float32))
    assert main(["enhance", str(image), "-o", str(tmp_path / "b.png"), "--strength", "nan"]) == 2
    err = capsys.readouterr().err
    assert "--strength must be a finite number" in err and "Traceback" not in err


def test_a_task_declared_once_appears_everywhere():
    """mask-preview is declared in one module; the CLI, the schema, the menu and the API see it."""
    parser = build_parser()
    assert "mask-preview" in next(a for a in parser._actions if a.dest == "command").choices
    described = registry.get("mask-preview").describe("worker")
    assert described["menu"] and described["options"]["model"]["model"] == "segment"
    assert callable(mattekit.mask_preview) and "mask_preview" in dir(mattekit)


@pytest.fixture
def mirror(shared, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")


@pytest.mark.needs_data
def test_python_api_keeps_the_kind_of_its_input(shared, mirror, tmp_path):
    from PIL import Image

    source = shared / "data/grabcut50/im/person1.jpg"
    photo = Image.open(source).convert("RGB").resize((160, 120))
    pixels = np.asarray(photo)
    model = mattekit.load_model("extremec3-portrait", device="cpu")
    cut = mattekit.remove_background(pixels, model=model)
    assert cut.dtype == np.uint8 and cut.shape == (120, 160, 4)
    assert isinstance(mattekit.remove_background(photo, model=model), Image.Image)
    png = mattekit.remove_background(bytes_io.BytesIO(source.read_bytes()).getvalue(), model=model, result="alpha")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(bytes_io.BytesIO(png)).mode == "L"
    floats = mattekit.remove_background(pixels.astype(np.float32) / 255, model=model, matting=False)
    assert floats.dtype == np.float32 and np.abs(floats[..., 3] - cut[..., 3] / 255).max() > 0  # matting changes it
    copy = tmp_path / "photo.jpg"
    copy.write_bytes(source.read_bytes())
    written = mattekit.remove_background(copy, model=model)
    assert written == tmp_path / "photo_cutout.png" and written.is_file()
    with pytest.raises(OptionError, match="must be one of"):
        mattekit.remove_background(pixels, model=model, result="sticker")


@pytest.mark.needs_data
def test_readme_python_example_runs(shared, mirror, tmp_path, monkeypatch):
    """The README's Python example, verbatim, in a fresh interpreter."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    (tmp_path / "photo.jpg").write_bytes((shared / "data/grabcut50/im/person4.jpg").read_bytes())
    done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "photo_cutout.png").is_file()


def test_the_typed_stub_is_the_registry_s():
    """``core/mattekit/__init__.pyi`` (what editors and type checkers read for the API functions that mattekit.api
    makes at run time) is what tests/helpers/api_stub.py makes from the registry now, names every API function with each
    option the API offers, and ships in the package data."""
    import ast
    import tomllib

    import api_stub
    from mattekit import api

    assert api_stub.written() == api_stub.stub(), (
        "the stub differs from the registry: run `python tests/helpers/api_stub.py`"
    )
    functions = {node.name: node for node in ast.parse(api_stub.written()).body if isinstance(node, ast.FunctionDef)}
    assert set(functions) == set(api.functions()) | {"load_model", "clear_models"}
    for declaration in [*registry.tasks().values(), *registry.sequences().values()]:
        given = functions[declaration.api_name].args
        named = {a.arg for a in given.args + given.kwonlyargs + given.posonlyargs}
        assert {o.name for o in declaration.declared if "api" in o.hosts} <= named, declaration.name
    shipped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["mattekit"]
    assert "__init__.pyi" in shipped
