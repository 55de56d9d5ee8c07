#!/usr/bin/env python3
"""Install the mattekit "AI Matte" add-on into Blender 4.2+ for the current user (or remove it with --uninstall).

    python install/install_blender.py [--blender PATH]... [--bpy-python PY]... [--python PY] [--zip FILE]
                                      [--dry-run] [--uninstall]

Run it with the Python that has mattekit installed (it is recorded as the worker's interpreter;
--python names another). It builds the extension zip: ``blender_addon/`` plus

    mattekit_wire/          a copy of the package mattekit.wire: the client and the wire format
                            (standard library only)
    mattekit_worker.json    the record: interpreter, state file, the worker's operations and models

checks it with Blender's own extension validation (``blender_ext.py validate``), then installs it
through Blender itself into its "user_default" extension repository, enables it and saves the
preferences. Which Blender: each ``--blender PATH``, each ``--bpy-python PY`` (a Python that
imports Blender as the ``bpy`` module), else ``blender`` on PATH and the usual install folders
(Linux /opt, /snap, ~; macOS /Applications; Windows Program Files); versions before 4.2 are
skipped. With none found it says so (``--zip FILE`` still writes the zip, for Blender's
Preferences > Get Extensions > Install from Disk).

What the install created in Blender's user folder (and its parents), and the folders its Blender runs
made elsewhere (the thumbnail cache: removed again at once, made again when Blender is used), are
listed in ``mattekit_install.json`` inside the installed add-on, so that --uninstall removes exactly
that, unless it changed since (then it is kept and named). A run is a list of steps
(``blender_traces.carry_out``): --dry-run says that very list and leaves every file as it was; a real run
says and does it. Running it again changes nothing unless something changed.

Beside it: blenders.py (where Blender is found and how one is run), blender_traces.py (what Blender's runs
leave in the user's folders, and the steps), inside_blender.py (what runs inside Blender), worker_record.py.
"""

import argparse
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import worker_record
from blender_traces import carry_out, created_since, is_blender_cache, removal_steps, survey, tidy_up, watched_folders
from blenders import TOOL, Blender, candidate_blenders

ADDON_SOURCE = worker_record.REPO / "blender_addon"
MANIFEST = "mattekit_install.json"
MINIMUM = (4, 2, 0)
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed entry times: the same files give the same zip bytes


def manifest_value(key):
    """A top-level string of blender_addon/blender_manifest.toml ("id": the installed folder's name, "version")."""
    for line in (ADDON_SOURCE / "blender_manifest.toml").read_text().splitlines():
        name, _, value = line.partition("=")
        if name.strip() == key:
            return value.strip().strip('"')
    raise SystemExit("%s: blender_addon/blender_manifest.toml has no %s." % (TOOL, key))


def package_id():
    return manifest_value("id")


# ---------------------------------------------------------------- the zip


def addon_files(record):
    """{path inside the zip: bytes}: the add-on's sources plus the wire package's copy and the record."""
    files = {}
    for path in sorted(ADDON_SOURCE.rglob("*")):
        relative = path.relative_to(ADDON_SOURCE)
        if path.is_file() and "__pycache__" not in relative.parts and path.suffix not in (".pyc", ".zip"):
            files[relative.as_posix()] = path.read_bytes()
    files.update(worker_record.adapter_files(record))
    return files


def zip_bytes(files):
    """A zip of ``files`` (deterministic: sorted entries, fixed times, mode 0644)."""
    handle = tempfile.SpooledTemporaryFile()
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name])
    handle.seek(0)
    return handle.read()


# ---------------------------------------------------------------- install and uninstall


def package_folder(blender):
    return Path(blender.info["extensions"]) / "user_default" / package_id()


def read_manifest(folder):
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        return manifest if isinstance(manifest, dict) else {}
    except (OSError, ValueError):
        return {}


def up_to_date(folder, files):
    return all((folder / name).is_file() and (folder / name).read_bytes() == data for name, data in files.items())


def within(path, folder):
    """Whether ``path`` is ``folder``, inside it, or one of its parents (all strings)."""
    return path == folder or path.startswith(folder + os.sep) or folder.startswith(path + os.sep)


