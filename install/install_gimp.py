#!/usr/bin/env python3
"""Install the mattekit GIMP 3 plug-in for the current user (or remove it with --uninstall).

    python install/install_gimp.py [--gimp-dir DIR] [--flatpak] [--python PY] [--dry-run] [--uninstall]

Run it with the Python that has mattekit installed (it is recorded as the worker's interpreter;
--python names another), with MATTEKIT_MIRROR / MATTEKIT_OFFLINE / MATTEKIT_HOME set as the worker
should have them: they are recorded too, and the plug-in starts the worker with them. What it puts
in GIMP's plug-in folder, ``plug-ins/mattekit_gimp/``:

    mattekit_gimp.py        the plug-in (executable, as GIMP requires)
    gimp_*.py               its modules, one job each (the plug-in imports them from its folder)
    mattekit_wire/          a copy of the package mattekit.wire: the client and the wire format
                            (standard library only)
    mattekit_worker.json    the record: interpreter, state file, settings, and the worker's schema
                            (what GET /v1/operations answers: every task's ports and options, the models)
    mattekit_install.json   what this installer created, so that --uninstall removes exactly that

The plug-in makes one Filters > AI procedure per task of the schema that has a menu label. GIMP
asks a plug-in for its procedures again only when the plug-in file changes, so whenever the
recorded schema (a new task or option) or one of the plug-in's modules changes, this installer
refreshes the plug-in file's time too; new models need nothing: the plug-in's dialog asks the
running worker for them.

GIMP 3's per-user folder: $GIMP3_DIRECTORY if set; Linux ~/.config/GIMP/3.0 (XDG_CONFIG_HOME);
Flatpak ~/.var/app/org.gimp.GIMP/config/GIMP/3.0 (used when that app folder exists, or with
--flatpak); macOS ~/Library/Application Support/GIMP/3.0; Windows %APPDATA%\\GIMP\\3.0.
It warns (and still installs) when it finds no GIMP 3. Running it again changes nothing unless
something changed. Standard library and mattekit.fsutil only.
"""

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import worker_record
from worker_record import RECORD, atomic_write

PLUGIN_NAME = "mattekit_gimp"
PLUGIN_FILE = PLUGIN_NAME + ".py"  # the file GIMP runs; its sibling modules sit beside it
PLUGIN_SOURCE = worker_record.REPO / "gimp_plugin" / PLUGIN_NAME
MANIFEST = "mattekit_install.json"
FLATPAK_APP = "org.gimp.GIMP"
GIMP3_PROGRAMS = ("gimp-3.0", "gimp-3", "gimp-console-3.0", "gimp-3.0.exe")


