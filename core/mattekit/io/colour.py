"""Colour management through OpenColorIO: which colour space a plate is in, and the one transform that
gives the networks their input.

The config is the one ``$OCIO`` names, else OCIO's built-in ACES studio config
(:data:`BUILTIN`, no file needed); ``NAME@CONFIG`` names a colour space of another config (:func:`split_space`). A plate's colour space is the one asked for (``--colorspace``), else what
its file says (:func:`default_colorspace`). The networks were trained on sRGB photos, so by default they get the
plain conversion to :data:`NETWORK_SPACE` (sRGB-encoded Rec.709), clipped to 0..1 only there, without a tone-mapping
view: an sRGB PNG and the same picture as an ACEScg EXR then give the same network input. A view (``--view``, one of
the views of the config's sRGB display, e.g. ``ACES 2.0 - SDR 100 nits (Rec.709)``; :func:`check_view`) gives them
that view transform's display-referred sRGB instead, which keeps highlights above 1.0 apart rather than clipping them.
"""

from __future__ import annotations

import os
import warnings
from functools import lru_cache
from typing import Callable

import numpy as np
import PyOpenColorIO as ocio

from mattekit.errors import InputError
from mattekit.fsutil import Unreadable, read_regular
from mattekit.ops.pixels import finite
from mattekit.ops.regions import row_strips

BUILTIN = "ocio://studio-config-latest"  # the ACES studio config built into OCIO 2.2+ (camera log spaces included)
NETWORK_SPACE = "sRGB Encoded Rec.709 (sRGB)"  # what the networks see (a name of the built-in configs)
LINEAR_SRGB = "Linear Rec.709 (sRGB)"  # float files that say nothing of their colour
STRIP_PIXELS = 1 << 20  # pixels of rows converted as one strip (in parallel threads)
# EXR chromaticities (red, green, blue, white x y) -> the colour space they name
PRIMARIES = {
    (0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.077, 0.32168, 0.33767): "ACES2065-1",
    (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767): "ACEScg",
    (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290): LINEAR_SRGB,
}


def config_path() -> str:
    """The OCIO config in use: ``$OCIO``, else :data:`BUILTIN`."""
    return os.environ.get("OCIO", "").strip() or BUILTIN


CONFIG_BYTES = 16 << 20  # the most a config file may hold
LUT_BYTES = 64 << 20  # the most a file a config names may hold (a 65-point cube as text is about 10 MB)
_CONFINED: dict[str, Callable[[str], bool]] = {}  # config path -> where else its files may lie (:func:`confine`)


class _Files(ocio.PyConfigIOProxy):
    """Every file a config names, read for OpenColorIO here (OCIO would hold the GIL while it read): a regular file
    through one descriptor (:func:`mattekit.fsutil.read_regular`), at most :data:`LUT_BYTES`; for a confined config
    only beside it (its folder and below) or where ``allowed`` says. A refusal cannot be raised through OCIO (it
    then opens the file itself): it is kept in ``refused`` and a byte no LUT reader takes is handed over instead."""

    def __init__(self, path: str, allowed: Callable[[str], bool] | None):
        super().__init__()
        self.path, self.allowed, self.refused = path, allowed, ""
        self.folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))

    def inside(self, real: str) -> bool:
        return real.startswith(self.folder.rstrip(os.sep) + os.sep) or self.allowed(real)

    def getConfigData(self) -> str:  # (never asked: the config's text is given to OCIO whole)
        return ""

    def getFastLutFileHash(self, path: str) -> str:  # OCIO's own: device and inode, "" for no file
        try:
            info = os.stat(path)
        except (OSError, ValueError):
            return ""
        return f"{info.st_dev}:{info.st_ino}"

    def getLutData(self, path: str):
        try:
            confined = self.inside if self.allowed else None
            return bytearray(read_regular(path, LUT_BYTES, confined, "its folder and the worker's allowed folders"))
        except Unreadable as exc:
            self.refused = self.refused or f"The OCIO config {self.path} names {path}, which {exc}."
            return bytearray(b"\0")

    def check(self) -> None:
        """InputError for a file refused since the last check; the config leaves the caches then, so that
        what OCIO made of the refusal is never used."""
        refused, self.refused = self.refused, ""
        if refused:
            _clear_caches()
            raise InputError(refused)


