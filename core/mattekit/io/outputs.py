"""Where a task's result for an input file goes, and in what form: formats, bit depth, second inputs.

Shared by the CLI's per-file runs and the Python API's path mode. Results are float32 in [0,1].
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import InputError
from .formats import DEPTHS, WRITERS
from .metadata import Metadata, in_source_colours, without_personal
from .picture import Picture
from .read import read_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".exr", ".heic", ".heif", ".avif"}


def same_format(source: Path) -> str:
    """The input's own extension where mattekit can write it, else .png."""
    return source.suffix.lower() if source.suffix.lower() in WRITERS else ".png"


def bit_depth_for(picture: Picture, target: Path) -> int:
    """The bit depth to write ``picture`` at in ``target``'s format: 16-bit stays 16-bit, EXR stays float."""
    ext = target.suffix.lower()
    if ext == ".exr":
        return 32 if picture.bit_depth >= 32 else 16
    return 16 if picture.bit_depth >= 16 and 16 in DEPTHS.get(WRITERS.get(ext, ""), ()) else 8


def companion(given: str, source: Path, what: str) -> Path:
    """The file for ``source`` named by ``given``: the file itself, or the same-named image in a folder."""
    path = Path(given)
    if path.is_dir():
        for candidate in sorted(path.iterdir()):
            if candidate.stem == source.stem and candidate.suffix.lower() in IMAGE_SUFFIXES:
                return candidate
        raise InputError(f"The {what} folder {given} has no image named {source.stem}.*.")
    if not path.is_file():
        raise InputError(f"The {what} {given} does not exist.")
    return path


def companion_files(given: str, stems: set[str]) -> list[Path]:
    """Every file that ``given`` (a file or a folder, see :func:`companion`) may supply for inputs with these
    stems: the file itself, or the images in the folder named like one of them."""
    path = Path(given).expanduser()
    if not path.is_dir():
        return [path]
    try:
        return [p for p in path.iterdir() if p.stem in stems and p.suffix.lower() in IMAGE_SUFFIXES]
    except OSError:
        return []


def read_companion(given: str, source: Path, port, shape: tuple[int, int]):
    """A second input of a task (trimap, mask, backdrop...) for ``source``: H x W for single-channel
    ports (checked against the image's ``shape``), H x W x C for image ports."""
    path = companion(given, source, port.name)
    pixels = read_image(path).pixels
    if port.kind == "image":
        return pixels
    same_size(port.name, path, pixels.shape[:2], shape)
    return pixels[..., 0]


def same_size(name: str, path: Path, found: tuple[int, int], shape: tuple[int, int]) -> None:
    """InputError unless the ``name`` input at ``path``, ``found`` (height, width), has the image's ``shape``."""
    if tuple(found) != tuple(shape):
        raise InputError(
            f"The {name} {path} is {found[1]}x{found[0]} but the image is "
            f"{shape[1]}x{shape[0]}; they must have the same size."
        )


def for_file(result: np.ndarray, target: Path) -> np.ndarray:
    """A task's result in a form image files hold: grey + alpha becomes RGBA, and EXR gets RGB for grey."""
    if result.ndim == 3 and result.shape[-1] == 2:
        return np.concatenate([np.repeat(result[..., :1], 3, axis=2), result[..., 1:]], axis=2)
    if target.suffix.lower() == ".exr" and (result.ndim == 2 or result.shape[-1] == 1):
        grey = result if result.ndim == 2 else result[..., 0]
        return np.repeat(grey[..., None], 3, axis=2)
    return result


def with_metadata(
    pixels: np.ndarray, picture: Picture, target: Path, personal: bool = False
) -> tuple[np.ndarray, Metadata | None]:
    """(the result ``pixels`` as :func:`for_file` gives them, in the source's own colours; the metadata ``target``
    keeps): the source's ICC profile, dpi, EXIF and XMP, all of them with ``personal``, else only the EXIF and XMP
    fields :mod:`mattekit.io.kept` allows (:func:`mattekit.io.metadata.without_personal`). A source whose RGB profile was converted to
    sRGB for the networks gets its colours back (:func:`mattekit.io.metadata.in_source_colours`: uint8, the source's own values
    where the task kept a pixel's colour); an EXR target keeps none of it (its pixels stay as they are)."""
    meta = picture.metadata
    if meta is None or target.suffix.lower() == ".exr":
        return pixels, None
    meta = meta if personal else without_personal(meta)
    colour = pixels.ndim == 3 and pixels.shape[2] in (3, 4)
    if meta.icc and colour and picture.original is not None:
        found = in_source_colours(pixels, picture.pixels, picture.original, meta.icc, picture.source)
        return (pixels, replace(meta, icc=None)) if found is None else (found, meta)
    return pixels, meta