def install(blender, files, archive, watched, home, dry_run, say):
    """Install ``archive`` (holding ``files``) into ``blender``; returns the number of changes.

    What changes is one step, said alike in a dry run: Blender installs the add-on into its user folder
    (making that folder and its own caches there if missing) and saves the preferences. What Blender's runs
    leave elsewhere (the thumbnail cache folders) is removed again, in a dry run and a real run alike."""
    before = survey(watched, home)
    blender.info = blender.run("probe")
    folder = package_folder(blender)
    if tuple(blender.info["version"]) < MINIMUM:
        print("%s: skipped %s: the add-on needs Blender 4.2 or later." % (TOOL, blender))
        tidy_up(before, watched, home)
        return 0
    if up_to_date(folder, files) and (folder / MANIFEST).is_file():
        tidy_up(before, watched, home)  # the probe's traces
        return 0
    check = blender.run("validate", str(archive))
    if not check["ok"]:
        tidy_up(before, watched, home)
        raise SystemExit("%s: Blender's validation refused the extension zip: %s" % (TOOL, check["message"]))
    print(
        "%s: %s passes Blender's own extension validation (%s)."
        % (TOOL, archive.name, check["message"].splitlines()[-1])
    )

    def put_in():
        earlier = read_manifest(folder).get("created", {})
        if not blender.run("install", str(archive))["ok"]:
            raise SystemExit("%s: %s installed the add-on but could not enable it." % (TOOL, blender))
        user = blender.info["user"]
        made = created_since(before, survey(watched, home))
        tidy_up({p: k for p, k in survey(watched, home).items() if within(p, user) or p in before}, watched, home)
        created = {p: d for p, d in earlier.items() if os.path.exists(p) or d is None}
        # the folders Blender's runs made outside its user folder (the thumbnail cache) are gone again, but
        # recorded: Blender makes them again when it is used, and --uninstall removes them then if they hold nothing else
        created.update((p, d) for p, d in made.items() if within(p, user) or d is None)
        manifest = {
            "blender": blender.info["version_string"],
            "created": {p: d for p, d in created.items() if os.path.exists(p) or d is None},
        }
        worker_record.atomic_write(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    steps = [
        (
            "install %s (%d files and %s) into %s, enable it and save the preferences (%s)"
            % (package_id(), len(files), MANIFEST, folder, blender.info["userpref"]),
            put_in,
        )
    ]
    count = carry_out(steps, dry_run, say)
    if dry_run:
        tidy_up(before, watched, home)  # leave no trace
    return count


def uninstall(blender, watched, home, dry_run, say, gone):
    """Remove the add-on from ``blender`` and what its install created; returns the number of changes.
    gone: what earlier uninstalls of this run removed (or would have: see removal_steps)."""
    before = survey(watched, home)
    blender.info = blender.run("probe")
    folder = package_folder(blender)
    if not folder.exists():
        tidy_up(before, watched, home)
        return 0
    created = read_manifest(folder).get("created", {})
    ours, changed = set(), []
    for path, digest in created.items():
        if path not in before:  # gone, or made again only by this run's own Blender (tidied like its other traces)
            continue
        if (
            digest is None
            or is_blender_cache(path, blender.info["user"])
            or (os.path.isfile(path) and worker_record.sha256_file(path) == digest)
        ):
            ours.add(path)
        else:
            changed.append(path)
    keep_prefs = blender.info["userpref"] not in ours

    def take_out():
        blender.run("uninstall", package_id(), *(["--keep-prefs"] if keep_prefs else []))
        tidy_up(before, watched, home)  # what this run's Blender made (its caches, thumbnail folders)

    steps = [
        (
            "disable %s and remove %s through %s%s"
            % (package_id(), folder, blender, ", saving the preferences" if keep_prefs else ""),
            take_out,
        )
    ]
    steps += [("keep %s (changed since the install)" % path, None) for path in sorted(changed)]
    gone.add(str(folder))  # Blender removes the add-on's folder
    gone.update(set(survey(watched, home)) - set(before))  # this run's traces: tidied (see take_out), never in the way
    outside = {p for p in ours - set(changed) if not (p + os.sep).startswith(str(folder) + os.sep)}
    steps += removal_steps(outside, gone)
    count = carry_out(steps, dry_run, say)
    if dry_run:
        tidy_up(before, watched, home)  # leave no trace
    return count


def targets(args, home):
    """The Blenders to work on (probed later); SystemExit when none is named or found."""
    chosen = [Blender(p) for p in args.blender or []] + [Blender(p, module=True) for p in args.bpy_python or []]
    if chosen:
        return chosen
    return [Blender(p) for p in candidate_blenders(home, os.environ, sys.platform)]


def _parser():
    """The installer's command line."""
    parser = argparse.ArgumentParser(description="Install the mattekit AI Matte add-on into Blender 4.2+ (per user).")
    parser.add_argument("--blender", action="append", help="a Blender executable; repeatable; default: detected")
    parser.add_argument("--bpy-python", action="append", help="a Python that imports Blender as the bpy module")
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter that runs the worker (default: this one, %(default)s)"
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=900.0,
        help="seconds a worker started by the add-on stays up without work (default 900)",
    )
    parser.add_argument("--zip", type=Path, help="also write the extension zip to this file")
    parser.add_argument("--dry-run", action="store_true", help="say what would change; change nothing")
    parser.add_argument("--uninstall", action="store_true", help="remove the add-on and what its install created")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    prefix = "would " if args.dry_run else ""

    def say(text):
        print("%s: %s%s" % (TOOL, prefix, text))

    home = Path.home()
    watched = watched_folders(home, os.environ, sys.platform)
    blenders = targets(args, home)
    if args.uninstall:
        if not blenders:
            raise SystemExit("%s: no Blender found; name it with --blender PATH." % TOOL)
        gone = set()
        total = sum(uninstall(b, watched, home, args.dry_run, say, gone) for b in reversed(blenders))
        print(
            "%s: %s"
            % (
                TOOL,
                "nothing to remove."
                if not total
                else "%d change(s) planned." % total
                if args.dry_run
                else "add-on removed (%d change(s))." % total,
            )
        )
        return 0
    python = os.path.abspath(args.python)
    settings = worker_record.worker_settings(os.environ)
    info = worker_record.query_worker(python, settings, TOOL)
    record = worker_record.build_record(python, info, args.idle_timeout, settings)
    files = addon_files(record)
    data = zip_bytes(files)
    total = 0
    # the zip is for any machine: none of this one's paths (its interpreter, state file, MATTEKIT_HOME); there the
    # add-on finds the worker by the default state file at run time, started by `mattekit serve` or by the Python
    # set in its preferences ($MATTEKIT_PYTHON)
    portable = zip_bytes(addon_files(dict(record, python=None, state_file=None, environment={})))
    if args.zip is not None and not (args.zip.is_file() and args.zip.read_bytes() == portable):
        say("write %s" % args.zip)
        total += 1
        if not args.dry_run:
            worker_record.atomic_write(args.zip, portable)
    if not blenders:
        if args.zip is None:
            raise SystemExit(
                "%s: no Blender found; name it with --blender PATH, or write the zip with --zip FILE "
                "and install it from Blender's Preferences > Get Extensions > Install from Disk." % TOOL
            )
        print(
            "%s: no Blender found; install %s from Blender's Preferences > Get Extensions > Install from Disk."
            % (TOOL, args.zip)
        )
        return 0
    with tempfile.TemporaryDirectory(prefix="mattekit-blender-") as scratch:
        archive = Path(scratch) / ("%s-%s.zip" % (package_id(), manifest_value("version")))
        archive.write_bytes(data)
        for blender in blenders:
            total += install(blender, files, archive, watched, home, args.dry_run, say)
    print(
        "%s: %s; worker interpreter %s."
        % (
            TOOL,
            "already up to date" if not total else "%d change(s)%s" % (total, " planned" if args.dry_run else ""),
            python,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
