"""Packaging: one version, every import declared, the catalog shipped as package data, and a built
wheel and ``pip install .`` (not editable) that work in a clean virtual environment, shipping both packages: the core
(mattekit) and the benchmarks beside it (mattekit_bench)."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import mattekit
from mattekit import catalog
from mattekit.errors import MattekitError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "core" / "mattekit"
BENCH = ROOT / "bench" / "mattekit_bench"
BLENDER_MANIFEST = ROOT / "blender_addon" / "blender_manifest.toml"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _dist_name(requirement: str) -> str:
    """'rembg[cpu]>=2.0; python_version < "3.11"' -> 'rembg' (normalised as PEP 503 does)."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", requirement).group()).lower()


def _imports(node: ast.AST, in_function: bool = False, guarded: bool = False):
    """(top-level name, at module level?, falls back on ImportError?) for each absolute import under ``node``."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name.split(".")[0], not in_function, guarded
    elif isinstance(node, ast.ImportFrom):
        if node.level == 0 and node.module:
            yield node.module.split(".")[0], not in_function, guarded
    elif isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
        return  # for annotations only
    elif isinstance(node, ast.Try):
        optional = guarded or any(
            h.type is not None and re.search(r"\b(ImportError|ModuleNotFoundError)\b", ast.unparse(h.type))
            for h in node.handlers
        )
        for part in node.body:
            yield from _imports(part, in_function, optional)
        for part in node.handlers + node.orelse + node.finalbody:
            yield from _imports(part, in_function, guarded)
    else:
        in_function = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            yield from _imports(child, in_function, guarded)


def test_every_third_party_import_is_declared():
    """Module-level imports need a base dependency; imports inside functions may come from an extra;
    imports that fall back on ImportError are optional by construction."""
    base = {_dist_name(r) for r in PYPROJECT["project"]["dependencies"]}
    extras = {_dist_name(r) for reqs in PYPROJECT["project"]["optional-dependencies"].values() for r in reqs}
    providers = importlib.metadata.packages_distributions()
    problems = []
    for path in sorted([*PACKAGE.rglob("*.py"), *BENCH.rglob("*.py")]):
        for module, top_level, optional in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if module in sys.stdlib_module_names or module in ("mattekit", "mattekit_bench") or optional:
                continue
            dists = {_dist_name(d) for d in providers.get(module, [module])}
            where = f"{path.relative_to(ROOT)} imports {module}"
            if top_level and not dists & base:
                problems.append(f"{where} at module level but {sorted(dists)} is not a dependency")
            elif not dists & (base | extras):
                problems.append(f"{where} but {sorted(dists)} is declared nowhere")
    assert not problems, "\n".join(problems)


def test_the_version_is_written_once():
    """mattekit/__init__.py holds it; pyproject reads it from there; no other file spells it out."""
    assert PYPROJECT["project"]["dynamic"] == ["version"] and "version" not in PYPROJECT["project"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "mattekit.__version__"}
    literal = re.compile(rf"""["']v?{re.escape(mattekit.__version__)}["']""")
    files = [
        ROOT / "pyproject.toml",
        *(
            p
            for folder in ("core", "bench", "install", "gimp_plugin", "blender_addon")
            for p in (ROOT / folder).rglob("*")
            if p.suffix in (".py", ".sh", ".toml")
        ),
    ]
    written = [
        str(p.relative_to(ROOT))
        for p in files
        if p not in (PACKAGE / "__init__.py", BLENDER_MANIFEST) and literal.search(p.read_text(encoding="utf-8"))
    ]
    assert not written, f"the version written outside mattekit/__init__.py: {written}"
    assert importlib.metadata.version("mattekit") == mattekit.__version__  # the installed metadata agrees


def test_blender_manifest_carries_the_package_version():
    """Blender reads the add-on's version from its manifest (it cannot ask Python): it must follow the package."""
    manifest = tomllib.loads(BLENDER_MANIFEST.read_text(encoding="utf-8"))
    assert manifest["version"] == mattekit.__version__


def test_the_catalog_is_package_data():
    assert catalog.CATALOG_PATH == PACKAGE / "catalog.toml" and catalog.CATALOG_PATH.is_file()
    assert "catalog.toml" in PYPROJECT["tool"]["setuptools"]["package-data"]["mattekit"]
    assert "engines/measured.json" in PYPROJECT["tool"]["setuptools"]["package-data"]["mattekit"]  # the engine table


def test_an_unreadable_catalog_is_a_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("MATTEKIT_CATALOG", str(tmp_path / "missing.toml"))
    with pytest.raises(MattekitError, match=r"^Cannot read the model catalog .*missing\.toml"):
        catalog.load()


# ----------------------------------------------------------------------------------- clean installs


def _run(args: list, cwd: Path, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


def _source_copy(folder: Path) -> Path:
    """What a build reads (pyproject, README, core/, bench/), copied, so that building leaves the checkout untouched."""
    folder.mkdir()
    shutil.copy(ROOT / "pyproject.toml", folder / "pyproject.toml")
    shutil.copy(ROOT / "README.md", folder / "README.md")
    for package in (PACKAGE, BENCH):
        copied = folder / package.parent.name
        shutil.copytree(package.parent, copied, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return folder


def _ci_cache() -> Path:
    """$MATTEKIT_CACHE, else ~/.cache/mattekit-ci: where the GIMP root and the bpy venvs are kept too."""
    return Path(os.environ.get("MATTEKIT_CACHE") or Path.home() / ".cache" / "mattekit-ci").expanduser()


def _pip_env() -> dict:
    return {"PIP_CACHE_DIR": str(_ci_cache() / "pip")}


@pytest.fixture(scope="module")
def clean_venv() -> Path:
    """A virtual environment without mattekit, holding torch==2.13.0 (installed first, as install/setup.py does).
    It is kept in the CI cache, keyed by the hash of the declared dependencies, so a rerun finds them
    installed; the venv of an earlier dependency list is removed. pip's downloads are cached beside it."""
    declared = [PYPROJECT["project"]["dependencies"], PYPROJECT["project"].get("requires-python")]
    venv = _ci_cache() / f"wheel-venv-{hashlib.sha256(repr(declared).encode()).hexdigest()[:16]}"
    python = venv / "bin" / "python"
    if not (venv / ".ready").exists():
        for stale in venv.parent.glob("wheel-venv-*"):
            shutil.rmtree(stale, ignore_errors=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "venv", venv], cwd=venv.parent)
        _run([python, "-m", "pip", "install", "--quiet", "torch==2.13.0"], cwd=venv, **_pip_env())
        (venv / ".ready").write_text("torch installed\n")
    _run([python, "-m", "pip", "uninstall", "--quiet", "--yes", "mattekit"], cwd=venv)
    return venv


def _check_installed(venv: Path, cwd: Path, shared: Path | None = None) -> None:
    """From a folder outside the checkout: mattekit and mattekit_bench come from the venv, every module of mattekit
    imports with the base dependencies, `mattekit --version`, `mattekit models list` and `mattekit bench --help` work
    and, given the shared folder, `remove --model u2netp` runs offline from the mirror's ONNX file."""
    python, exe = venv / "bin" / "python", venv / "bin" / "mattekit"
    for package in ("mattekit_bench", "mattekit"):
        where = _run([python, "-c", f"import {package}; print({package}.__file__)"], cwd=cwd).stdout.strip()
        assert Path(where).is_relative_to(venv), f"{package} imported from {where}, not from the clean venv"
    assert {"py.typed", "__init__.pyi"} <= {p.name for p in Path(where).parent.iterdir()}  # read by type checkers
    _run(
        [
            python,
            "-c",
            "import importlib, pkgutil, mattekit\n"
            "for m in pkgutil.walk_packages(mattekit.__path__, 'mattekit.'):\n"
            "    if not m.name.endswith('__main__'): importlib.import_module(m.name)",
        ],
        cwd=cwd,
    )
    assert _run([exe, "--version"], cwd=cwd).stdout.strip() == f"mattekit {mattekit.__version__}"
    listing = _run([exe, "models", "list"], cwd=cwd, MATTEKIT_HOME=str(cwd / "home")).stdout
    assert listing.startswith("name") and "csnet-sod" in listing and "isnet-general-use" in listing
    assert "see-through" in _run([exe, "bench", "--help"], cwd=cwd).stdout  # the last KIND it adds
    if shared is not None:  # rembg's own u2netp.onnx, from the mirror, with the base install only (no extra)
        photo = shared / "data" / "grabcut50" / "im" / "teddy.jpg"
        _run(
            [exe, "remove", photo, "--model", "u2netp", "-o", cwd / "teddy.png"],
            cwd=cwd,
            MATTEKIT_HOME=str(cwd / "home"),
            MATTEKIT_MIRROR=str(shared / "weights"),
            MATTEKIT_OFFLINE="1",
        )
        assert (cwd / "teddy.png").stat().st_size > 0


def test_the_typed_stub_and_py_typed_are_package_data():
    """PEP 561, as pyproject declares it (the quick subset's check; the built wheel: the test below)."""
    assert {"__init__.pyi", "py.typed"} <= set(PYPROJECT["tool"]["setuptools"]["package-data"]["mattekit"])
    assert (PACKAGE / "__init__.pyi").is_file() and (PACKAGE / "py.typed").is_file()


@pytest.mark.slow  # builds the wheel (pip wheel): seconds
def test_the_wheel_ships_the_typed_stub_and_py_typed(tmp_path):
    """PEP 561: a type checker reads an installed package's types (the stub of the API functions, core/mattekit/
    __init__.pyi) only when the package holds ``py.typed``; both are in the wheel, which is what pip installs, and the
    benchmarks' package beside the core is in it too."""
    if not importlib.util.find_spec("setuptools"):
        pytest.skip("building offline needs setuptools in this environment (pip wheel --no-build-isolation)")
    source = _source_copy(tmp_path / "src")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            tmp_path / "dist",
            source,
        ],
        cwd=tmp_path,
    )
    (wheel,) = (tmp_path / "dist").glob("mattekit-*.whl")
    with zipfile.ZipFile(wheel) as shipped:
        names = set(shipped.namelist())
    assert {"mattekit/py.typed", "mattekit/__init__.pyi"} <= names
    assert {f"mattekit_bench/{p.name}" for p in BENCH.glob("*.py")} <= names  # the benchmarks, in the same wheel


@pytest.mark.slow
def test_built_wheel_and_pip_install_dot_work_in_a_clean_venv(clean_venv, tmp_path, shared):
    source = _source_copy(tmp_path / "src")
    (tmp_path / "src" / "dist").mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    python = clean_venv / "bin" / "python"
    offline_build = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []  # this setuptools
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", *offline_build, "-w", source / "dist", source],
        cwd=tmp_path,
    )
    (wheel,) = (source / "dist").glob("mattekit-*.whl")
    assert wheel.name.startswith(f"mattekit-{mattekit.__version__}-")
    _run([python, "-m", "pip", "install", "--quiet", wheel], cwd=outside, **_pip_env())
    _check_installed(clean_venv, outside, shared)

    _run([python, "-m", "pip", "uninstall", "--quiet", "--yes", "mattekit"], cwd=outside)
    _run([python, "-m", "pip", "install", "--quiet", source], cwd=outside, **_pip_env())
    _check_installed(clean_venv, outside)
