"""install/install_gimp.py on a temporary HOME: paths per platform, idempotent, --dry-run, --uninstall."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest

from checkout import GIMP_PLUGIN, gimp_plugin_modules, install_module, snapshot

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "install" / "install_gimp.py"


def installer(home: Path, *args: str, **settings: str) -> str:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "GIMP3_DIRECTORY",
            "XDG_CONFIG_HOME",
            "APPDATA",
            "MATTEKIT_MIRROR",
            "MATTEKIT_OFFLINE",
            "MATTEKIT_HOME",
            "MATTEKIT_WORKER_STATE",
        )
    }
    env.update(settings, HOME=str(home))
    out = subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_platform_folders():
    gimp_dirs = install_module().gimp_dirs
    home = Path("/home/u")
    assert gimp_dirs(home, {}, "linux") == [home / ".config/GIMP/3.0"]
    assert gimp_dirs(home, {"XDG_CONFIG_HOME": "/cfg"}, "linux") == [Path("/cfg/GIMP/3.0")]
    assert gimp_dirs(home, {}, "linux", flatpak=True)[1] == home / ".var/app/org.gimp.GIMP/config/GIMP/3.0"
    assert gimp_dirs(home, {}, "darwin") == [home / "Library/Application Support/GIMP/3.0"]
    assert gimp_dirs(home, {"APPDATA": "C:/Users/u/AppData/Roaming"}, "win32") == [
        Path("C:/Users/u/AppData/Roaming/GIMP/3.0")
    ]
    assert gimp_dirs(home, {"GIMP3_DIRECTORY": "/x"}, "linux") == [Path("/x")]


def test_windows_and_macos_paths_are_built_as_those_systems_write_them():
    """The platform branches fed a Windows or macOS home (pure paths: this machine is Linux) and environment."""
    module = install_module()
    home = PureWindowsPath("C:/Users/ana")
    assert module.gimp_dirs(home, {"APPDATA": "D:\\Roaming"}, "win32") == [PureWindowsPath("D:/Roaming/GIMP/3.0")]
    (native,) = module.gimp_dirs(home, {}, "win32")  # no %APPDATA%: the profile's own Roaming folder
    assert str(native) == "C:\\Users\\ana\\AppData\\Roaming\\GIMP\\3.0"
    places = module.gimp3_places(
        home, {"ProgramFiles": "C:\\Program Files", "LOCALAPPDATA": "C:\\Users\\ana\\AppData\\Local"}, "win32", [native]
    )
    assert [str(p) for p in places[2:]] == [
        "C:\\Program Files\\GIMP 3",
        "C:\\Users\\ana\\AppData\\Local\\GIMP 3",
        str(native / "gimprc"),
        str(native / "sessionrc"),
    ]
    mac = PurePosixPath("/Users/ana")
    (folder,) = module.gimp_dirs(mac, {"XDG_CONFIG_HOME": "/ignored"}, "darwin")
    assert str(folder) == "/Users/ana/Library/Application Support/GIMP/3.0"
    assert [str(p) for p in module.gimp3_places(mac, {}, "darwin", [folder])[2:]] == [
        "/Applications/GIMP.app",
        f"{folder}/gimprc",
        f"{folder}/sessionrc",
    ]
    assert module.gimp_dirs(home, {"GIMP3_DIRECTORY": "E:\\gimp"}, "win32") == [PureWindowsPath("E:/gimp")]


@pytest.mark.slow
def test_install_twice_is_idempotent_and_uninstall_leaves_nothing(tmp_path):
    home = tmp_path / "home"
    (home / ".var" / "app" / "org.gimp.GIMP").mkdir(parents=True)  # a Flatpak GIMP is there too
    before = snapshot(home)

    assert "would write" in installer(home, "--dry-run")
    assert snapshot(home) == before, "--dry-run changed something"

    installer(home)
    native = home / ".config/GIMP/3.0/plug-ins/mattekit_gimp"
    flatpak = home / ".var/app/org.gimp.GIMP/config/GIMP/3.0/plug-ins/mattekit_gimp"
    for folder in (native, flatpak):
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [name + ".py" for name in gimp_plugin_modules()]
            + ["mattekit_install.json", "mattekit_wire", "mattekit_worker.json"]
        )
        assert {p.name: p.read_bytes() for p in folder.glob("*.py")} == {
            p.name: p.read_bytes() for p in GIMP_PLUGIN.glob("*.py")
        }, "the plug-in's file and every module of it"
        assert os.access(folder / "mattekit_gimp.py", os.X_OK)
        wire = ROOT / "core/mattekit/wire"
        assert {p.name: p.read_bytes() for p in (folder / "mattekit_wire").iterdir()} == {
            p.name: p.read_bytes() for p in wire.glob("*.py")
        }
        record = json.loads((folder / "mattekit_worker.json").read_text())
        assert record["python"] == os.path.abspath(sys.executable) and record["environment"] == {}
        schema = worker_schema()  # what GET /v1/operations answers ("cached" differs: another HOME)
        assert record["schema"]["operations"] == schema["operations"]
        assert [list(op["options"]) for op in record["schema"]["operations"]] == [
            list(op["options"]) for op in schema["operations"]
        ], "options in the worker's order (GIMP's argument order)"
        assert {t: [m["name"] for m in ms] for t, ms in record["schema"]["models"].items()} == {
            t: [m["name"] for m in ms] for t, ms in schema["models"].items()
        }
    first = snapshot(home)

    second = installer(home)
    assert "already up to date" in second and "write" not in second
    assert snapshot(home) == first, "a second install changed files"

    installer(home, "--uninstall")
    assert snapshot(home) == before, "uninstall left something behind"
    assert "nothing to remove" in installer(home, "--uninstall")


def worker_schema() -> dict:
    """GET /v1/operations of a fresh worker in this environment."""
    from mattekit.runtime import ModelCache
    from mattekit.worker import operations

    return {
        "operations": [op.describe() for op in operations.build(operations.PathPolicy()).values()],
        "models": operations.model_menus(ModelCache()),
    }


@pytest.mark.slow
def test_worker_settings_are_recorded_and_a_missing_gimp_is_one_warning(tmp_path, shared):
    home = tmp_path / "home"
    mirror = os.path.relpath(shared / "weights")
    out = installer(home, MATTEKIT_MIRROR=mirror, MATTEKIT_OFFLINE="1", MATTEKIT_HOME="~/mk")
    warnings = [line for line in out.splitlines() if "warning" in line]
    assert warnings == [
        "install_gimp: warning: no GIMP 3 found (no gimp-3.0 on PATH, no Flatpak org.gimp.GIMP, "
        "no GIMP 3 settings folder); installing anyway: the plug-in appears once GIMP 3 is installed."
    ]
    folder = home / ".config/GIMP/3.0/plug-ins/mattekit_gimp"
    record = json.loads((folder / "mattekit_worker.json").read_text())
    assert record["environment"] == {
        "MATTEKIT_MIRROR": str((shared / "weights").resolve()),
        "MATTEKIT_OFFLINE": "1",
        "MATTEKIT_HOME": str(home / "mk"),
    }
    assert record["state_file"] == str(home / "mk" / "worker.json"), "the worker's state file under MATTEKIT_HOME"
    # a GIMP 3 on PATH (or its settings folder): no warning; a changed record refreshes the plug-in file
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gimp-3.0").write_text("#!/bin/sh\n")
    (bin_dir / "gimp-3.0").chmod(0o755)
    os.utime(folder / "mattekit_gimp.py", (1, 1))
    out = installer(home, PATH=str(bin_dir) + os.pathsep + os.environ["PATH"])
    assert "warning" not in out and "write %s" % (folder / "mattekit_worker.json") in out
    assert "refresh %s" % (folder / "mattekit_gimp.py") in out and (folder / "mattekit_gimp.py").stat().st_mtime > 1
    # so does a module of the plug-in that differs, written again: the modules make the procedures too
    (folder / "gimp_arguments.py").write_text("# an older copy\n")
    os.utime(folder / "mattekit_gimp.py", (1, 1))
    out = installer(home, PATH=str(bin_dir) + os.pathsep + os.environ["PATH"])
    assert "write %s" % (folder / "gimp_arguments.py") in out and "refresh %s" % (folder / "mattekit_gimp.py") in out
    assert (folder / "gimp_arguments.py").read_bytes() == (GIMP_PLUGIN / "gimp_arguments.py").read_bytes()
    assert (folder / "mattekit_gimp.py").stat().st_mtime > 1
    (home / ".config/GIMP/3.0/gimprc").write_text("")
    assert "warning" not in installer(home) and "already up to date" in installer(home)


def test_uninstall_dry_run_names_exactly_what_it_would_remove(tmp_path):
    home = tmp_path / "home"
    installer(home)
    (home / ".config" / "someone-else.conf").write_text("kept")  # .config was created by the install, now shared
    (home / ".config/GIMP/3.0/plug-ins/mattekit_gimp/__pycache__").mkdir()
    before = snapshot(home)
    planned = installer(home, "--uninstall", "--dry-run")
    assert snapshot(home) == before, "--dry-run changed something"
    plugin = home / ".config/GIMP/3.0/plug-ins/mattekit_gimp"
    names = sorted(
        [name + ".py" for name in gimp_plugin_modules()]
        + [
            "mattekit_install.json",
            "mattekit_wire/__init__.py",
            "mattekit_wire/client.py",
            "mattekit_wire/locks.py",
            "mattekit_wire/protocol.py",
            "mattekit_wire/state.py",
            "mattekit_worker.json",
        ]
    )
    expected = ["remove %s" % (plugin / name) for name in names]
    expected += [
        "remove folder %s" % folder
        for folder in (
            plugin / "__pycache__",
            plugin / "mattekit_wire",
            plugin,
            plugin.parent,
            plugin.parent.parent,
            plugin.parent.parent.parent,
        )
    ]
    lines = [line.split("install_gimp: would ", 1)[1] for line in planned.splitlines() if " would remove " in line]
    assert lines == expected, planned
    done = installer(home, "--uninstall")
    assert [line.split("install_gimp: ", 1)[1] for line in done.splitlines() if ": remove " in line] == expected
    assert sorted(p.name for p in home.rglob("*")) == [".config", "someone-else.conf"]


def test_an_install_removes_the_files_an_older_install_made_that_it_no_longer_needs(tmp_path):
    """An older install put the client beside the plug-in as mattekit_client.py; the next install removes it."""
    home = tmp_path / "home"
    installer(home)
    plugin = home / ".config/GIMP/3.0/plug-ins/mattekit_gimp"
    manifest = json.loads((plugin / "mattekit_install.json").read_text())
    (plugin / "mattekit_install.json").write_text(
        json.dumps(dict(manifest, files=manifest["files"] + ["mattekit_client.py"]))
    )
    (plugin / "mattekit_client.py").write_text("# an older copy\n")
    (plugin / "mine.py").write_text("# not the installer's\n")
    assert "remove %s" % (plugin / "mattekit_client.py") in installer(home)
    assert not (plugin / "mattekit_client.py").exists() and (plugin / "mine.py").exists()
    assert "mattekit_client.py" not in json.loads((plugin / "mattekit_install.json").read_text())["files"]


def test_uninstall_keeps_what_gimp_made_and_the_installed_plugin_uses_its_client(tmp_path, monkeypatch):
    home = tmp_path / "home"
    plugins = home / ".config/GIMP/3.0/plug-ins"
    (plugins / "someone-else").mkdir(parents=True)
    before = snapshot(home)
    installer(home)
    installed = plugins / "mattekit_gimp" / "mattekit_gimp.py"
    # GIMP's Python loads the installed plug-in, which imports the client copied next to it
    stubs = str(Path(__file__).resolve().parent / "gimp_stubs")
    loaded = lambda: [
        m
        for m in sys.modules
        if m == "gi" or m.startswith("gi.") or m.split(".")[0] == "mattekit_wire" or m in gimp_plugin_modules()
    ]
    for name in loaded():
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(stubs)
    spec = importlib.util.spec_from_file_location("installed_mattekit_gimp", installed)
    plugin = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(plugin)
        assert plugin.client.__name__ == "mattekit_wire.client"
        assert Path(plugin.client.__file__).parent == installed.parent / "mattekit_wire"
        assert plugin.client.protocol.__name__ == "mattekit_wire.protocol"
        assert Path(plugin.client.protocol.__file__).parent == installed.parent / "mattekit_wire"
        assert Path(sys.modules["gimp_schema"].__file__).parent == installed.parent, "its modules: the installed ones"
        assert "mattekit-remove-background" in plugin.MattekitPlugIn().do_query_procedures()
    finally:
        for name in loaded():
            sys.modules.pop(name, None)
        sys.path[:] = [p for p in sys.path if p != str(installed.parent)]
    (installed.parent / "mattekit_wire" / "__pycache__").mkdir(exist_ok=True)  # what compiling the client leaves
    (installed.parent / "mattekit_wire" / "__pycache__" / "client.cpython-313.pyc").write_bytes(b"x")
    installer(home, "--uninstall")
    assert snapshot(home) == before


def test_an_interpreter_without_mattekit_is_refused(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named mattekit' >&2\nexit 1\n")
    fake.chmod(0o755)
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--python", str(fake), "--gimp-dir", str(tmp_path / "h")],
        env=dict(os.environ, HOME=str(tmp_path)),
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "cannot import mattekit" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "h").exists()