def _clear_caches() -> None:
    for cached in (_load, _processor, _view_processors):
        cached.cache_clear()
    ocio.ClearAllCaches()  # OCIO's own file caches are global, by path


def _config(path: str) -> ocio.Config:
    return _load(path)[0]


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[ocio.Config, _Files | None]:
    """The OCIO config at ``path`` (a file or an ``ocio://`` URI) and the reader of the files it names (kept here:
    OCIO holds only its C++ half). A file is read once, a regular file only (a FIFO or a device named as a config
    would block the reader, or never end), and its text handed to OCIO, with its folder as the working folder."""
    origin = " (from $OCIO)" if path == os.environ.get("OCIO", "").strip() else ""
    try:
        if path.startswith("ocio://") or path.endswith(".ocioz"):  # built in, or an archive OCIO reads itself
            return ocio.Config.CreateFromFile(path), None
        text = read_regular(path, CONFIG_BYTES).decode("utf-8", "replace")
        cfg = ocio.Config.CreateFromStream(text)
        cfg.setWorkingDir(os.path.dirname(os.path.abspath(path)))
        files = _Files(path, _CONFINED.get(path))
        cfg.setConfigIOProxy(files)
        if files.allowed:
            _check_search_paths(cfg, files)
        return cfg, files
    except Unreadable as exc:
        raise InputError(f"Cannot load the OCIO config {path}{origin}: it {exc}.") from None
    except (ocio.Exception, ocio.ExceptionMissingFile) as exc:  # (the second is no subclass of the first)
        reason = str(exc).splitlines()[0].removeprefix("Error: ").split(". ")[0].rstrip(".").replace(f"'{path}' ", "")
        reason = reason[:1].lower() + reason[1:]
        raise InputError(f"Cannot load the OCIO config {path}{origin}: {reason}.") from None


def _check_search_paths(cfg: ocio.Config, files: _Files) -> None:
    """InputError when a confined config's search path leaves its folder and the allowed folders."""
    context = cfg.getCurrentContext()
    for named in cfg.getSearchPaths():
        named = context.resolveStringVar(named)
        real = os.path.realpath(os.path.join(cfg.getWorkingDir(), named))
        if real != files.folder and not files.inside(real):
            raise InputError(
                f"The OCIO config {files.path} searches {real} for files, outside its folder and the "
                f"worker's allowed folders."
            )


def confine(space: str, allowed: Callable[[str], bool], view: str | None = None) -> None:
    """For the worker: the config that ``space`` names as NAME@CONFIG (none for $OCIO's or a built-in one) may
    read files only beside it (its folder and below) or where ``allowed(real path)`` says; its conversion for
    the networks (through ``view`` when given) is made now, so that a config naming a FIFO, a device, a file
    elsewhere or a search path elsewhere is refused (InputError, one sentence) before any job is queued."""
    path = named_config(space)
    if not path:
        return
    if _CONFINED.get(path) != allowed:
        _CONFINED[path] = allowed
        _clear_caches()
    check_conversion(space, view)


def config() -> ocio.Config:
    return _config(config_path())


def split_space(space: str) -> tuple[str, str]:
    """(config, colour space name) of ``space``: ``NAME@CONFIG`` names a colour space of another OCIO config (a
    ``.ocio`` file or an ``ocio://`` URI; Blender's add-on sends its clip's colour space so, with Blender's own
    config), any other text one of :func:`config_path`'s."""
    name, _, path = str(space).rpartition("@")
    if name and (path.endswith(".ocio") or path.startswith("ocio://")):
        return path, name
    return config_path(), str(space)


