"""The half of install_blender.py that runs inside Blender (its own Python, with bpy).

    blender --background --python-exit-code 1 --python inside_blender.py -- COMMAND [ARG]
    PYTHON_WITH_BPY inside_blender.py COMMAND [ARG]          (Blender as a Python module)

COMMAND: ``probe`` (JSON: Blender's version, user folder, extensions folder, preferences file,
the bundled ``blender_ext.py`` and the Python that runs it), ``validate ZIP`` (Blender's own
extension validation), ``install ZIP`` (install into the "user_default" repository, enable,
save the preferences), ``uninstall PACKAGE [--keep-prefs]`` (disable and remove it; save the
preferences only with --keep-prefs, i.e. when they are the user's). Prints one line
``RESULT {json}``. Standard library and bpy only.
"""

import json
import os
import subprocess
import sys

import bpy

REPOSITORY = "user_default"


def _userpref_file():
    return os.path.join(bpy.utils.user_resource("CONFIG"), "userpref.blend")


def _load_user_preferences():
    """Blender as a module starts with factory preferences: read the user's, so that saving keeps them."""
    if os.path.isfile(_userpref_file()):
        bpy.ops.wm.read_userpref()


def _blender_ext():
    return os.path.join(bpy.utils.system_resource("SCRIPTS"), "addons_core", "bl_pkg", "cli", "blender_ext.py")


def probe():
    return {
        "version": list(bpy.app.version),
        "version_string": bpy.app.version_string,
        "user": bpy.utils.resource_path("USER"),
        "extensions": bpy.utils.user_resource("EXTENSIONS"),
        "userpref": _userpref_file(),
        "blender_ext": _blender_ext(),
        "python": sys.executable,
    }


def validate(archive):
    run = subprocess.run([sys.executable, _blender_ext(), "validate", archive], capture_output=True, text=True)
    text = (run.stdout + run.stderr).strip()
    return {"ok": run.returncode == 0 and "Success" in run.stdout, "message": text}


def install(archive):
    _load_user_preferences()
    outcome = bpy.ops.extensions.package_install_files(
        filepath=archive, repo=REPOSITORY, enable_on_install=True, overwrite=True
    )
    package = os.path.splitext(os.path.basename(archive))[0].rsplit("-", 1)[0]
    module = "bl_ext.%s.%s" % (REPOSITORY, package)
    enabled = module in bpy.context.preferences.addons
    if enabled:
        bpy.ops.wm.save_userpref()
    return {
        "ok": "FINISHED" in outcome and enabled,
        "module": module,
        "folder": os.path.join(bpy.utils.user_resource("EXTENSIONS"), REPOSITORY, package),
    }


def uninstall(package, keep_prefs):
    _load_user_preferences()
    repos = bpy.context.preferences.extensions.repos
    index = next(i for i, repo in enumerate(repos) if repo.module == REPOSITORY)
    folder = os.path.join(repos[index].directory, package)
    if os.path.isdir(folder):
        bpy.ops.extensions.package_uninstall(repo_directory=repos[index].directory, repo_index=index, pkg_id=package)
    if keep_prefs:
        bpy.ops.wm.save_userpref()
    return {"ok": not os.path.exists(folder), "folder": folder}


def main(argv):
    command, rest = argv[0], argv[1:]
    if command == "probe":
        result = probe()
    elif command == "validate":
        result = validate(rest[0])
    elif command == "install":
        result = install(rest[0])
    elif command == "uninstall":
        result = uninstall(rest[0], "--keep-prefs" in rest)
    else:
        raise SystemExit("inside_blender: unknown command %r" % command)
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    arguments = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    status = 0
    try:
        main(arguments)
    except Exception:  # noqa: BLE001 - reported to install_blender.py, which says it in one sentence
        import traceback

        traceback.print_exc()
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # Blender 4.5 as a module hangs at exit while add-on classes are registered; nothing is left to do.
    os._exit(status)
