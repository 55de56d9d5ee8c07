"""Roto from Python (``mattekit.rotoscope``) and roto as a sequence task of the registry: the API writes
what ``mattekit roto`` writes, keeps its model loaded, checks options as the CLI does, and every front end
finds roto in the registry."""

from __future__ import annotations

import re

import pytest

import mattekit
from mattekit import api, roto
from mattekit.cli import build_parser, main
from mattekit.errors import OutputError
from mattekit.options import OptionError
from mattekit.tasks import registry
from mattekit.worker import operations
from plates import MODEL, make_plate
from roto_runs import files_of
from workers import count_loads

FLAGS = ["--model", MODEL, "--device", "cpu", "--threads", "1", "--radius", "1"]
OPTIONS = {"model": MODEL, "device": "cpu", "threads": 1, "radius": 1}


@pytest.fixture
def fresh_models():
    """The API's model cache emptied before and after, so that loads are counted from nothing."""
    api.clear_models()
    yield
    api.clear_models()


def _cli_error(argv: list, capsys) -> str:
    """The one sentence ``mattekit roto`` prints for ``argv`` (it exits 2)."""
    assert main(["roto", *map(str, argv)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("mattekit: error: "), err
    return err.removeprefix("mattekit: error: ")


def test_rotoscope_writes_the_bytes_of_the_command(shared, mirror, tmp_path, fresh_models, capsys):
    plate = make_plate(shared, tmp_path / "plate", 3)
    assert main(["roto", plate, "-o", str(tmp_path / "cli" / "m.####.png"), *FLAGS]) == 0
    events = []
    summary = mattekit.rotoscope(plate, tmp_path / "api" / "m.####.png", progress=events.append, **OPTIONS)
    assert isinstance(summary, roto.Summary)
    assert summary.frames == summary.computed == [1001, 1002, 1003] and not summary.skipped
    assert [e.done for e in events][-1] == 3 and all(e.total == 3 for e in events)
    written = files_of(tmp_path / "api")
    assert sorted(written) == ["m.1001.png", "m.1002.png", "m.1003.png"]
    assert written == files_of(tmp_path / "cli")
    assert (tmp_path / "api" / "m.mattekit.json").is_file()
    again = mattekit.rotoscope(plate, str(tmp_path / "api" / "m.####.png"), **OPTIONS)  # resumes: nothing to do
    assert again.skipped == [1001, 1002, 1003] and not again.computed
    assert files_of(tmp_path / "api") == written


def test_a_second_call_reuses_the_loaded_model(shared, mirror, tmp_path, fresh_models, monkeypatch):
    loads = count_loads(monkeypatch)
    plate = make_plate(shared, tmp_path / "plate", 2, size=(64, 36))
    for run in ("a", "b"):
        summary = mattekit.rotoscope(plate, tmp_path / run / "m.####.png", **OPTIONS)
        assert summary.computed == [1001, 1002]
    assert loads == [MODEL]
    assert [p.entry.name for p in api.models_cache().loaded()] == [MODEL]


def test_bad_options_are_the_sentences_of_the_command(shared, tmp_path, capsys):
    plate = make_plate(shared, tmp_path / "plate", 2, size=(64, 36))
    out = tmp_path / "out" / "m.####.png"
    with pytest.raises(OptionError) as bad:  # the declaration's own check, before anything runs
        mattekit.rotoscope(plate, out, radius=99)
    assert str(bad.value) == "Option 'radius' must be at most 32, not 99."
    assert _cli_error([plate, "-o", out, "--radius", "99"], capsys) == str(bad.value).replace(
        "Option 'radius'", "--radius"
    )
    with pytest.raises(OptionError) as bad:  # a keyframe hint that does not read: the same check
        mattekit.rotoscope(plate, out, box="1001:1,2,3")
    assert "\n" not in str(bad.value) and str(bad.value).endswith(".")
    assert _cli_error([plate, "-o", out, "--box", "1001:1,2,3"], capsys) == str(bad.value)
    with pytest.raises(OptionError, match=r"^Task 'roto' has no option colour; it knows plate, output, "):
        mattekit.rotoscope(plate, out, colour=True)
    with pytest.raises(TypeError, match=r"plate, output"):
        mattekit.rotoscope(plate)
    assert not out.parent.exists()


def test_rotoscope_never_writes_over_its_plate(shared, tmp_path):
    plate = make_plate(shared, tmp_path / "plate", 2, size=(64, 36))
    before = files_of(tmp_path / "plate")
    for where in (
        {"output": plate},
        {"output": tmp_path / "plate"},
        {"output": tmp_path / "out" / "m.####.png", "rgba": plate},
    ):
        where = dict(where)
        with pytest.raises(OutputError, match=r"is .*the plate .*choose another"):
            mattekit.rotoscope(plate, where.pop("output"), **OPTIONS, **where)
    assert files_of(tmp_path / "plate") == before and sorted(p.name for p in tmp_path.iterdir()) == ["plate"]


def test_every_front_end_finds_roto_in_the_registry(monkeypatch):
    task = registry.sequences()["roto"]
    assert registry.declarations()["roto"] is task and "roto" not in registry.tasks()  # not an image task
    assert task.kind == "sequence" and task.options is roto.RotoSpec and task.api_name == "rotoscope"
    worker = operations.build(operations.PathPolicy())["roto"]
    assert worker.describe()["options"] == task.describe("worker")["options"]
    assert "weights" not in worker.describe()["options"]  # a path the worker does not take
    parser = build_parser("roto")
    sub = next(a for a in parser._actions if a.dest == "command").choices["roto"]
    flags = {s for a in sub._actions for s in a.option_strings}
    assert {o.flag for o in task.declared if o.name not in ("plate", "output")} <= flags
    assert api.functions()["rotoscope"] is mattekit.rotoscope

    # without the declaration no front end offers roto: each derives it from the registry
    declared = {name: t for name, t in registry.declarations().items() if name != "roto"}
    monkeypatch.setattr(registry, "declarations", lambda: declared)
    api.functions.cache_clear()
    try:
        assert "rotoscope" not in api.functions()
        assert "roto" not in operations.build(operations.PathPolicy())
        choices = next(a for a in build_parser()._actions if a.dest == "command").choices
        assert "roto" not in choices and "remove" in choices
    finally:
        api.functions.cache_clear()


def test_the_api_function_is_documented_from_the_declaration():
    doc = mattekit.rotoscope.__doc__
    assert doc.startswith("rotoscope(plate, output, progress=None, **options): ")
    for option in registry.sequences()["roto"].declared:
        if "api" in option.hosts and not option.required:
            assert re.search(rf"^    {option.name} \(", doc, re.M), option.name