def named_config(space: str) -> str:
    """The config file that ``space`` names as ``NAME@CONFIG`` (a path, to be confined like any path a request
    names); "" for a name of the config in use or an ``ocio://`` URI."""
    path, _ = split_space(space)
    return "" if path == config_path() or path.startswith("ocio://") else path


def check_colorspace(name: str) -> str:
    """The config's own name for colour space ``name`` (a name or an alias, any case; ``NAME@CONFIG`` for another
    config's, given back so qualified); InputError otherwise."""
    path, bare = split_space(name)
    space = _config(path).getColorSpace(bare) if bare.strip() else None
    if space is None:
        raise InputError(
            f"'{bare}' is not a colour space of the OCIO config {path}; "
            + ("`mattekit colorspaces` lists them." if path == config_path() else "its file lists them.")
        )
    return space.getName() if path == config_path() else f"{space.getName()}@{path}"


def default_colorspace(metadata: str = "", chromaticities=None, linear: bool = False) -> str:
    """The colour space a file's pixels are in when none is asked for: its EXR ``chromaticities`` (8 floats)
    when they name one of :data:`PRIMARIES`, else its ``metadata`` (OIIO's ``oiio:ColorSpace``) when the
    config knows it (a warning when it does not), else linear sRGB when the file's samples are ``linear`` (float
    samples, any EXR's) and sRGB otherwise."""
    if chromaticities is not None:
        for primaries, space in PRIMARIES.items():
            if np.allclose(chromaticities, primaries, atol=2e-3):
                return space
    known = config().getColorSpace(metadata) if metadata else None
    if known is not None:
        return known.getName()
    space = LINEAR_SRGB if linear else NETWORK_SPACE
    if metadata:  # (one warning per name, not per frame)
        warnings.warn(
            f"An image file says its colour space is '{metadata}', which the OCIO config {config_path()} does not "
            f"know; it is read as {space}, unless --colorspace names its colour space.",
            stacklevel=2,
        )
    return space


def exr_attributes(space: str) -> dict:
    """EXR header attributes naming colour space ``space``: ``oiio:ColorSpace`` (what OpenImageIO reads), and the
    standard ``chromaticities`` where ``space`` is one of the linear spaces of :data:`PRIMARIES`."""
    space = split_space(space)[1]
    primaries = next((p for p, name in PRIMARIES.items() if name == space), None)
    return {"oiio:ColorSpace": space} | ({"chromaticities": primaries} if primaries else {})


def is_network_space(space: str) -> bool:
    """Whether ``space`` is the networks' own (no transform needed)."""
    if split_space(space)[0] != config_path():
        return False  # another config's: converted through the interchange spaces
    found = config().getColorSpace(space)
    return space == NETWORK_SPACE or (found is not None and found.getName() == NETWORK_SPACE)


def _read_files(*paths: str) -> None:
    """InputError when the config at one of ``paths`` had a file it names refused while OCIO read it (:class:`_Files`)."""
    for path in paths:
        files = _load(path)[1]
        if files is not None:
            files.check()


@lru_cache(maxsize=16)
def _processor(path: str, space: str) -> ocio.CPUProcessor:
    cfg = _config(path)
    try:
        if cfg.getColorSpace(NETWORK_SPACE) is not None:
            processor = cfg.getProcessor(space, NETWORK_SPACE)
        else:  # a config of the user's without sRGB: through the interchange spaces to the built-in config's
            processor = ocio.Config.GetProcessorFromConfigs(cfg, space, _config(BUILTIN), NETWORK_SPACE)
    except (ocio.Exception, ocio.ExceptionMissingFile) as exc:
        _read_files(path)
        raise InputError(
            f"Cannot convert {space} to sRGB with the OCIO config {path}: {str(exc).splitlines()[0].rstrip('.')}."
        ) from None
    _read_files(path)
    return processor.getDefaultCPUProcessor()


