"""What a Blender run leaves in the user's folders, and the steps that remove it.

Blender writes to its user folder and (XDG systems) the thumbnail cache; :func:`survey` lists what is there, so
that what an install made can be recorded and what a run made by the way removed again. A run of the installer is
a list of steps ((text, action or None for a note)) that :func:`carry_out` says and, unless a dry run, does: a dry
run and a real run go through the very same list. Standard library only, plus worker_record's file hashes.
"""

import functools
import os
from pathlib import Path

import worker_record
from blenders import TOOL

CACHE_FOLDERS = (".cache", ".blender_ext")


def watched_folders(home, env, platform):
    """The folders Blender writes to for a user: its user folder and (XDG systems) the thumbnail cache; paths of
    ``home``'s kind."""
    folder = type(home)
    if env.get("BLENDER_USER_RESOURCES"):
        folders = [folder(env["BLENDER_USER_RESOURCES"])]
    elif platform == "win32":
        appdata = folder(env["APPDATA"]) if env.get("APPDATA") else home / "AppData" / "Roaming"
        folders = [appdata / "Blender Foundation" / "Blender"]
    elif platform == "darwin":
        folders = [home / "Library" / "Application Support" / "Blender"]
    else:
        folders = [folder(env.get("XDG_CONFIG_HOME") or home / ".config") / "blender"]
    if platform not in ("win32", "darwin"):
        folders.append(folder(env.get("XDG_CACHE_HOME") or home / ".cache") / "thumbnails")
    return folders


def survey(folders, home):
    """{path: "dir" | "file"}: everything under ``folders`` and their existing parents inside ``home``."""
    found = {}
    for folder in folders:
        for parent in reversed(folder.parents):
            if parent != home and home in parent.parents and parent.is_dir():
                found[str(parent)] = "dir"
        if folder.is_dir():
            found[str(folder)] = "dir"
            for top, dirs, files in os.walk(str(folder)):
                for name in dirs:
                    found[os.path.join(top, name)] = "dir"
                for name in files:
                    found[os.path.join(top, name)] = "file"
    return found


def is_blender_cache(path, user_folder):
    """Whether ``path`` lies in one of Blender's own caches in its user folder (extensions/.cache,
    <repository>/.blender_ext): Blender rewrites them at each start and makes them again when missing."""
    try:
        parts = Path(path).relative_to(user_folder).parts
    except ValueError:
        return False
    return any(part in CACHE_FOLDERS for part in parts[:-1])


def created_since(before, after):
    """{path: sha256 (files) or None (folders)} of what ``after`` has and ``before`` had not."""
    return {
        path: (worker_record.sha256_file(path) if kind == "file" else None)
        for path, kind in sorted(after.items())
        if path not in before and os.path.exists(path)
    }


def removal_steps(paths, gone):
    """The steps that remove the files among ``paths``, then its folders that hold nothing else (deepest first).

    gone: paths removed by earlier steps (or, in a dry run, that would be); updated. A folder that holds
    something else is kept: its step is a note (no action).
    """
    steps = []
    for path in sorted(p for p in paths if p not in gone and (os.path.isfile(p) or os.path.islink(p))):
        steps.append(("remove %s" % path, functools.partial(delete, path)))
        gone.add(path)
    folders = (p for p in paths if p not in gone and os.path.isdir(p) and not os.path.islink(p))
    for folder in sorted(folders, key=lambda f: (-len(f), f)):  # deepest first, in an order that does not vary
        leftover = [n for n in os.listdir(folder) if os.path.join(folder, n) not in gone]
        if leftover:
            steps.append(("keep folder %s (it holds %s, made since)" % (folder, leftover[0]), None))
            continue
        steps.append(("remove folder %s" % folder, functools.partial(delete, folder)))
        gone.add(folder)
    return steps


def delete(path):
    """Remove a file or an empty folder; one gone already is fine (the Blender run of an earlier step may
    have removed it), one that cannot be removed ends the run in one sentence."""
    try:
        (os.rmdir if os.path.isdir(path) and not os.path.islink(path) else os.remove)(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise SystemExit("%s: cannot remove %s (%s)." % (TOOL, path, exc.strerror or exc))


def carry_out(steps, dry_run, say):
    """Say each step of ``steps`` ((text, action or None for a note)) and, unless ``dry_run``, do it in that
    order: a dry run and a real run go through the very same list. Returns the number of changes."""
    for text, action in steps:
        say(text)
        if action is not None and not dry_run:
            action()
    return sum(1 for _, action in steps if action is not None)


def remove_paths(paths, dry_run, say, gone=None):
    """Remove (or, ``dry_run``, name) what :func:`removal_steps` lists for ``paths``; returns the count."""
    return carry_out(removal_steps(paths, set() if gone is None else gone), dry_run, say)


def tidy_up(before, watched, home):
    """Silently remove what Blender runs made in ``watched`` since the survey ``before`` (thumbnail folders...)."""
    remove_paths(set(survey(watched, home)) - set(before), False, lambda _: None)
