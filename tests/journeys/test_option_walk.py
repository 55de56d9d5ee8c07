"""The bad-option walk: every option of every declared task, and the flags the commands add, given
bad values made from its declaration, is refused in one sentence that names the option (or the value) in
the words of the front end it reached, before any model loads.

The cases come from the registry (:func:`mattekit.tasks.registry.declarations`), not from a hand list: a
new option is walked as soon as it is declared. Each CLI case runs ``mattekit.cli.main`` in this process,
offline, with no mirror and an empty cache, so a model load would end in the offline weights message: a
case that ends there checked too late. The Python API and the worker's option check walk the same values
in their own spelling of the option names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mattekit import api, catalog, cli
from mattekit.errors import MattekitError
from mattekit.tasks import registry
from mattekit.options import Option, OptionError
from mattekit.worker import operations

# Text options that legitimately take any text, each with why; the walk gives every other text option garbage.
# (None today: every text option is a choice, a model name, a path or a text with a syntax its declaration
# checks, so the list is empty on purpose; an entry here is a decision, not a way round a failing case.)
ALLOW_ANY_TEXT: dict[tuple[str, str], str] = {}

GARBAGE = ("1,2,x", "-5,-5", "-5,-5,-1,-1", "")  # malformed, negative or odd shapes, empty
MISSING, FOLDER, DEVICE = "nope/missing.####.png", "empty-folder", "/dev/zero"
PLATE = "plate/p.####.png"  # the roto plate, relative to the case folder
SKIPPED: list[str] = []  # "task --flag: why" for options the walk cannot give a bad value (booleans: flags)


@dataclass(frozen=True)
class Case:
    task: str
    flag: str  # as the CLI spells it; "-o" for the output
    name: str  # as the API and the worker spell it ("" for CLI-only flags)
    value: object  # a string for the CLI (relative paths are made absolute in the case folder)
    hosts: tuple[str, ...] = ("cli",)

    @property
    def id(self) -> str:
        return f"{self.task} {self.flag}={self.value}"


def _wrong_task_model(tasks) -> str:
    """A catalog model of a task other than ``tasks`` (one catalog task or a tuple)."""
    tasks = (tasks,) if isinstance(tasks, str) else tasks
    return next(m.name for m in catalog.load().models.values() if m.task not in tasks)


def _number_values(option: Option) -> list[object]:
    """Bad values for an int or float option: not a number, outside its range, and nan / inf for floats."""
    values: list[object] = ["abc"]
    if option.type is float:
        values += ["nan", "inf"]
    step = 1 if option.type is int else 0.5
    if option.minimum is not None:
        values.append(option.type(option.minimum - step))
    if option.maximum is not None:
        values.append(option.type(option.maximum + step))
    return values


def bad_values(task: str, option: Option) -> list[object]:
    """The bad values the walk gives ``option``, from its declaration alone."""
    if option.type is bool:
        SKIPPED.append(f"{task} {option.flag}: a flag (--x / --no-x), no value to get wrong")
        return []
    if option.choices is not None:
        extra = ["abc", max(option.choices) + 1] if option.type is int else ["no-such-choice"]
        return extra
    if option.type in (int, float):
        return _number_values(option)
    if option.model is not None:
        return ["no-such-model", _wrong_task_model(option.model)]
    if option.path and option.writes:
        return [PLATE]  # writing over the frames the run reads
    if option.path:
        return [MISSING, FOLDER, DEVICE]
    if (task, option.name) in ALLOW_ANY_TEXT:
        return []
    return [v for v in GARBAGE if v or not option.repeat]  # a repeatable option's empty text is no value at all


def _cases() -> list[Case]:
    found = []
    for task in registry.declarations().values():
        for option in task.declared:
            if "cli" not in option.hosts and "api" not in option.hosts:
                continue
            hosts = tuple(h for h in ("cli", "api", "worker") if h in option.hosts)
            found += [Case(task.name, option.flag, option.name, v, hosts) for v in bad_values(task.name, option)]
        if isinstance(task, registry.Task):
            for port in task.inputs[1:]:  # --trimap, --mask, --backdrop ...: files the run reads
                found += [Case(task.name, f"--{port.name.replace('_', '-')}", "", v) for v in (MISSING, DEVICE)]
        if "threads" not in task.option_table():  # roto declares its --threads
            found += [Case(task.name, "--threads", "", v) for v in ("abc", "0", "1025")]
        found += [
            Case(task.name, "-o", "", v)
            for v in (("a.png", "a.png/inside.png") if task.name != "roto" else ("a.png/m.####.png",))
        ]
    found += [
        Case("roto", flag, "", v)
        for flag, v in (("--chunk", "abc"), ("--chunk", "-1"), ("--chunk-index", "0"), ("--ray-workers", "0"))
    ]
    return found


CASES = _cases()


@pytest.fixture
def offline(monkeypatch, tmp_path) -> Path:
    """A case folder with a tiny photo (a.png), a one-frame plate and an empty folder; offline, no mirror,
    an empty cache (conftest's MATTEKIT_HOME): any model load fails with the offline weights message."""
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    monkeypatch.delenv("MATTEKIT_MIRROR", raising=False)
    monkeypatch.chdir(tmp_path)
    pixels = np.zeros((12, 16, 3), np.uint8)
    pixels[3:9, 4:12] = (220, 120, 40)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    (tmp_path / "plate").mkdir()
    Image.fromarray(pixels).save(tmp_path / "plate" / "p.0001.png")
    (tmp_path / FOLDER).mkdir()
    (tmp_path / "out").mkdir()
    return tmp_path


def _argv(case: Case, folder: Path) -> list[str]:
    value = str(case.value)
    if value and not value.startswith("/") and ("/" in value or value in ("a.png", FOLDER)):
        value = str(folder / value)
    if case.task == "roto":
        plate, output = str(folder / PLATE), str(folder / "out" / "m.####.png")
        if case.flag == "--plate":
            plate = value
        if case.flag == "-o" or case.flag == "--output":
            output = value
        head = ["roto", plate, "-o", output]
    else:
        head = [case.task, str(folder / "a.png"), "-o", value if case.flag == "-o" else str(folder / "out" / "r.png")]
    return head if case.flag in ("-o", "--output", "--plate") else head + [f"{case.flag}={value}"]


def one_sentence(text: str) -> str:
    """The one line of ``text``, checked to be one 'mattekit: error:' sentence without a traceback."""
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"not one line: {text!r}"
    line = lines[0]
    assert line.startswith("mattekit: error: ") and line.endswith("."), line
    assert not re.search(r"[.;:!?] [A-Z][a-z]", line[len("mattekit: error: ") :]), f"more than one sentence: {line}"
    assert "Internal error" not in line and "Traceback" not in text, line
    return line


AT_MODEL_LOAD = ("MATTEKIT_OFFLINE", "models import", "models list --sources")  # words of the missing-weights error


def before_any_model(line: str) -> None:
    """The refusal came before a model loaded: not the offline weights message (see the control test)."""
    assert not any(words in line for words in AT_MODEL_LOAD), f"checked only at model load: {line}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli_refuses_a_bad_value_in_one_sentence_before_any_model_loads(case, offline, capsys):
    argv = _argv(case, offline)
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse's refusals end the process, as --help does
        code = stop.code
    err = capsys.readouterr().err
    line = one_sentence(err)
    before_any_model(line)
    value = str(case.value)
    named = [case.flag, value, Path(value).name] if value else [case.flag, "''"]
    assert any(n and n in line for n in named), f"names neither {case.flag} nor {value!r}: {line}"
    assert code == 2, (code, line)
    assert not any((offline / "out").iterdir()), "something was written"


def test_the_walk_would_see_a_model_load(offline, capsys):
    """Control: valid options reach the model load, and the offline, empty cache refuses it, so a check made
    only at model load fails the walk above."""
    code = cli.main(["remove", str(offline / "a.png"), "-o", str(offline / "out" / "r.png"), "--crop=0.1"])
    line = one_sentence(capsys.readouterr().err)
    assert code == 2 and "models list --sources" in line
    with pytest.raises(AssertionError, match="checked only at model load"):
        before_any_model(line)


API_CASES = [c for c in CASES if "api" in c.hosts]


def cli_words(message: str, task: str) -> list[str]:
    """The task's CLI flags that ``message`` names: another front end should name its options its own way."""
    flags = {o.flag for o in registry.declarations()[task].declared} | {"-o"}
    return [f for f in flags if re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", message)]


def _api_value(case: Case, folder: Path) -> object:
    """The case's value as a Python caller gives it: numbers as numbers, paths absolute."""
    value = case.value
    if isinstance(value, str) and value in ("nan", "inf"):
        return float(value)
    if isinstance(value, str) and ("/" in value or value == FOLDER) and not value.startswith("/"):
        return str(folder / value)
    return value


def _api_call(case: Case, folder: Path, value: object):
    function = api.functions()[registry.declarations()[case.task].api_name]
    if case.task == "roto":
        paths = {"plate": str(folder / PLATE), "output": str(folder / "out" / "m.####.png")}
        extra = {case.name: value}
        if case.name in paths:
            paths[case.name] = extra.pop(case.name)
        return function(paths["plate"], paths["output"], **extra)
    return function(np.zeros((12, 16, 3), np.float32), **{case.name: value})


def test_api_refuses_the_walk_in_its_own_words(offline):
    """The Python API: each bad value raises one sentence naming the argument as Python spells it (no flags)."""
    failures = []
    for case in API_CASES:
        value = _api_value(case, offline)
        try:
            _api_call(case, offline, value)
        except (OptionError, MattekitError) as exc:
            message = str(exc)
            named = case.name in message or str(case.value) in message or Path(str(value)).name in message
            if (
                not named
                or cli_words(message, case.task)
                or "\n" in message
                or not message.endswith(".")
                or any(words in message for words in AT_MODEL_LOAD)
            ):
                failures.append(f"{case.id}: {message}")
        else:
            failures.append(f"{case.id}: accepted")
    assert not failures, "\n".join(failures)


def test_worker_option_check_refuses_the_walk_in_its_words(offline):
    """The worker's option check (what GIMP and Blender reach): OptionError naming the field as the schema does."""
    offered = operations.build(operations.PathPolicy([str(offline)]))
    failures, tried = [], 0
    for case in (c for c in API_CASES if "worker" in c.hosts):
        value = _api_value(case, offline)
        values = (
            {"plate": str(offline / PLATE), "output": str(offline / "out" / "m.####.png")}
            if case.task == "roto"
            else {}
        )
        values[case.name] = value
        tried += 1
        try:
            offered[case.task].make_options(values)
        except OptionError as exc:
            message = str(exc)
            if (
                not (case.name in message or str(case.value) in message)
                or cli_words(message, case.task)
                or "\n" in message
            ):
                failures.append(f"{case.id}: {message}")
        except Exception as exc:  # noqa: BLE001 - anything else reaches the user as an internal error
            failures.append(f"{case.id}: {type(exc).__name__}: {exc}")
        else:
            failures.append(f"{case.id}: accepted (the job would fail later, or never)")
    assert tried > 20 and not failures, "\n".join(failures)


def test_the_walk_gives_every_declared_option_a_bad_value(capsys):
    """Every option a front end (CLI or API) declares, on every task, is walked with at least one bad value, but
    the boolean flags; each task also gets -o and --threads. The tasks named here by hand must be among them."""
    walked = {(c.task, c.flag) for c in CASES}
    declared = registry.declarations()
    assert {"remove", "matte", "upscale", "bokeh", "enhance", "roto"} <= set(declared)
    unwalked = [
        f"{task.name} {option.flag}"
        for task in declared.values()
        for option in task.declared
        if ("cli" in option.hosts or "api" in option.hosts)
        and option.type is not bool
        and (task.name, option.flag) not in walked
    ]
    assert not unwalked, f"declared options the walk gives no bad value: {unwalked}"
    assert all({(name, "-o"), (name, "--threads")} <= walked for name in declared)
    with capsys.disabled():
        print(
            f"\nbad-option walk: {len(CASES)} cases = {len(walked)} options x bad values "
            f"({len({str(c.value) for c in CASES})} distinct values); {len(set(SKIPPED))} boolean flags skipped"
        )
