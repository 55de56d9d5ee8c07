"""What a user gets from an image and its alpha: a cut-out, the alpha, the colours, or a composite.

One implementation for every task that ends in a cut-out (``remove``, ``matte``) and every front
end (CLI, worker, GIMP, Blender, Python API), which read these choices from :class:`CutoutOptions`, declared
once here. Images are sRGB float32 H x W x 3|4 in [0,1] (straight alpha), alphas H x W in [0,1].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from ..ops.compositing import blurred_background, composite, drop_shadow, parse_colour
from ..ops.pixels import quantise, unit_float
from ..ops.regions import bounding_box
from ..ops.resizing import fit_cover
from ..errors import MattekitError
from .foreground import estimate_foreground
from ..options import option

RESULTS = ("rgba", "alpha", "foreground", "composite")


@dataclass
class CutoutOptions:
    """The cut-out asked for, declared for every front end (:func:`mattekit.options.option`); the options of the
    tasks that end in a cut-out (``remove``, ``matte``) inherit these fields and are passed here as they are.

    result: rgba | alpha | foreground | composite (None: rgba, or composite when a background is given);
    background: a colour or blur[:SIGMA]; shadow: DY,DX,BLUR,OPACITY; crop: crop to the subject's box grown by
    this fraction of its size; decontaminate: the subject's own colours in soft edges.
    """

    result: str | None = option(
        None, "what to produce: rgba (cut-out, straight alpha), alpha (greyscale matte), foreground (the "
        "subject's colours, no alpha) or composite (over --background / --backdrop); default rgba, or "
        "composite when a background is given", choices=RESULTS)
    background: Background | None = option(
        None, "composite background: a colour (#rrggbb, r,g,b or a name) or blur[:SIGMA] (the photo's own "
        "background, blurred); implies result composite", parse="mattekit.matting.cutout:parse_background")
    shadow: Shadow | None = option(None, "with a composite: a drop shadow DY,DX,BLUR,OPACITY under the subject "
                                "(the flag alone: 12,12,8,0.5)", bare="12,12,8,0.5", parse="mattekit.matting.cutout:parse_shadow")
    crop: float | None = option(None, "crop to the subject's box grown by this fraction of its size (e.g. 0.05)",
                                minimum=0.0, maximum=10.0, bare=0.05)
    decontaminate: bool = option(True, "give partially transparent pixels the subject's own colours "
                                 "(no old background in hair and soft edges)")


def result_kind(options: CutoutOptions, backdrop_given: bool = False) -> str:
    """The result asked for: ``options.result``, else composite when a background is given, else rgba."""
    if options.result is not None:
        return options.result
    return "composite" if options.background is not None or backdrop_given else "rgba"


def suffix_for(options: CutoutOptions, plain: str) -> str:
    """The CLI's output name suffix: _alpha for an alpha result, _fg for colours, else ``plain``
    (the same for every task that makes a cut-out)."""
    return {"alpha": "_alpha", "foreground": "_fg"}.get(result_kind(options), plain)


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


def parse_shadow(given) -> Shadow:
    """'DY,DX,BLUR,OPACITY' (or the four numbers) -> the :class:`Shadow`; a MattekitError sentence when malformed."""
    text = given if isinstance(given, str) else ",".join(map(str, np.ravel(given)))
    try:
        shadow = Shadow(*(float(v) for v in text.split(",")))
    except (TypeError, ValueError):
        raise MattekitError(f"The shadow {text!r} is not DY,DX,BLUR,OPACITY, e.g. 12,12,8,0.5.") from None
    if not (all(np.isfinite(shadow)) and 0 <= shadow.blur <= 200 and 0 <= shadow.opacity <= 1
            and abs(shadow.dy) <= 10000 and abs(shadow.dx) <= 10000):
        raise MattekitError(f"The shadow {text!r} is out of range: blur 0-200, opacity 0-1, offsets within 10000 px.")
    return shadow


def background_for(image: np.ndarray, alpha: np.ndarray, background: Background | None,
                   backdrop: np.ndarray | None) -> np.ndarray:
    """The H x W x 3 background of a composite: ``backdrop`` scaled to cover, a blurred copy of the
    photo's own background (``blur[:SIGMA]``), or a flat colour (default white)."""
    h, w = alpha.shape
    if backdrop is not None:
        return fit_cover(backdrop[..., :3], h, w)
    kind, value, _ = background or parse_background("white")
    if kind == "blur":
        sigma = max(2.0, 0.01 * max(h, w)) if value is None else value
        return blurred_background(image[..., :3], alpha, sigma)
    return np.broadcast_to(np.asarray(value, np.float32), (h, w, 3))


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
        raise MattekitError(f"The background {text!r} is neither a colour (#rrggbb, r,g,b or a name) nor blur[:SIGMA].") from None


