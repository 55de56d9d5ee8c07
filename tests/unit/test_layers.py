"""The import picture: packages depend only on lower layers, no module imports itself back (through any
chain of modules, inside a package or across packages), and task modules import no other task module.

Every import counts, wherever it stands in the file: at the top, inside a function (a lazy import) or
under a condition. Importing ``a.b.c`` runs the ``__init__`` of ``a.b`` first, so it counts as an import
of that package too (unless the importer lives inside it). Modules named by strings count as well: a string
that is a dotted mattekit name (``"mattekit.tasks.common:parse_shadow"``, ``"mattekit.roto.RotoSpec"``), and the
literal start of an ``importlib.import_module`` argument (``f"mattekit.commands.{name}"``, ``f"{__package__}.x"``);
not a module another process runs (``[python, "-m", "mattekit.commands.serve"]``).
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest
from layers import LAYERS, PACKAGE

# Import cycles known and being mended elsewhere (none now: the worker's http <-> service cycle is mended).
KNOWN_CYCLES: list[set[str]] = []


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


DOTTED = re.compile(r"mattekit(\.[A-Za-z_]\w*)+(:[A-Za-z_]\w*)?")


def _named_module(text: str, modules) -> str | None:
    """The longest known module that the dotted name ``text`` starts with (``a.b.c:x`` -> ``a.b.c``), else None."""
    parts = text.partition(":")[0].split(".")
    return next((".".join(parts[:end]) for end in range(len(parts), 0, -1) if ".".join(parts[:end]) in modules), None)


def _literal_start(node: ast.AST, name: str, package: str) -> str | None:
    """The text an ``import_module`` argument starts with, as far as it is known: a string literal whole, an
    f-string's literal start with ``__name__`` / ``__package__`` filled in; None when nothing of it is known."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if not isinstance(node, ast.JoinedStr):
        return None
    start = ""
    for piece in node.values:
        if isinstance(piece, ast.Constant):
            start += piece.value
        elif isinstance(piece.value, ast.Name) and piece.value.id in ("__name__", "__package__"):
            start += name if piece.value.id == "__name__" else package
        else:
            return start.rpartition(".")[0] or None  # only the dotted names complete before the unknown part
    return start


