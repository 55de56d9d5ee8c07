"""The Blenders to install into: where Blender is usually installed on each system, and how one is run.

A :class:`Blender` is a Blender executable, run with ``--background --python inside_blender.py``, or a Python that
imports Blender as the ``bpy`` module, run with ``inside_blender.py``; either way inside_blender.py answers one
``RESULT {json}`` line. Standard library only.
"""

import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

TOOL = "install_blender"
INSIDE = Path(__file__).resolve().with_name("inside_blender.py")


def blender_patterns(home, env, platform):
    """Glob patterns of Blender executables in the usual places on ``platform``, as ``home``'s kind of path writes
    them (a PureWindowsPath home gives Windows paths)."""
    folder = type(home)
    if platform == "darwin":
        return [
            str(folder("/Applications") / "Blender*.app" / "Contents" / "MacOS" / "Blender"),
            str(home / "Applications" / "Blender*.app" / "Contents" / "MacOS" / "Blender"),
        ]
    if platform == "win32":
        programs = folder(env.get("ProgramFiles") or "C:\\Program Files")
        return [str(programs / "Blender Foundation" / "Blender*" / "blender.exe")]
    return [
        "/snap/bin/blender",
        "/opt/blender*/blender",
        str(home / "blender*" / "blender"),
        str(home / ".local" / "bin" / "blender"),
    ]


def candidate_blenders(home, env, platform):
    """Blender executables in the usual places (existing files only, in order, without repeats)."""
    found = [shutil.which("blender", path=env.get("PATH"))]
    for pattern in blender_patterns(home, env, platform):
        found += sorted(glob.glob(pattern), reverse=True)  # newest version first
    unique, seen = [], set()
    for path in found:
        if path and os.path.isfile(path) and os.access(path, os.X_OK) and os.path.realpath(path) not in seen:
            seen.add(os.path.realpath(path))
            unique.append(path)
    return unique


class Blender:
    """One Blender to install into: a Blender executable, or a Python that imports ``bpy``."""

    def __init__(self, executable, module=False):
        self.executable = os.path.abspath(executable)
        self.module = module
        self.info = None

    def __str__(self):
        version = self.info["version_string"] if self.info else "?"
        kind = "bpy module run by" if self.module else "at"
        return "Blender %s (%s %s)" % (version, kind, self.executable)

    def command(self, *args):
        if self.module:
            return [self.executable, str(INSIDE)] + list(args)
        return [self.executable, "--background", "--python-exit-code", "1", "--python", str(INSIDE), "--"] + list(args)

    def run(self, *args):
        """Run inside_blender.py COMMAND ARGS in this Blender; its RESULT (a dict), or SystemExit."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        try:
            out = subprocess.run(self.command(*args), capture_output=True, text=True, timeout=600, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SystemExit("%s: cannot run %s (%s)." % (TOOL, self.executable, exc))
        lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
        if out.returncode != 0 or not lines:
            last = ((out.stderr + out.stdout).strip().splitlines() or ["no output"])[-1]
            raise SystemExit("%s: %s failed to %s the add-on (%s)." % (TOOL, self.executable, args[0], last))
        return json.loads(lines[-1][len("RESULT ") :])
