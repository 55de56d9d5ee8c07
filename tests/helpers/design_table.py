"""The layout table of docs/design.md, made from the tree: one line per module of ``core/mattekit`` (its path, line
count and its docstring's first line), grouped by the layers of ``tests/helpers/layers.py``, lowest first.

``python tests/helpers/design_table.py`` writes it into docs/design.md (the first fenced block under "## Layout");
``tests/unit/test_layers.py`` checks that the file holds it as the tree makes it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from layers import LAYERS, PACKAGE

DESIGN = PACKAGE.parents[1] / "docs" / "design.md"
TITLES = [
    "foundations",
    "shared operations and weights",
    "images, matting, catalog, options, nets, engines",
    "running networks; the finish of their answers",
    "the algorithms the tasks declare",
    "task declarations",
    "running tasks: the pipeline and the runner; roto",
    "front ends in Python",
    "commands",
    "the command line",
]
WIDTH = 100  # characters of a docstring's first line shown; a longer one is cut at a word and ends in " ..."
BLOCK = re.compile(r"(## Layout\n.*?```\n)(.*?)(```\n)", re.S)


def _line(path: Path) -> str:
    """``path`` (a module of the package) as a table line: relative path, line count, first docstring line."""
    source = path.read_text()
    first = (ast.get_docstring(ast.parse(source)) or "").strip().split("\n")[0]
    if len(first) > WIDTH:
        first = first[: first.rfind(" ", 0, WIDTH - 4)] + " ..."
    return f"{path.relative_to(PACKAGE).as_posix():<26}{len(source.splitlines()):>4}  {first}".rstrip()


def table() -> str:
    """The layout table, a layer heading then its modules: top-level names sorted, a package's ``__init__``
    first, then its modules sorted by path."""
    assert len(TITLES) == len(LAYERS), "one title per layer of tests/unit/test_layers.py"
    lines = []
    for number, (title, layer) in enumerate(zip(TITLES, LAYERS), 1):
        lines.append(f"# layer {number} {title}")
        for name in sorted(layer):
            folder = PACKAGE / name
            if folder.is_dir():
                paths = sorted(
                    folder.rglob("*.py"), key=lambda p: (p.parent.as_posix(), p.name != "__init__.py", p.name)
                )
            else:
                paths = [PACKAGE / f"{name}.py"]
            lines += [_line(p) for p in paths]
    return "\n".join(lines) + "\n"


def written() -> str:
    """The table docs/design.md holds now."""
    found = BLOCK.search(DESIGN.read_text())
    assert found, "docs/design.md has a fenced block under '## Layout'"
    return found.group(2)


if __name__ == "__main__":
    DESIGN.write_text(BLOCK.sub(lambda m: m.group(1) + table() + m.group(3), DESIGN.read_text(), count=1))
    print(f"wrote the layout table of {DESIGN}")