def _string_targets(node: ast.AST, name: str, package: str, modules) -> list[str]:
    """The mattekit modules a string names (see the module docstring); those named in part by an f-string that
    are ``name`` or a package holding it are left out (what the unknown part adds is not known)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and DOTTED.fullmatch(node.value):
        target = _named_module(node.value, modules)
        return [target] if target else []
    if (
        isinstance(node, ast.Call)
        and node.args
        and (getattr(node.func, "attr", None) == "import_module" or getattr(node.func, "id", None) == "import_module")
    ):
        start = _literal_start(node.args[0], name, package)
        target = _named_module(start, modules) if start else None
        partial = start != getattr(node.args[0], "value", None)
        if target and not (partial and (name == target or name.startswith(target + "."))):
            return [target]
    return []


def _imports_of(name: str, is_package: bool, source: str, modules) -> set[str]:
    """The mattekit modules that module ``name`` (a package's ``__init__`` when ``is_package``) imports,
    at any depth of its ``source``, with the packages whose ``__init__`` those imports run; the package
    root (``__version__``) and the module itself are left out. ``modules``: the known module names."""
    package = name if is_package else name.rsplit(".", 1)[0]
    found = set()
    tree = ast.parse(source)
    run_elsewhere = {
        id(b)
        for node in ast.walk(tree)
        if isinstance(node, (ast.List, ast.Tuple))
        for a, b in zip(node.elts, node.elts[1:])
        if isinstance(a, ast.Constant) and a.value == "-m"
    }
    for node in ast.walk(tree):
        if id(node) in run_elsewhere:
            continue
        if isinstance(node, (ast.Constant, ast.Call)):
            targets = _string_targets(node, name, package, modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            named = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules]
            targets = named or [target]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            for end in range(2, len(parts) + 1):  # the packages on the way, then the module
                module = ".".join(parts[:end])
                inside = name == module or name.startswith(module + ".")
                if module in modules and (end == len(parts) or not inside):
                    found.add(module)
    return found - {name, "mattekit"}


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """{module: mattekit modules it imports (see :func:`_imports_of`)}."""
    return {
        name: _imports_of(name, path.name == "__init__.py", path.read_text(), modules) for name, path in modules.items()
    }


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else module
    return next(i for i, layer in enumerate(LAYERS) if top in layer)


def _cycles(edges: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected groups of more than one module (Tarjan), or of one importing itself."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1 or node in edges.get(node, ()):
                groups.append(group)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def test_every_module_has_a_layer():
    missing = sorted(
        {m.split(".")[1] for m in _modules() if "." in m and not any(m.split(".")[1] in layer for layer in LAYERS)}
    )
    assert not missing, f"modules in no layer of LAYERS: {missing}"


def test_no_upward_imports():
    modules = _modules()
    upward = [
        f"{a} -> {b}"
        for a, targets in _imports(modules).items()
        if a != "mattekit"
        for b in targets
        if _layer(b) > _layer(a)
    ]
    assert not upward, "imports from a higher layer: " + ", ".join(sorted(upward))


def test_no_import_cycles_between_packages():
    modules = _modules()
    groups = defaultdict(set)
    for a, targets in _imports(modules).items():
        for b in targets:
            ga, gb = a.split(".")[1] if "." in a else a, b.split(".")[1] if "." in b else b
            if ga != gb and a != "mattekit":
                groups[ga].add(gb)
    cyclic = sorted(sorted(group) for group in _cycles(groups))
    assert not cyclic, f"packages in an import cycle: {cyclic}"


def test_no_import_cycles_between_modules():
    """No chain of imports leads from a module back to itself, inside a package or across packages."""
    cycles = [sorted(group) for group in _cycles(_imports(_modules())) if group not in KNOWN_CYCLES]
    assert not cycles, f"modules in an import cycle: {cycles}"


def test_known_cycles_are_still_there():
    """A mended cycle leaves the list of known ones, so it cannot come back unnoticed."""
    cycles = _cycles(_imports(_modules()))
    mended = [sorted(known) for known in KNOWN_CYCLES if not any(known <= group for group in cycles)]
    assert not mended, f"no longer a cycle, take it out of KNOWN_CYCLES: {mended}"


def test_task_modules_import_no_other_task_module():
    """A task module imports only the modules of mattekit.tasks that declare no task: the registry, the option
    groups several tasks share (common) and, for remove and select-subject, subject (which imports only those
    two); the registry imports none of it (it finds the tasks by listing its folder)."""
    modules = _modules()
    shared = {
        "mattekit.tasks.registry": set(),
        "mattekit.tasks.common": set(),
        "mattekit.tasks.hinted_subject": {"mattekit.tasks.registry", "mattekit.tasks.common"},
    }
    crossing = [
        f"{a} -> {b}"
        for a, targets in _imports(modules).items()
        if a.startswith("mattekit.tasks.")
        for b in targets
        if (b == "mattekit.tasks" or b.startswith("mattekit.tasks.")) and (b not in shared.get(a, set(shared) - {a}))
    ]
    assert not crossing, "task modules importing other task modules: " + ", ".join(sorted(crossing))


def test_lazy_and_nested_imports_count():
    """Imports inside functions, classes and conditions are found like top-level ones, and importing a
    submodule counts as importing its package (outside it)."""
    modules = {"mattekit", "mattekit.a", "mattekit.pkg", "mattekit.pkg.b", "mattekit.pkg.c", "mattekit.d", "mattekit.e"}
    source = (
        "def f():\n    from .pkg import b\n"
        "class K:\n    def g(self):\n        import mattekit.d\n"
        "if True:\n    from . import e as renamed\n"
    )
    assert _imports_of("mattekit.a", False, source, modules) == {
        "mattekit.pkg",
        "mattekit.pkg.b",
        "mattekit.d",
        "mattekit.e",
    }
    inside = "def f():\n    from .c import x\n    from .. import a\n"
    assert _imports_of("mattekit.pkg.b", False, inside, modules) == {"mattekit.pkg.c", "mattekit.a"}


def test_modules_named_by_strings_count():
    """Dotted mattekit names in strings and importlib's literal starts are arrows; an f-string's unknown part
    adds nothing, one naming the importer's own package is no arrow, a module run as ``-m`` in a command line is
    another process."""
    modules = {
        "mattekit",
        "mattekit.a",
        "mattekit.pkg",
        "mattekit.pkg.b",
        "mattekit.pkg.c",
        "mattekit.d",
        "mattekit.e",
        "mattekit.f",
    }
    source = (
        "X = SequenceTask(runner='mattekit.pkg.c:Job', spec='mattekit.d.Spec')\n"
        "def f(name):\n    importlib.import_module(f'mattekit.e.{name}')\n"
        "    import_module(f'{__package__}.f')\n    importlib.import_module(f'mattekit.pkg.{name}')\n"
        "    run([python, '-m', 'mattekit.a'])\n"
        "HELP = 'see mattekit.a for more'\n"
    )
    assert _imports_of("mattekit.pkg.b", False, source, modules) == {"mattekit.pkg.c", "mattekit.d", "mattekit.e"}
    assert _imports_of("mattekit.a", False, source, modules) == {
        "mattekit.pkg",
        "mattekit.pkg.c",
        "mattekit.d",
        "mattekit.e",
        "mattekit.f",
    }
    assert _imports_of("mattekit.a", False, "import_module(f'{__package__}.pkg.{x}')", modules) == {"mattekit.pkg"}


def test_the_cycle_finder_finds_cycles():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert sorted(map(sorted, _cycles(edges))) == [["a", "b", "c"], ["e"]]


def test_the_design_notes_show_the_tree_as_it_is():
    """docs/design.md's layout table is the tree's: every module in its layer, its line count and docstring."""
    import design_table

    assert design_table.written() == design_table.table(), (
        "docs/design.md's layout table differs from the tree: run `python tests/helpers/design_table.py` and commit it"
    )


# The code held to the caps: the package, the benchmarks beside it (held as the package is), and the host code (the
# GIMP plug-in, the Blender add-on, the set-up and the installers).
BENCH = PACKAGE.parents[1] / "bench" / "mattekit_bench"
CAPPED = [PACKAGE, BENCH] + [PACKAGE.parents[1] / folder for folder in ("gimp_plugin", "blender_addon", "install")]


# Issue 92: no function of the package or the benchmarks over 60 lines (the host code: 80).
@pytest.mark.parametrize("folder", CAPPED, ids=lambda folder: folder.name)
def test_no_module_is_over_400_lines_and_no_function_over_60(folder):
    assert list(folder.rglob("*.py")), f"{folder} holds no module"
    over = {p.relative_to(folder).as_posix() for p in folder.rglob("*.py") if len(p.read_text().splitlines()) > 400}
    assert not over, f"over 400 lines in {folder.name}/: {sorted(over)}"
    cap = 60 if folder in (PACKAGE, BENCH) else 80
    long = []
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > cap:
                long.append(f"{path.relative_to(folder).as_posix()}:{node.name} ({node.end_lineno - node.lineno + 1})")
    assert not long, f"functions over {cap} lines in {folder.name}/: {long}"
