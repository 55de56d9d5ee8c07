"""Option groups several tasks declare: the model a task runs (:class:`ModelOptions`), the texts and checks of
the device and weights options that roto declares too, and the cut-out asked of the tasks that end in one
(:class:`CutoutOptions`: its values :class:`Shadow` and :class:`Background`, their parsers and the output names it
gives); the cut-out itself is made by :mod:`mattekit.finish.cutout`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import MattekitError
from ..finish.cutout import KEEP, result_kind
from ..ops.compositing import parse_colour
from ..options import option

DEVICE_HELP = "auto (default), cpu, cuda, cuda:N or mps"
DEVICE_PARSE, WEIGHTS_PARSE = "mattekit.machine:check_device", "mattekit.weights.added:given_file"


def weights_option(what: str = ""):
    """An option naming a weights file that replaces the catalog's download of the ``what`` ("depth ") model: a
    file the run reads, checked by :func:`mattekit.weights.added.given_file`; the CLI's and the API's only."""
    words = f"use this {what}weights file instead of the catalog's download"
    return option(None, words, path=True, parse=WEIGHTS_PARSE, hosts=("cli", "api"))


@dataclass
class ModelOptions:
    """The model a task runs: its name, a weights file instead of the catalog's, the device.

    A task redeclares ``model`` with its own help and catalog task (the field keeps its place). The
    options of a task inherit this group first, so fields come in the order of the bases from the
    last one: ``RemoveOptions(ModelOptions, CutoutOptions)`` has the cut-out fields, then these.
    """

    model: str | None = option(None, "model (see `mattekit models list`); default: the catalog's")
    weights: Path | None = weights_option()
    device: str = option("auto", DEVICE_HELP, parse=DEVICE_PARSE)


KEEP_PERSONAL_HELP = (
    "keep all the input's metadata; by default only what describes the picture and its rights is kept "
    "(title, description, copyright, licence, colour profile, dpi, camera and settings, dates): no location, "
    "names, serial numbers, ids nor comments"
)


@dataclass
class FileOptions:
    """What a file written from a file carries besides its pixels: the CLI's flags and the API's keywords of a file
    run (the worker answers pixels, which carry no metadata; roto declares ``keep_personal`` itself)."""

    keep_personal: bool = option(False, KEEP_PERSONAL_HELP, hosts=("cli", "api"))
    provenance: bool = option(
        True,
        "write the provenance record (mattekit version, task, model and its sha256, changed options) into the files",
        hosts=("cli", "api"),
    )
    overwrite: bool = option(
        False,
        "replace an existing output file that mattekit did not write (one it wrote, "
        "which carries its provenance record, is replaced either way)",
        hosts=("cli", "api"),
    )


RESULTS = ("rgba", "alpha", "foreground", "composite", "shadow")


@dataclass
class CutoutOptions:
    """The cut-out asked for, declared for every front end (:func:`mattekit.options.option`); the options of the
    tasks that end in a cut-out (``remove``, ``matte``) inherit these fields and are passed here as they are.

    result: rgba | alpha | foreground | composite | shadow (None: rgba, or composite when a background is given);
    background: a colour or blur[:SIGMA]; shadow: :data:`KEEP` (the photo's own shadow) or a drop shadow
    DY,DX,BLUR,OPACITY; crop: crop to the subject's box grown by this fraction of its size; decontaminate: the
    subject's own colours in soft edges.
    """

    result: str | None = option(
        None,
        "what to produce: rgba (cut-out, straight alpha), alpha (greyscale matte), foreground (the "
        "subject's colours, no alpha), composite (over --background / --backdrop) or shadow (the shadow the "
        "subject casts in the photo, greyscale: 0 none, 1 black); default rgba, or composite when a background "
        "is given",
        choices=RESULTS,
    )
    background: Background | None = option(
        None,
        "composite background: a colour (#rrggbb, r,g,b or a name) or blur[:SIGMA] (the photo's own "
        "background, blurred); implies result composite",
        parse="mattekit.tasks.common:parse_background",
    )
    shadow: Shadow | str | None = option(
        None,
        "keep: the shadow the subject casts in the photo, kept (black at partial alpha beside the cut-out; on "
        "a composite's background); or with a composite a drop shadow DY,DX,BLUR,OPACITY under the subject (the "
        "flag alone: 12,12,8,0.5)",
        bare="12,12,8,0.5",
        parse="mattekit.tasks.common:parse_shadow",
        keywords=(KEEP,),
    )
    crop: float | None = option(
        None,
        "crop to the subject's box grown by this fraction of its size (e.g. 0.05)",
        minimum=0.0,
        maximum=10.0,
        bare=0.05,
    )
    decontaminate: bool = option(
        True, "give partially transparent pixels the subject's own colours (no old background in hair and soft edges)"
    )


def suffix_for(options: CutoutOptions, plain: str) -> str:
    """The CLI's output name suffix: _alpha for an alpha result, _fg for colours, else ``plain``
    (the same for every task that makes a cut-out)."""
    return {"alpha": "_alpha", "foreground": "_fg", "shadow": "_shadow"}.get(result_kind(options), plain)


def format_for(options: CutoutOptions, source_suffix: str, named: str) -> str:
    """The CLI's output format: a composite may go to the JPEG the user named; EXR plates stay EXR
    (premultiplied, float); everything else is PNG."""
    if result_kind(options) == "composite" and named in (".jpg", ".jpeg"):
        return ".jpg"
    return ".exr" if source_suffix == ".exr" else ".png"


class Shadow(NamedTuple):
    """A drop shadow: offsets ``dy``, ``dx`` in pixels, ``blur`` sigma in pixels, ``opacity`` in [0, 1]; prints as its
    text form DY,DX,BLUR,OPACITY."""

    dy: float
    dx: float
    blur: float
    opacity: float

    @property
    def offset(self) -> tuple[int, int]:
        """(dy, dx) rounded to whole pixels."""
        return int(round(self.dy)), int(round(self.dx))

    def __str__(self) -> str:
        return ",".join(f"{v:g}" for v in self)


class Background(NamedTuple):
    """A composite's background: ``kind`` "blur" (``value``: sigma in pixels, None for the default) or "colour"
    (``value``: (r, g, b) in [0, 1]); ``text``: as the user wrote it, which it prints as."""

    kind: str
    value: object
    text: str

    def __str__(self) -> str:
        return self.text


def parse_shadow(given) -> Shadow | str:
    """'keep' -> :data:`KEEP`; 'DY,DX,BLUR,OPACITY' (or the four numbers) -> the :class:`Shadow`; a MattekitError
    sentence when malformed."""
    text = given if isinstance(given, str) else ",".join(map(str, np.ravel(given)))
    if text.strip().lower() == KEEP:
        return KEEP
    try:
        shadow = Shadow(*(float(v) for v in text.split(",")))
    except (TypeError, ValueError):
        raise MattekitError(f"The shadow {text!r} is neither keep nor DY,DX,BLUR,OPACITY, e.g. 12,12,8,0.5.") from None
    if not (
        all(np.isfinite(shadow))
        and 0 <= shadow.blur <= 200
        and 0 <= shadow.opacity <= 1
        and abs(shadow.dy) <= 10000
        and abs(shadow.dx) <= 10000
    ):
        raise MattekitError(f"The shadow {text!r} is out of range: blur 0-200, opacity 0-1, offsets within 10000 px.")
    return shadow


def parse_background(given) -> Background:
    """A ``background`` text (a colour: #rrggbb, r,g,b or a name; or blur[:SIGMA]), or a colour's (r, g, b) in
    0..255 -> the :class:`Background`; a MattekitError sentence naming the text when it is neither."""
    if isinstance(given, Background):
        return given
    text = (given if isinstance(given, str) else ",".join(map(str, np.ravel(given)))).strip()
    if text == "blur" or text.startswith("blur:"):
        try:
            sigma = float(text.split(":", 1)[1]) if ":" in text else None
        except ValueError:
            raise MattekitError(f"The background {text!r}: the blur radius must be a number, e.g. blur:15.") from None
        if sigma is not None and not 0 < sigma <= 500:
            raise MattekitError(f"The background {text!r}: the blur radius must be above 0 and at most 500.")
        return Background("blur", sigma, text)
    try:
        return Background("colour", parse_colour(text), text)
    except ValueError:
        raise MattekitError(
            f"The background {text!r} is neither a colour (#rrggbb, r,g,b or a name) nor blur[:SIGMA]."
        ) from None
