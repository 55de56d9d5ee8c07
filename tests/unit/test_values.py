"""Options hold values past the front ends (issue 71): the text a host hands in is parsed once, when the options are
made, into a box, points, a shadow, a background, a focus point or frames; later stages read those values.

The counts run the real commands on real photos and plates from the shared data (u2netp and csnet-sod from the
shared mirror), with the one box parser wrapped to count its calls.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import mattekit
from mattekit import cli, io
from mattekit.tasks.common import Background, Shadow
from mattekit.io.frame_ranges import Frames
from mattekit.lens import Focus
from mattekit.options import model_choice, OptionError, options_of
from mattekit.subject import hint_text, hints
from mattekit.tasks import registry
from plates import two_subject_plate

PHOTO = "data/grabcut50/im/person1.jpg"  # 600 x 450
BOX = "150,40,460,450"


@pytest.fixture
def mirror(shared, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    return shared / "weights"


@pytest.fixture
def box_parses(monkeypatch) -> list:
    """The values :func:`mattekit.subject.hint_text.parse_box` is called with from now on (the real parser runs)."""
    calls, real = [], hint_text.parse_box

    def counted(given):
        calls.append(given)
        return real(given)

    monkeypatch.setattr(hint_text, "parse_box", counted)
    return calls


def test_a_box_is_parsed_once_per_photo(shared, mirror, tmp_path, box_parses):
    """CLI and API: the box is parsed when the options are made, not again for the header check or the hint."""
    photo = shared / PHOTO
    assert (
        cli.main(
            [
                "remove",
                str(photo),
                "-o",
                str(tmp_path / "cli.png"),
                "--model",
                "u2netp",
                "--hint-model",
                "none",
                "--result",
                "alpha",
                "--box",
                BOX,
            ]
        )
        == 0
    )
    assert box_parses == [BOX]
    box_parses.clear()
    written = mattekit.remove_background(
        str(photo),
        output=tmp_path / "api.png",
        model="u2netp",
        hint_model="none",
        result="alpha",
        box=(150, 40, 460, 450),
    )
    assert box_parses == [(150, 40, 460, 450)]
    cuts = [io.read_image(path).pixels for path in (written, tmp_path / "cli.png")]
    assert np.array_equal(*cuts)  # the tuple and the text: the same cut


def test_a_keyframe_box_is_parsed_once_per_keyframe(shared, mirror, tmp_path, box_parses):
    """A roto run with boxes on two keyframes of a four-frame plate parses each box once (the API and the CLI)."""
    plate = two_subject_plate(shared, tmp_path / "plate", 4)
    boxes = ["1001:214,0,428,120", "1003:220,0,428,120"]
    mattekit.rotoscope(
        plate, str(tmp_path / "api" / "m.####.png"), model="csnet-sod", device="cpu", threads=1, radius=1, box=boxes
    )
    assert sorted(box_parses) == ["214,0,428,120", "220,0,428,120"]
    box_parses.clear()
    assert (
        cli.main(
            [
                "roto",
                plate,
                "-o",
                str(tmp_path / "cli" / "m.####.png"),
                "--model",
                "csnet-sod",
                "--device",
                "cpu",
                "--threads",
                "1",
                "--radius",
                "1",
                "--box",
                boxes[0],
                "--box",
                boxes[1],
                "-q",
            ]
        )
        == 0
    )
    assert sorted(box_parses) == ["214,0,428,120", "220,0,428,120"]


def test_a_worker_roto_request_parses_each_keyframe_box_once(shared, mirror, tmp_path, box_parses, make_worker):
    """The worker checks a roto request (its job built once for the checks) and runs it (the job built again from the
    checked options): each box, here two objects' boxes on one keyframe, is parsed once, where the JSON text enters."""
    plate = two_subject_plate(shared, tmp_path / "shot" / "plate", 2)
    _, worker = make_worker(allow_dirs=[str(tmp_path / "shot")])
    worker.run(
        "roto",
        [],
        {
            "plate": plate,
            "output": str(tmp_path / "shot" / "out" / "m.####.png"),
            "model": "csnet-sod",
            "device": "cpu",
            "threads": 1,
            "radius": 1,
            "box": "1001:0,0,214,120@dog;1001:214,0,428,120@swan",
        },
    )
    assert sorted(box_parses) == ["0,0,214,120", "214,0,428,120"]
    assert sorted(p.name for p in (tmp_path / "shot" / "out").glob("m_*.png")) == [
        "m_dog.1001.png",
        "m_dog.1002.png",
        "m_swan.1001.png",
        "m_swan.1002.png",
    ]