def gimp_dirs(home, env, platform, flatpak=False):
    """GIMP 3 per-user folders to install into (first the native one, then Flatpak's if present); paths of
    ``home``'s kind (a PureWindowsPath home gives Windows paths)."""
    folder = type(home)
    if env.get("GIMP3_DIRECTORY"):
        return [folder(env["GIMP3_DIRECTORY"])]
    if platform == "win32":
        appdata = folder(env["APPDATA"]) if env.get("APPDATA") else home / "AppData" / "Roaming"
        return [appdata / "GIMP" / "3.0"]
    if platform == "darwin":
        return [home / "Library" / "Application Support" / "GIMP" / "3.0"]
    config = folder(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
    dirs = [config / "GIMP" / "3.0"]
    app = home / ".var" / "app" / FLATPAK_APP
    if flatpak or app.is_dir():
        dirs.append(app / "config" / "GIMP" / "3.0")
    return dirs


def gimp3_places(home, env, platform, gimp_dirs_found):
    """The paths whose existence shows a GIMP 3 on ``platform``, in order: the Flatpak app, the application
    bundle (macOS) or program folder (Windows), then GIMP 3's settings files in ``gimp_dirs_found``."""
    folder = type(home)
    places = [home / ".var" / "app" / FLATPAK_APP, folder("/var/lib/flatpak/app") / FLATPAK_APP]
    if platform == "darwin":
        places += [folder("/Applications") / "GIMP.app"]
    if platform == "win32":
        places += [folder(env[name]) / "GIMP 3" for name in ("ProgramFiles", "LOCALAPPDATA") if env.get(name)]
    return places + [d / "gimprc" for d in gimp_dirs_found] + [d / "sessionrc" for d in gimp_dirs_found]


def find_gimp3(home, env, platform, gimp_dirs_found):
    """Where a GIMP 3 was seen (a program on PATH, the Flatpak app, an application bundle, or GIMP 3's
    settings folder, which GIMP makes on first start), or None."""
    for program in GIMP3_PROGRAMS:
        found = shutil.which(program, path=env.get("PATH"))
        if found:
            return found
    places = gimp3_places(home, env, platform, gimp_dirs_found)
    if platform == "darwin":  # a versioned bundle name, GIMP-3.0.4.app, first
        places[2:2] = sorted(Path("/Applications").glob("GIMP*3*.app"))
    return next((str(p) for p in places if p.exists()), None)


def plugin_files():
    """{file name: (bytes, mode)} of the plug-in's own files: the one GIMP runs (executable) and its modules."""
    return {
        path.name: (path.read_bytes(), 0o755 if path.name == PLUGIN_FILE else 0o644)
        for path in sorted(PLUGIN_SOURCE.glob("*.py"))
    }


def planned_files(record):
    """{file name: (bytes, mode)} of everything the plug-in folder holds."""
    files = plugin_files()
    files.update((name, (data, 0o644)) for name, data in worker_record.adapter_files(record).items())
    return files


def install(gimp_dir, files, dry_run, say):
    """Put ``files`` into gimp_dir/plug-ins/mattekit_gimp; returns the number of changes."""
    target = gimp_dir / "plug-ins" / PLUGIN_NAME
    manifest_path = target / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {"created_dirs": [], "files": []}
    missing = []
    for parent in [target] + list(target.parents):
        if parent.exists():
            break
        missing.append(str(parent))
    changes = 0
    for folder in [target] + sorted({target / Path(name).parent for name in files} - {target}):
        if not folder.exists():
            say("create %s" % folder)
            changes += 1
            missing.append(str(folder))
            if not dry_run:
                folder.mkdir(parents=True)
    for name in sorted(set(manifest["files"]) - set(files) - {MANIFEST}):  # left by an older install
        if (target / name).is_file():
            say("remove %s" % (target / name))
            changes += 1
            if not dry_run:
                os.remove(str(target / name))
    manifest["created_dirs"] = sorted(set(manifest["created_dirs"]) | set(missing), key=len, reverse=True)
    manifest["files"] = sorted(set(files) | {MANIFEST})
    all_files = dict(files)
    all_files[MANIFEST] = ((json.dumps(manifest, indent=2) + "\n").encode("utf-8"), 0o644)
    written = set()
    for name, (data, mode) in sorted(all_files.items()):
        path = target / name
        same = (
            path.is_file() and path.read_bytes() == data and (os.name == "nt" or (path.stat().st_mode & 0o777) == mode)
        )
        if same:
            continue
        say("write %s" % path)
        written.add(name)
        if not dry_run:
            atomic_write(path, data, mode=mode)
    plugin = PLUGIN_FILE
    if (RECORD in written or written & set(plugin_files())) and plugin not in written and (target / plugin).exists():
        say("refresh %s (so that GIMP reads its procedures again)" % (target / plugin))
        written.add(plugin)
        if not dry_run:
            os.utime(str(target / plugin))
    return changes + len(written)


def uninstall(gimp_dir, dry_run, say):
    """Remove what install() put there, and the folders it created that nothing else is left in;
    returns the count. A dry run names exactly what a real run would remove."""
    target = gimp_dir / "plug-ins" / PLUGIN_NAME
    if not target.exists():
        return 0
    try:
        manifest = json.loads((target / MANIFEST).read_text())
    except (OSError, ValueError):
        manifest = {"created_dirs": [str(target)], "files": []}
    gone = set()

    def remove(path, what, action):
        say("remove %s%s" % (what, path))
        gone.add(path)
        if not dry_run:
            action(str(path))

    ours = set(plugin_files()) | {MANIFEST} | set(worker_record.ADAPTER_FILES)
    for name in sorted(set(manifest["files"]) | ours):
        if (target / name).exists():
            remove(target / name, "", os.remove)
    for cache in (target / worker_record.WIRE / "__pycache__", target / "__pycache__"):
        if cache.is_dir():  # what GIMP's Python compiled from our files
            remove(cache, "folder ", shutil.rmtree)
    for folder in sorted(
        {Path(d) for d in manifest["created_dirs"]} | {target}, key=lambda p: len(str(p)), reverse=True
    ):
        if folder.is_dir() and all(entry in gone for entry in folder.iterdir()):
            remove(folder, "folder ", os.rmdir)
    return len(gone)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Install the mattekit plug-in into GIMP 3 (per user).")
    parser.add_argument(
        "--gimp-dir",
        action="append",
        type=Path,
        help="GIMP's per-user folder (the one holding plug-ins/); repeatable; default: detected",
    )
    parser.add_argument("--flatpak", action="store_true", help="also install for the Flatpak GIMP")
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter that runs the worker (default: this one, %(default)s)"
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=900.0,
        help="seconds a worker started by the plug-in stays up without work (default 900)",
    )
    parser.add_argument("--dry-run", action="store_true", help="say what would change; change nothing")
    parser.add_argument("--uninstall", action="store_true", help="remove the plug-in and everything installed with it")
    args = parser.parse_args(argv)

    prefix = "would " if args.dry_run else ""

    def say(text):
        print("install_gimp: " + prefix + text)

    dirs = args.gimp_dir or gimp_dirs(Path.home(), os.environ, sys.platform, args.flatpak)
    total = 0
    if args.uninstall:
        for gimp_dir in dirs:
            total += uninstall(gimp_dir, args.dry_run, say)
        print(
            "install_gimp: %s"
            % (
                "nothing to remove."
                if not total
                else "plug-in removed."
                if not args.dry_run
                else "%d change(s) planned." % total
            )
        )
        return 0
    python = os.path.abspath(args.python)
    settings = worker_record.worker_settings(os.environ)
    info = worker_record.query_worker(python, settings, "install_gimp")
    files = planned_files(worker_record.build_record(python, info, args.idle_timeout, settings))
    if find_gimp3(Path.home(), os.environ, sys.platform, dirs) is None:
        print(
            "install_gimp: warning: no GIMP 3 found (no gimp-3.0 on PATH, no Flatpak %s, no GIMP 3 settings "
            "folder); installing anyway: the plug-in appears once GIMP 3 is installed." % FLATPAK_APP
        )
    for gimp_dir in dirs:
        total += install(gimp_dir, files, args.dry_run, say)
        print(
            "install_gimp: plug-in %s %s"
            % ("ready in" if not args.dry_run else "would be in", gimp_dir / "plug-ins" / PLUGIN_NAME)
        )
    menu = [op["menu"].replace("_", "").rstrip(".") for op in info["schema"]["operations"] if op.get("menu")]
    print(
        "install_gimp: %s; worker interpreter %s%s; Filters > AI: %s."
        % (
            "already up to date" if not total else "%d change(s)" % total,
            python,
            "".join(", %s=%s" % item for item in sorted(settings.items())),
            ", ".join(sorted(menu)),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
