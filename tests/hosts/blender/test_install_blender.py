"""install/install_blender.py without Blender: where it looks, the zip it builds, what it does when no
Blender is there, and how it removes what an install created. Real Blender: tests/hosts/blender/test_blender_e2e.py."""

from __future__ import annotations

import ast
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest

from checkout import install_module, snapshot

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "install" / "install_blender.py"


def run_installer(home: Path, *args: str, path: str = "/usr/bin:/bin") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "BLENDER_"))}
    env.update(HOME=str(home), PATH=path)
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300)


def test_where_it_looks(tmp_path):
    module, blenders = install_module("blender_traces"), install_module("blenders")
    home = Path("/home/u")
    assert module.watched_folders(home, {}, "linux") == [home / ".config/blender", home / ".cache/thumbnails"]
    assert module.watched_folders(home, {"XDG_CONFIG_HOME": "/c", "XDG_CACHE_HOME": "/k"}, "linux") == [
        Path("/c/blender"),
        Path("/k/thumbnails"),
    ]
    assert module.watched_folders(home, {}, "darwin") == [home / "Library/Application Support/Blender"]
    assert module.watched_folders(home, {"APPDATA": "/a"}, "win32") == [Path("/a/Blender Foundation/Blender")]
    # a blender on PATH comes first, then the usual folders (here: an unpacked release in the home folder)
    bin_dir, release = tmp_path / "bin", tmp_path / "blender-4.5.3-linux-x64"
    for folder in (bin_dir, release):
        folder.mkdir()
        (folder / "blender").write_text("#!/bin/sh\n")
        (folder / "blender").chmod(0o755)
    found = blenders.candidate_blenders(tmp_path, {"PATH": str(bin_dir)}, "linux")
    assert found[:2] == [str(bin_dir / "blender"), str(release / "blender")]


def test_windows_and_macos_paths_are_built_as_those_systems_write_them():
    """The platform branches fed a Windows or macOS home (pure paths: this machine is Linux) and environment."""
    module, blenders = install_module("blender_traces"), install_module("blenders")
    home = PureWindowsPath("C:/Users/ana")
    assert [str(p) for p in module.watched_folders(home, {}, "win32")] == [
        "C:\\Users\\ana\\AppData\\Roaming\\Blender Foundation\\Blender"
    ]
    assert blenders.blender_patterns(home, {}, "win32") == [
        "C:\\Program Files\\Blender Foundation\\Blender*\\blender.exe"
    ]
    assert blenders.blender_patterns(home, {"ProgramFiles": "D:\\Apps"}, "win32") == [
        "D:\\Apps\\Blender Foundation\\Blender*\\blender.exe"
    ]
    assert module.watched_folders(home, {"BLENDER_USER_RESOURCES": "E:\\b"}, "win32") == [PureWindowsPath("E:/b")]
    mac = PurePosixPath("/Users/ana")
    assert blenders.blender_patterns(mac, {}, "darwin") == [
        "/Applications/Blender*.app/Contents/MacOS/Blender",
        "/Users/ana/Applications/Blender*.app/Contents/MacOS/Blender",
    ]
    assert [str(p) for p in module.watched_folders(mac, {"XDG_CACHE_HOME": "/ignored"}, "darwin")] == [
        "/Users/ana/Library/Application Support/Blender"
    ]


def test_the_addon_imports_neither_torch_nor_numpy():
    for source in (ROOT / "blender_addon").glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            assert not [n for n in names if n.split(".")[0] in ("torch", "numpy", "mattekit")], (source.name, names)


@pytest.mark.slow
def test_without_blender_it_says_so_and_writes_the_zip_on_request(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    refused = run_installer(home)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().startswith("install_blender: no Blender found; name it with --blender PATH")
    assert snapshot(home) == {}

    target = tmp_path / "dist" / "ai-matte.zip"
    target.parent.mkdir()
    assert run_installer(home, "--zip", str(target), "--dry-run").returncode == 0 and not target.exists()
    done = run_installer(home, "--zip", str(target))
    assert done.returncode == 0 and f"write {target}" in done.stdout and "Install from Disk" in done.stdout
    first = target.read_bytes()
    again = run_installer(home, "--zip", str(target))
    assert again.returncode == 0 and "write" not in again.stdout and target.read_bytes() == first  # same bytes
    assert snapshot(home) == {}

    archive = zipfile.ZipFile(io.BytesIO(first))
    names = set(archive.namelist())
    wire = sorted((ROOT / "core/mattekit/wire").glob("*.py"))
    assert {"__init__.py", "schema.py", "blender_manifest.toml", "mattekit_worker.json"} <= names
    assert {n for n in names if n.startswith("mattekit_wire/")} == {"mattekit_wire/" + p.name for p in wire}
    assert not any("__pycache__" in n for n in names)
    assert all(archive.read("mattekit_wire/" + p.name) == p.read_bytes() for p in wire)
    record = json.loads(archive.read("mattekit_worker.json"))
    # for any machine: no path of this one (the add-on there finds the worker by the default state file at run time)
    assert record["python"] is None and record["state_file"] is None and record["environment"] == {}
    assert (
        str(tmp_path) not in archive.read("mattekit_worker.json").decode()
        and sys.executable not in archive.read("mattekit_worker.json").decode()
    )
    from mattekit.wire import client

    assert client.recorded_state_file(record) == client.state_path()
    roto = next(op for op in record["schema"]["operations"] if op["name"] == "roto")
    from mattekit.roto import RotoSpec
    from mattekit.options import options_of

    assert list(roto["options"]) == [o.name for o in options_of(RotoSpec) if "worker" in o.hosts]  # the worker's order
    assert (
        roto["options"]["keep_personal"]["default"] is False
    )  # a checkbox of the add-on's job, off: privacy by default
    assert "csnet-sod" in {m["name"] for m in record["schema"]["models"]["segment"]}


def test_uninstall_removes_what_was_created_and_keeps_what_changed(tmp_path):
    module = install_module("blender_traces")
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    (home / ".config" / "other-app.conf").write_text("not ours")
    watched = [home / ".config" / "blender", home / ".cache" / "thumbnails"]
    before = module.survey(watched, home)
    for name in ("blender/4.5/config/userpref.blend", "blender/4.5/extensions/.cache/compat.dat"):
        (home / ".config" / name).parent.mkdir(parents=True, exist_ok=True)
        (home / ".config" / name).write_text("made by the install")
    (home / ".cache" / "thumbnails" / "large").mkdir(parents=True)
    created = module.created_since(before, module.survey(watched, home))
    assert str(home / ".config") not in created and str(home / ".cache") in created
    assert created[str(home / ".config/blender/4.5/config/userpref.blend")] == module.worker_record.sha256_file(
        home / ".config/blender/4.5/config/userpref.blend"
    )

    (home / ".config" / "blender" / "4.5" / "extensions" / "user-made.txt").write_text("made since")
    said = []
    module.remove_paths(set(created), False, said.append)
    assert not (home / ".cache").exists() and not (home / ".config/blender/4.5/config").exists()
    assert (home / ".config/blender/4.5/extensions/user-made.txt").read_text() == "made since"
    assert f"keep folder {home / '.config/blender/4.5/extensions'} (it holds user-made.txt, made since)" in said
    assert (home / ".config" / "other-app.conf").read_text() == "not ours"
    user = home / ".config" / "blender" / "4.5"
    assert module.is_blender_cache(str(user / "extensions/.cache/compat.dat"), str(user))
    assert module.is_blender_cache(str(user / "extensions/user_default/.blender_ext/index.json"), str(user))
    assert not module.is_blender_cache(str(user / "config/userpref.blend"), str(user))