def rgba(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """H x W x 4 straight RGBA of ``image``'s colours (H x W x 3|4) and ``alpha`` (H x W float32 in
    [0,1]): float32, or the dtype of a uint8/uint16 image with the alpha rounded as
    :func:`mattekit.ops.pixels.quantise` rounds."""
    out = np.empty(alpha.shape + (4,), image.dtype if image.dtype.kind in "ui" else np.float32)
    colours = np.ascontiguousarray(image, dtype=out.dtype)
    cv2.mixChannels([colours], [out], [0, 0, 1, 1, 2, 2])  # (3x faster than numpy's strided copy)
    if out.dtype == np.float32:
        out[..., 3] = alpha
    else:
        quantise(alpha, 16 if out.dtype == np.uint16 else 8, out=out[..., 3])
    return out


def assemble(image: np.ndarray, alpha: np.ndarray, options: CutoutOptions, *,
             backdrop: np.ndarray | None = None, device=None) -> np.ndarray:
    """The result ``options`` ask for from ``image`` (H x W x 3|4) and its subject ``alpha`` (H x W).

    A transparent input stays transparent where it was (its alpha multiplies the matte). Colours
    are decontaminated (:func:`mattekit.matting.estimate_foreground`) unless ``options.decontaminate``
    is off. Returns H x W (alpha), H x W x 3 (foreground, composite) or H x W x 4 (rgba), float32,
    cropped to the subject when ``options.crop`` is set. A uint8/uint16 ``image`` (0..255 / 0..65535)
    gives an rgba result of its own dtype, made in place (the alpha and the decontaminated colours
    rounded as :func:`mattekit.ops.pixels.quantise` rounds): no full-size float copy of the photo or the result.
    ``device``: the model's CUDA device (:func:`mattekit.subject.masks.device_of`; None: here), where the colours
    are decontaminated.
    """
    kind = result_kind(options, backdrop is not None)
    if image.dtype.kind in "ui" and kind != "rgba":
        image = unit_float(image)
    if image.shape[-1] == 4:
        alpha = alpha * unit_float(image[..., 3])
    alpha = np.asarray(alpha, np.float32)
    if alpha.size and not (alpha.min() >= 0.0 and alpha.max() <= 1.0):  # (a copy only when it is needed)
        alpha = np.clip(alpha, 0.0, 1.0)
    if kind == "alpha":
        result = alpha
    elif kind == "rgba":  # the colours are made in place in the result: no second full-size copy
        made = []
        if options.decontaminate:  # (the result is made after the colours' coarser levels)
            estimate_foreground(image, alpha, out=lambda: made.append(rgba(image, alpha)) or made[0], device=device)
        result = made[0] if made else rgba(image, alpha)
    else:
        if options.decontaminate:
            colours = estimate_foreground(image, alpha, device=device)
        else:
            colours = image[..., :3]
        if kind == "foreground":
            result = np.ascontiguousarray(colours, dtype=np.float32)
        else:
            behind = background_for(image, alpha, options.background, backdrop)
            shadow = None
            if options.shadow:
                shadow = drop_shadow(alpha, options.shadow.offset, options.shadow.blur, options.shadow.opacity)
            result = composite(colours, alpha, behind, shadow=shadow).astype(np.float32, copy=False)
    if options.crop is not None:
        box = bounding_box(alpha, margin=options.crop)
        if box is not None:
            top, left, bottom, right = box
            result = result[top:bottom, left:right]
    return result
