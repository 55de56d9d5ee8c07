#!/usr/bin/env python3
"""Install the mattekit GIMP 3 plug-in for the current user (or remove it with --uninstall).

    python install/install_gimp.py [--gimp-dir DIR] [--flatpak] [--python PY] [--dry-run] [--uninstall]

Run it with the Python that has mattekit installed (it is recorded as the worker's interpreter;
--python names another). What it puts in GIMP's plug-in folder, ``plug-ins/mattekit_gimp/``:

    mattekit_gimp.py        the plug-in (executable, as GIMP requires)
    mattekit_client.py      a copy of mattekit.client (standard library only)
    mattekit_protocol.py    a copy of mattekit.worker.protocol, the wire format the client imports
    mattekit_worker.json    the record: interpreter, state file, operations and models on offer
    mattekit_install.json   what this installer created, so that --uninstall removes exactly that

GIMP 3's per-user folder: $GIMP3_DIRECTORY if set; Linux ~/.config/GIMP/3.0 (XDG_CONFIG_HOME);
Flatpak ~/.var/app/org.gimp.GIMP/config/GIMP/3.0 (used when that app folder exists, or with
--flatpak); macOS ~/Library/Application Support/GIMP/3.0; Windows %APPDATA%\\GIMP\\3.0.
Running it again changes nothing unless something changed. Standard library only.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGIN_NAME = "mattekit_gimp"
PLUGIN_SOURCE = REPO / "gimp_plugin" / PLUGIN_NAME / (PLUGIN_NAME + ".py")
CLIENT_SOURCE = REPO / "core" / "mattekit" / "client.py"
PROTOCOL_SOURCE = REPO / "core" / "mattekit" / "worker" / "protocol.py"
RECORD = "mattekit_worker.json"
MANIFEST = "mattekit_install.json"
FLATPAK_APP = "org.gimp.GIMP"

# Asked of the worker's interpreter: can it import mattekit, and what does it offer?
_QUERY = r"""
import json, mattekit
from mattekit import catalog, client
from mattekit.worker import operations
cat = catalog.load()
models = {}
for m in cat.models.values():
    models.setdefault(m.task, []).append({"name": m.name, "description": m.description})
print(json.dumps({"version": mattekit.__version__, "operations": sorted(operations.build(operations.PathPolicy())),
                  "models": models, "state_file": client.state_path()}))
