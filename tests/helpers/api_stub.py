"""The typed stub of the package (``core/mattekit/__init__.pyi``), made from the task registry, so that editors and
type checkers see the API functions that :mod:`mattekit.api` generates at run time (``remove_background``,
``rotoscope`` ...) with each option's name, type and default.

``python tests/helpers/api_stub.py`` writes it; ``tests/unit/tasks/test_registry.py`` checks that the file holds it as the registry
makes it (a new task or option fails there until the stub is written again).
"""

from __future__ import annotations

import re
import subprocess
import sys
import types
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STUB = ROOT / "core" / "mattekit" / "__init__.pyi"
HEAD = '''"""Typed stub of mattekit: the API functions made from the task registry (tests/helpers/api_stub.py writes it)."""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy
import PIL.Image
{imports}

__version__: str

Input = str | os.PathLike[str] | bytes | bytearray | memoryview | PIL.Image.Image | numpy.ndarray
"""A path (the result is written beside it, its path returned), an image file's bytes (PNG bytes back), a PIL image
(a PIL image back) or an H x W [x C] array (uint8 / uint16 / float in [0, 1]; the same dtype back)."""


def load_model(name: str | None = None, task: str = "segment", device: str = "auto",
               weights: str | None = None) -> mattekit.predictor.Predictor: ...
def clear_models() -> None: ...
'''


# What the API takes besides the text for each parser of a parsed option (:meth:`mattekit.options.Option.check`);
# a parser missing here fails the stub's test until its form is written down.
VALUE_FORMS = {
    "mattekit.subject.hint_text:parse_box": "tuple[int, int, int, int]",
    "mattekit.subject.hint_text:parse_points": "tuple[int, int] | Sequence[tuple[int, int]]",
    "mattekit.tasks.common:parse_shadow": "tuple[float, float, float, float]",
    "mattekit.tasks.common:parse_background": "tuple[int, int, int]",
    "mattekit.lens.renderer:focus_of": "tuple[float, float]",
    "mattekit.io.frame_ranges:parse_frames": "Sequence[int]",
    **dict.fromkeys(
        (
            "mattekit.subject.keyframe_hints:parse_boxes",
            "mattekit.subject.keyframe_hints:parse_points",
            "mattekit.subject.keyframe_hints:parse_excludes",
        ),
        "mattekit.subject.keyframe_hints.KeyframeHint | Sequence[str | mattekit.subject.keyframe_hints.KeyframeHint]",
    ),
    "mattekit.subject.keyframe_hints:parse_hint_masks": "os.PathLike[str] | mattekit.subject.keyframe_hints.HintMask | Sequence[str | mattekit.subject.keyframe_hints.HintMask]",
    "mattekit.weights.added:given_file": "os.PathLike[str]",
    "mattekit.machine:check_device": None,
    "mattekit.io.colour:check_colorspace": None,
    "mattekit.io.colour:check_view": None,
}


def _text(hint, imports: set[str]) -> str:
    """A type annotation as stub text; the modules it names go into ``imports``."""
    if hint is type(None):
        return "None"
    if hint is Ellipsis:
        return "..."
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_text(a, imports) for a in args)
    if origin is not None:
        return f"{_text(origin, imports)}[{', '.join(_text(a, imports) for a in args)}]"
    if hint.__module__ == "builtins":
        return hint.__qualname__
    imports.add(hint.__module__)
    return f"{hint.__module__}.{hint.__qualname__}"


def _parameters(options: type, imports: set[str], skip=(), sequence: bool = False) -> list[str]:
    """``name: type = default`` of each option of the dataclass ``options`` that the API offers: a parsed option
    takes its text or its value, a path option a path, a model option of an image task (not ``sequence``) a name
    or a loaded model (:func:`mattekit.load_model`)."""
    from mattekit.options import options_of

    hints = typing.get_type_hints(options)
    out = []
    for option in options_of(options):
        if "api" not in option.hosts or option.name in skip:
            continue
        if option.parse:  # the text, or the value in the API's plain form; None: text only
            kinds = ["str", *filter(None, [VALUE_FORMS[option.parse]]), *(["None"] if option.nullable else [])]
            imports.update(re.findall(r"(mattekit(?:\.[a-z_]\w*)+)\.[A-Z]", VALUE_FORMS[option.parse] or ""))
        elif option.model:  # the name (the options hold the model it names: mattekit.options.ModelChoice)
            kinds = ["str", *(["None"] if option.nullable else [])]
        else:
            kinds = _text(hints[option.name], imports).split(" | ")
        if option.model and not sequence:
            kinds.append("mattekit.predictor.Predictor")
        if option.path and not option.parse:
            kinds.append("os.PathLike[str]")
        kinds = [k for k in dict.fromkeys(kinds) if k != "None"] + ["None"] * ("None" in kinds)
        kind = " | ".join(kinds)
        default = "" if option.required else f" = {option.default!r}"
        out.append(f"{option.name}: {kind}{default}")
    return out


def _function(name: str, params: list[str], returns: str, doc: str) -> str:
    quoted = doc.replace("\\", "\\\\").replace('"""', '\\"\\"\\"').replace("\n", "\n    ").replace("\n    \n", "\n\n")
    lines = "".join(f"    {p},\n" for p in params)
    return f'def {name}(\n{lines}) -> {returns}:\n    """{quoted}"""\n'


def stub() -> str:
    """The stub's text as the registry makes it now."""
    from mattekit import api
    from mattekit.tasks import registry
    from mattekit.tasks.common import FileOptions

    imports: set[str] = set()
    functions = api.functions()
    parts = []
    for task in registry.tasks().values():
        params = ["x: Input", "output: str | os.PathLike[str] | None = None"]
        params += _parameters(FileOptions, imports) + ["*"] + _parameters(task.options, imports)
        params += [f"{port.name}: Input | None = None" for port in task.inputs[1:]]
        parts.append(_function(task.api_name, params, "Any", functions[task.api_name].__doc__))
    for task in registry.sequences().values():
        required = [o.name for o in task.declared if o.required]
        params = [f"{name}: str | os.PathLike[str]" for name in required] + ["/", "*"]
        params += ["progress: Callable[[Any], Any] | None = None"]
        params += _parameters(task.options, imports, skip=required, sequence=True)
        imports.add("mattekit.roto")
        parts.append(_function(task.api_name, params, "mattekit.roto.Summary", functions[task.api_name].__doc__))
    head = HEAD.format(imports="".join(f"import {module}\n" for module in sorted(imports | {"mattekit.predictor"})))
    return _formatted(head + "\n\n" + "\n\n".join(parts))


def _formatted(text: str) -> str:
    """``text`` as ``ruff format`` leaves the stub (pyproject's settings; the repository is held to it)."""
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(STUB), "-"],
        input=text,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return done.stdout


def written() -> str:
    return STUB.read_text() if STUB.exists() else ""


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "core"))
    STUB.write_text(stub())
    print(f"wrote {STUB}")
