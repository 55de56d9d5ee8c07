"""The worker's classes are named for what they are (issue 82): the HTTP client of a running worker
(``WorkerClient``), the served worker (``WorkerServer``), what its routes need of it (``WorkerForRoutes``), its
log (``WorkerLog``), roto's Ray actor (``RotoWorker``); none is a bare ``Worker``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_no_class_is_called_worker_in_the_package_or_the_host_code():
    found = []
    for folder in ("core", "bench", "gimp_plugin", "blender_addon", "install"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef) and node.name == "Worker":
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == [], f"classes called Worker: {found}"
    from mattekit.worker import routes

    assert routes.Routes.__annotations__["worker"] == "WorkerForRoutes"  # the routes' view of the served worker
