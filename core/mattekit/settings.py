"""The user's own settings and marks: the per-user config file (:func:`config_path`, a default model pinned per task:
:func:`pinned_defaults`) and the marks of one-time notices (:func:`first_time`). The CLI, the worker (so GIMP and
Blender) and the Python API all read the catalog through :func:`mattekit.catalog.load`, which applies the pins.

The config file, TOML::

    [defaults]
    segment = "u2net"      # a catalog model of that task: used wherever no model is named
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

from .errors import MattekitError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def config_path() -> Path:
    """``$MATTEKIT_CONFIG``, else ``$MATTEKIT_HOME/config.toml``, else the user config folder's
    ``mattekit/config.toml`` (``~/.config/mattekit`` on Linux, Application Support on macOS, AppData on Windows)."""
    given = os.environ.get("MATTEKIT_CONFIG", "").strip()
    if given:
        return Path(given).expanduser()
    home = os.environ.get("MATTEKIT_HOME", "").strip()
    return (Path(home).expanduser() if home else Path(platformdirs.user_config_dir("mattekit"))) / "config.toml"


def pinned_defaults() -> dict[str, str]:
    """{task: model name} of the config file's ``[defaults]``; {} without a file. MattekitError (one sentence)
    for a file that is no TOML or whose ``[defaults]`` is no table of names."""
    path = config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise MattekitError(f"Cannot read the config file {path} ({getattr(exc, 'strerror', None) or exc}).") from None
    try:
        found = tomllib.loads(text).get("defaults", {})
    except tomllib.TOMLDecodeError as exc:
        raise MattekitError(f"The config file {path} is not valid TOML ({exc}); fix or remove it.") from None
    if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
        raise MattekitError(f'The config file {path}: [defaults] must give model names, e.g. segment = "u2net".')
    return found


def first_time(what: str) -> bool:
    """True the first time this user meets ``what`` (a notice's name): a mark is then left in the user's mattekit
    folder (:func:`mattekit.wire.state.state_folder`, ``notices/``); True again only if the mark cannot be written."""
    from .wire.state import state_folder

    mark = Path(state_folder()) / "notices" / what
    if mark.exists():
        return False
    try:
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.touch()
    except OSError:
        pass
    return True