def srgb_display() -> str:
    """The config's sRGB display (the first whose name holds "sRGB"), whose views :func:`check_view` offers;
    InputError when it has none."""
    found = next((d for d in config().getDisplays() if "srgb" in d.casefold()), None)
    if found is None:
        raise InputError(f"The OCIO config {config_path()} has no sRGB display, which a view for the networks needs.")
    return found


def check_view(name: str) -> str:
    """The config's own name of view ``name`` (any case) of its sRGB display; InputError otherwise."""
    display = srgb_display()
    views = list(config().getViews(display))
    found = next((v for v in views if v.casefold() == name.strip().casefold()), None)
    if found is None:
        raise InputError(
            f"'{name}' is not a view of the display '{display}' in the OCIO config {config_path()}; "
            f"its views are: {', '.join(views)}."
        )
    return found


@lru_cache(maxsize=16)
def _view_processors(path: str, space: str, view: str) -> tuple:
    """The CPU processors taking colour space ``space`` of config ``path`` through ``view`` of the sRGB display:
    one for the config in use; for another config's space, first to the config in use's scene-linear space
    (through the interchange spaces)."""
    cfg, display = config(), srgb_display()
    try:
        if path == config_path():
            found = (cfg.getProcessor(space, display, view, ocio.TRANSFORM_DIR_FORWARD).getDefaultCPUProcessor(),)
        else:
            linear = cfg.getColorSpace(ocio.ROLE_SCENE_LINEAR).getName()
            first = ocio.Config.GetProcessorFromConfigs(_config(path), space, cfg, linear)
            found = (
                first.getDefaultCPUProcessor(),
                cfg.getProcessor(linear, display, view, ocio.TRANSFORM_DIR_FORWARD).getDefaultCPUProcessor(),
            )
    except (ocio.Exception, ocio.ExceptionMissingFile, AttributeError) as exc:
        _read_files(config_path(), path)
        raise InputError(
            f"Cannot show {space} through the view '{view}' with the OCIO config {config_path()}: "
            f"{str(exc).splitlines()[0].rstrip('.')}."
        ) from None
    _read_files(config_path(), path)
    return found


def check_conversion(space: str, view: str | None = None) -> None:
    """Make :func:`to_network`'s conversion of ``space`` (through ``view``) now, reading the files its config names:
    InputError (one sentence) before any frame or model when one cannot be read."""
    _network_processors(space, view)


def _network_processors(space: str, view: str | None) -> tuple:
    """The CPU processors :func:`to_network` applies to ``space`` (through ``view``), in order."""
    if view:
        return _view_processors(*split_space(space), view)
    return () if is_network_space(space) else (_processor(*split_space(space)),)


def to_network(rgb: np.ndarray, space: str, view: str | None = None) -> np.ndarray:
    """``rgb`` (H x W x 3 float, in colour space ``space``, any range) as the networks' input: H x W x 3
    float32, sRGB-encoded Rec.709, clipped to [0, 1] (NaN -> 0); with ``view`` (a name :func:`check_view` gave:
    checked once per job, not per frame), that view transform of the sRGB display instead of the plain conversion.
    Converted in strips of rows over the cores (OCIO's CPU processors work pixel by pixel: the same values)."""
    processors = _network_processors(space, view)
    return row_strips(lambda rows: _network_strip(rows, processors), rgb, STRIP_PIXELS * 3)


def _network_strip(rgb: np.ndarray, processors: tuple) -> np.ndarray:
    """:func:`to_network` of some rows: a float32 copy through ``processors``, NaN to 0 and clipped to [0, 1]
    (which takes +inf to 1 and -inf to 0)."""
    out = np.array(rgb, np.float32, order="C")  # always a copy: the processors write in place
    for processor in processors:
        processor.applyRGB(out)
    return finite(out, 0, 1)
