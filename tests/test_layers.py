"""The import picture: packages depend only on lower layers, and no module imports itself back."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "core" / "mattekit"

# Lower layers first; a module may import from its own layer or below, never above.
LAYERS = [
    {"errors", "fsutil", "client", "metrics", "onnx_import", "provenance"},
    {"ops", "weights"},
    {"io", "matting", "catalog", "nets", "engines", "hints"},
    {"runtime", "tiling", "pipeline", "temporal", "tracking"},
    {"superres", "masks", "cutout", "lens", "disparity"},  # the algorithms the tasks declare
    {"tasks"},
    {"jobs"},
    {"api", "worker", "bench"},
    {"commands"},
    {"cli", "__main__"},
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """{module: mattekit modules it imports (at any depth of the file)}; the package root (__version__) is left out."""
    edges = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
                target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module or ""
                named = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules]
                targets = named or [target]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            edges[name].update(t for t in targets if t in modules and t not in (name, "mattekit"))
    return edges


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else module
    return next(i for i, layer in enumerate(LAYERS) if top in layer)


def test_no_upward_imports():
    modules = _modules()
    upward = [f"{a} -> {b}" for a, targets in _imports(modules).items() if a != "mattekit"
              for b in targets if _layer(b) > _layer(a)]
    assert not upward, "imports from a higher layer: " + ", ".join(sorted(upward))


def test_no_import_cycles_between_packages():
    modules = _modules()
    groups = defaultdict(set)
    for a, targets in _imports(modules).items():
        for b in targets:
            ga, gb = a.split(".")[1] if "." in a else a, b.split(".")[1] if "." in b else b
            if ga != gb and a != "mattekit":
                groups[ga].add(gb)

    def reaches(start: str, goal: str, seen: set) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in groups[start])

    cyclic = sorted(g for g in list(groups) if reaches(g, g, {g}))
    assert not cyclic, f"packages in an import cycle: {cyclic}"
