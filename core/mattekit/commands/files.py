"""Shared helpers for commands that take files, folders and globs and write one output per input."""
from __future__ import annotations

import glob
import os
from pathlib import Path

from ..errors import InputError, OutputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".exr"}


def expand_inputs(items: list[str]) -> list[tuple[Path, Path]]:
    """Files, folders (their images, sorted) and globs -> [(file, folder it came from or its parent)]."""
    found: list[tuple[Path, Path]] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not files:
                raise InputError(f"The folder {item} holds no images (PNG, JPEG, TIFF, WebP, BMP, EXR).")
            found += [(p, path) for p in files]
        elif path.is_file():
            found.append((path, path.parent))
        elif glob.has_magic(item):
            files = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not files:
                raise InputError(f"No file matches {item}.")
            found += [(p, p.parent) for p in files]
        else:
            raise InputError(f"{item} does not exist.")
    return found


def output_path(source: Path, root: Path, out: str | None, single: bool, suffix: str, ext: str) -> Path:
    """Where the result for ``source`` goes.

    No ``-o``: beside the input as ``<stem><suffix><ext>``. ``-o`` naming a file (one input,
    with an image extension): that file. Otherwise ``-o`` is a folder, the input's path
    relative to its folder kept, named ``<stem><ext>``.
    """
    if out is None:
        return source.with_name(source.stem + suffix + ext)
    target = Path(out)
    if single and target.suffix.lower() in IMAGE_SUFFIXES and not target.is_dir():
        return target
    rel = source.relative_to(root) if source.is_relative_to(root) else Path(source.name)
    return target / rel.with_suffix(ext)


def ensure_parent(path: Path) -> None:
    """Create the folder that will hold ``path``; an OutputError sentence when that is impossible."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot create the output folder {path.parent}: {exc.strerror or exc}.") from None
    if not os.access(path.parent, os.W_OK):
        raise OutputError(f"The output folder {path.parent} is not writable.")