"""


def gimp_dirs(home, env, platform, flatpak=False):
    """GIMP 3 per-user folders to install into (first the native one, then Flatpak's if present)."""
    if env.get("GIMP3_DIRECTORY"):
        return [Path(env["GIMP3_DIRECTORY"])]
    if platform == "win32":
        appdata = env.get("APPDATA") or str(home / "AppData" / "Roaming")
        return [Path(appdata) / "GIMP" / "3.0"]
    if platform == "darwin":
        return [home / "Library" / "Application Support" / "GIMP" / "3.0"]
    config = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
    dirs = [config / "GIMP" / "3.0"]
    app = home / ".var" / "app" / FLATPAK_APP
    if flatpak or app.is_dir():
        dirs.append(app / "config" / "GIMP" / "3.0")
    return dirs


def query_worker(python):
    """What the worker's interpreter offers (a dict); SystemExit with one sentence if it cannot."""
    try:
        out = subprocess.run([python, "-c", _QUERY], capture_output=True, text=True, timeout=300)
    except OSError as exc:
        raise SystemExit("install_gimp: cannot run %s (%s)." % (python, exc.strerror or exc))
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit("install_gimp: %s cannot import mattekit (%s); install mattekit into it first "
                         "(pip install -e .) or name another with --python." % (python, last))
    return json.loads(out.stdout.strip().splitlines()[-1])


def planned_files(python, info, idle_timeout):
    """{file name: (bytes, mode)} of everything the plug-in folder holds."""
    record = {"python": python, "state_file": info["state_file"], "mattekit_version": info["version"],
              "operations": info["operations"], "models": info["models"], "idle_timeout": idle_timeout}
    return {
        PLUGIN_NAME + ".py": (PLUGIN_SOURCE.read_bytes(), 0o755),
        "mattekit_client.py": (CLIENT_SOURCE.read_bytes(), 0o644),
        "mattekit_protocol.py": (PROTOCOL_SOURCE.read_bytes(), 0o644),
        RECORD: ((json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8"), 0o644),
    }


def _write_atomic(path, data, mode):
    fd, tmp = tempfile.mkstemp(prefix="." + path.name, dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, str(path))
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


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
    if missing:
        say("create %s" % target)
        changes += 1
        if not dry_run:
            target.mkdir(parents=True)
    manifest["created_dirs"] = sorted(set(manifest["created_dirs"]) | set(missing), key=len, reverse=True)
    manifest["files"] = sorted(set(files) | {MANIFEST})
    all_files = dict(files)
    all_files[MANIFEST] = ((json.dumps(manifest, indent=2) + "\n").encode("utf-8"), 0o644)
    for name, (data, mode) in sorted(all_files.items()):
        path = target / name
        same = path.is_file() and path.read_bytes() == data and (os.name == "nt" or (path.stat().st_mode & 0o777) == mode)
        if same:
            continue
        say("write %s" % path)
        changes += 1
        if not dry_run:
            _write_atomic(path, data, mode)
    return changes


def uninstall(gimp_dir, dry_run, say):
    """Remove what install() put there (and the folders it created, when empty); returns the count."""
    target = gimp_dir / "plug-ins" / PLUGIN_NAME
    if not target.exists():
        return 0
    try:
        manifest = json.loads((target / MANIFEST).read_text())
    except (OSError, ValueError):
        manifest = {"created_dirs": [str(target)], "files": []}
    changes = 0
    for name in sorted(set(manifest["files"]) | {PLUGIN_NAME + ".py", "mattekit_client.py", "mattekit_protocol.py", RECORD, MANIFEST}):
        path = target / name
        if path.exists():
            say("remove %s" % path)
            changes += 1
            if not dry_run:
                path.unlink()
    cache = target / "__pycache__"
    if cache.is_dir():
        say("remove %s" % cache)
        changes += 1
        if not dry_run:
            shutil.rmtree(str(cache))
    for folder in sorted(set(manifest["created_dirs"]) | {str(target)}, key=len, reverse=True):
        folder = Path(folder)
        if folder.is_dir() and (dry_run or not any(folder.iterdir())):
            say("remove folder %s" % folder)
            changes += 1
            if not dry_run:
                folder.rmdir()
    return changes


def main(argv=None):
    parser = argparse.ArgumentParser(description="Install the mattekit plug-in into GIMP 3 (per user).")
    parser.add_argument("--gimp-dir", action="append", type=Path,
                        help="GIMP's per-user folder (the one holding plug-ins/); repeatable; default: detected")
    parser.add_argument("--flatpak", action="store_true", help="also install for the Flatpak GIMP")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter that runs the worker (default: this one, %(default)s)")
    parser.add_argument("--idle-timeout", type=float, default=900.0,
                        help="seconds a worker started by the plug-in stays up without work (default 900)")
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
        print("install_gimp: %s" % ("nothing to remove." if not total else "plug-in removed." if not args.dry_run
                                      else "%d change(s) planned." % total))
        return 0
    python = os.path.abspath(args.python)
    info = query_worker(python)
    files = planned_files(python, info, args.idle_timeout)
    for gimp_dir in dirs:
        total += install(gimp_dir, files, args.dry_run, say)
        print("install_gimp: plug-in %s %s" % ("ready in" if not args.dry_run else "would be in",
                                                 gimp_dir / "plug-ins" / PLUGIN_NAME))
    print("install_gimp: %s; worker interpreter %s; worker operations: %s."
          % ("already up to date" if not total else "%d change(s)" % total, python, ", ".join(info["operations"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