def test_the_options_hold_values_and_print_as_their_text():
    remove = registry.get("remove")
    made = remove.make_options(
        {"box": "10, 20,30,40", "point": "1,2;3,4", "shadow": "12,12,8,0.5", "background": "#00ff00"}
    )
    assert made.box == hints.Box(10, 20, 30, 40) and made.point == (hints.Point(1, 2), hints.Point(3, 4))
    assert made.shadow == Shadow(12, 12, 8, 0.5) and made.shadow.offset == (12, 12)
    assert made.background == Background("colour", (0.0, 1.0, 0.0), "#00ff00")
    table = remove.option_table()
    texts = {name: table[name].text(getattr(made, name)) for name in ("box", "point", "shadow", "background")}
    assert texts == {"box": "10,20,30,40", "point": "1,2;3,4", "shadow": "12,12,8,0.5", "background": "#00ff00"}
    again = remove.make_options(texts)  # the text form reads back as the same values
    assert all(getattr(again, name) == getattr(made, name) for name in texts)
    focus = registry.get("bokeh").make_options({"focus": "50%,400"}).focus
    assert focus == Focus(50.0, 400.0, True, False) and str(focus) == "50%,400"
    roto = registry.sequences()["roto"].make_options(
        {"plate": "p.####.png", "output": "m.####.png", "frames": "1001-1003,1010", "weights": __file__}
    )
    assert roto.frames == Frames((1001, 1002, 1003, 1010)) and str(roto.frames) == "1001-1003,1010"
    assert roto.weights == Path(__file__)


def test_every_parsed_option_returns_its_value_and_takes_it_back():
    """Every option declared with a parser: checking its text gives what the parser gives (nothing thrown away), and
    that value, checked again, is the same value (the API may pass values as they are; the worker's JSON may not)."""
    samples = {
        "box": "1,2,30,40",
        "point": "3,4;5,6",
        "exclude": "7,8",
        "shadow": "1,2,3,0.5",
        "background": "blur:4",
        "focus": "10,20",
        "frames": "1-5x2",
        "device": " cpu ",
        "weights": __file__,
        "hint_weights": __file__,
        "depth_weights": __file__,
    }
    keyframes = {"box": "1001:1,2,30,40@dog;1003:5,5,9,9", "point": "1001:3,4@dog;1001:5,6", "exclude": "7:7,8"}
    seen = set()
    for declaration in registry.declarations().values():
        for option in options_of(declaration.options):
            keyframe = declaration.name == "roto" and option.name in keyframes  # roto's hints: FRAME:VALUE[@NAME]
            given = (keyframes if keyframe else samples).get(option.name)
            if option.parse is None or given is None:
                continue
            value = option.check(given)
            assert not isinstance(value, str) or option.name == "device", option.name
            assert option.check(value, values=True) == value, option.name
            seen.add((keyframe, option.name))
    assert seen == {(False, name) for name in samples} | {(True, name) for name in keyframes}
    with pytest.raises(OptionError, match="The box '5,5,5,9' is empty"):
        registry.get("remove").make_options({"box": (5, 5, 5, 9)})
    with pytest.raises(OptionError, match="Option 'box' must be a string"):
        registry.get("remove").make_options({"box": [1, 2, 30, 40]}, host="worker")


def test_every_keyword_of_a_declared_option_checks_to_itself():
    """The words an option declares it takes besides its text form (the schema's "keywords") are what the option's
    check gives for them, case and surrounding spaces aside: a host that sends one gets it as named."""
    seen = set()
    for declaration in registry.declarations().values():
        for option in options_of(declaration.options):
            for word in option.keywords or ():
                assert option.check(word) == word and option.check(f" {word.upper()} ") == word, (option.name, word)
                seen.add((option.name, word))
    assert ("shadow", "keep") in seen


def test_hint_stages_pass_a_named_value(shared, mirror):
    """The context of a hinted region names its parts (hint, region), the same value the mask stage reads."""
    from mattekit import runtime
    from mattekit.tasks import remove

    pixels = io.read_image(shared / PHOTO).pixels[..., :3]
    predictor = runtime.ModelCache().get(model_choice("u2netp", "segment"), "cpu")
    options = remove.TASK.make_options({"model": "u2netp", "hint_model": "none", "box": BOX, "box_focus": True})
    _, context = remove.TASK.prepare({"model": predictor}, {"image": pixels}, options)
    assert isinstance(context, hints.Hinted) and context.hint.box == hint_text.parse_box(BOX)
    region = context.region
    assert (
        isinstance(region, hints.Box)
        and 0 <= region.y0 < 40
        and region.x0 < 150
        and region.y1 == 450
        and region.x1 > 460 - 1
    )
    assert dataclasses.is_dataclass(options) and np.ndim(options.box) == 1
