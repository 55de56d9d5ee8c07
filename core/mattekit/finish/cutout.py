"""What a user gets from an image and its alpha: a cut-out, the alpha, the colours, or a composite.

One implementation for every task that ends in a cut-out (``remove``, ``matte``) and every front
end (CLI, worker, GIMP, Blender, Python API), which read these choices from the cut-out options
(:class:`mattekit.tasks.common.CutoutOptions`, declared with the tasks). Images are sRGB float32 H x W x 3|4 in
[0,1] (straight alpha), alphas H x W in [0,1].
"""

from __future__ import annotations

import cv2
import numpy as np

from ..ops.compositing import blurred_background, composite, drop_shadow, parse_colour
from ..ops.pixels import STRIP_VALUES, quantise, unit_float
from ..ops.regions import bounding_box, each_row_strip
from ..ops.resizing import fit_cover
from ..matting.foreground import estimate_foreground

KEEP = "keep"  # the shadow option's value for the photo's own shadow (:mod:`mattekit.matting.shadow`)
NOTE = "note"  # :func:`outputs` may hold one sentence for the user here: why an output is empty (no port: no array)


def result_kind(options, backdrop_given: bool = False) -> str:
    """The result the cut-out ``options`` (:class:`mattekit.tasks.common.CutoutOptions`) ask for: ``options.result``,
    else composite when a background is given, else rgba."""
    if options.result is not None:
        return options.result
    return "composite" if options.background is not None or backdrop_given else "rgba"


def background_for(
    image: np.ndarray, alpha: np.ndarray, background: tuple | None, backdrop: np.ndarray | None
) -> np.ndarray:
    """The H x W x 3 background of a composite: ``backdrop`` scaled to cover, a blurred copy of the
    photo's own background (``blur[:SIGMA]``), or a flat colour (default white)."""
    h, w = alpha.shape
    if backdrop is not None:
        return fit_cover(backdrop[..., :3], h, w)
    kind, value = (background.kind, background.value) if background is not None else ("colour", parse_colour("white"))
    if kind == "blur":
        sigma = max(2.0, 0.01 * max(h, w)) if value is None else value
        return blurred_background(image[..., :3], alpha, sigma)
    return np.broadcast_to(np.asarray(value, np.float32), (h, w, 3))


def rgba(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """H x W x 4 straight RGBA of ``image``'s colours (H x W x 3|4) and ``alpha`` (H x W float32 in
    [0,1]): float32, or the dtype of a uint8/uint16 image with the alpha rounded as
    :func:`mattekit.ops.pixels.quantise` rounds. Made in strips of rows over the cores (a 50 MP
    cut-out: 0.25-0.65 s of one core's time)."""
    out = np.empty(alpha.shape + (4,), image.dtype if image.dtype.kind in "ui" else np.float32)
    colours = np.ascontiguousarray(image, dtype=out.dtype)

    def strip(part: slice) -> None:
        cv2.mixChannels([colours[part]], [out[part]], [0, 0, 1, 1, 2, 2])  # (3x faster than numpy's strided copy)
        if out.dtype == np.float32:
            out[part, :, 3] = alpha[part]
        else:
            quantise(alpha[part], 16 if out.dtype == np.uint16 else 8, out=out[part, :, 3])

    each_row_strip(strip, alpha.shape[0], alpha.shape[1], STRIP_VALUES)
    return out


def photo_shadow(image: np.ndarray, alpha: np.ndarray, options):
    """The shadow the subject of ``alpha`` (H x W) casts in ``image`` (H x W x 3|4, float or uint8/uint16) as a
    :class:`mattekit.matting.shadow.Found` (its matte H x W float32, 0 none .. 1 black, and the note on it:
    :func:`mattekit.matting.shadow.found`) when ``options`` ask for it (shadow :data:`KEEP`, or result shadow), else
    None (nothing computed)."""
    if options.shadow != KEEP and options.result != "shadow":
        return None
    from ..matting.shadow import found

    if image.shape[-1] == 4:
        alpha = alpha * unit_float(image[..., 3])
    return found(image, np.clip(np.asarray(alpha, np.float32), 0.0, 1.0))


def with_shadow(colours: np.ndarray, alpha: np.ndarray, shadow: np.ndarray) -> np.ndarray:
    """H x W x 4 float32 straight RGBA of the subject (``colours`` H x W x 3, ``alpha`` H x W) with its ``shadow``
    (H x W) as black at partial alpha beside it: over any background B it gives ``colours * alpha + B * (1 - alpha)
    * (1 - shadow)``, the background darkened as the photo's was."""
    alpha = np.asarray(alpha, np.float32)
    total = alpha + (1.0 - alpha) * np.asarray(shadow, np.float32)
    out = np.empty(alpha.shape + (4,), np.float32)
    out[..., :3] = colours[..., :3] * (alpha / np.maximum(total, 1e-6))[..., None]
    out[..., 3] = total
    return out


def outputs(image: np.ndarray, alpha: np.ndarray, options, **given) -> dict:
    """A cut-out task's outputs: {"result": :func:`cut_out`'s (``given``: its ``backdrop``, ``device`` and
    ``colours``)}, and with shadow :data:`KEEP` {"shadow": the photo's own shadow matte (H x W, :func:`photo_shadow`)}
    too, for the hosts that lay it as its own layer, and where the shadow has a note (why it is empty) {NOTE: that
    sentence}."""
    cast = photo_shadow(image, alpha, options)
    shadow = None if cast is None else cast.matte
    found = {"result": cut_out(image, alpha, options, shadow=shadow, **given)}
    if options.shadow == KEEP:
        found["shadow"] = shadow
    if cast is not None and cast.note:
        found[NOTE] = cast.note
    return found


def cut_out(
    image: np.ndarray,
    alpha: np.ndarray,
    options,
    *,
    backdrop: np.ndarray | None = None,
    device=None,
    shadow: np.ndarray | None = None,
    colours: np.ndarray | None = None,
) -> np.ndarray:
    """The result ``options`` ask for from ``image`` (H x W x 3|4) and its subject ``alpha`` (H x W): the inputs
    made ready (:func:`cutout_inputs`), the subject's colours (:func:`subject_colours`), then :func:`assemble`.

    A transparent input stays transparent where it was (its alpha multiplies the matte). Colours
    are decontaminated (:func:`mattekit.matting.estimate_foreground`) unless ``options.decontaminate``
    is off. Returns H x W (alpha, shadow), H x W x 3 (foreground, composite) or H x W x 4 (rgba), float32,
    cropped to the subject when ``options.crop`` is set. A uint8/uint16 ``image`` (0..255 / 0..65535)
    gives an rgba result of its own dtype, made in place (the alpha and the decontaminated colours
    rounded as :func:`mattekit.ops.pixels.quantise` rounds): no full-size float copy of the photo or the result.
    ``device``: the finish's device (:func:`mattekit.finish.device.device_of`; None: here), where the colours
    are decontaminated. ``shadow``: the photo's own shadow (H x W, :func:`photo_shadow`) where ``options`` keep it
    (shadow :data:`KEEP`): an rgba result carries it as black at partial alpha (:func:`with_shadow`), a composite's
    background is darkened by it; it is the result shadow itself. The alpha and foreground results never hold it.
    ``colours``: the subject's own (H x W x 3 sRGB float32), used instead of decontaminating the photo's.
    """
    kind = result_kind(options, backdrop is not None)
    if kind == "shadow":
        return shadow if shadow is not None else photo_shadow(image, alpha, options).matte
    keep = options.shadow == KEEP and shadow is not None and kind in ("rgba", "composite")
    whole = kind == "rgba" and not keep  # the colours are made in place in the cut-out: no second full-size copy
    if colours is not None:
        image, alpha = cutout_inputs(image, alpha)
        colours = rgba(colours, alpha) if whole else colours
    else:
        image, alpha = cutout_inputs(image, alpha, keep_integers=whole)
        colours = None if kind == "alpha" else subject_colours(image, alpha, options.decontaminate, device, whole)
    return assemble(image, alpha, colours, options, kind, backdrop=backdrop, shadow=shadow if keep else None)


def cutout_inputs(image: np.ndarray, alpha: np.ndarray, keep_integers: bool = False) -> tuple:
    """(``image`` as float32 [0, 1], unless ``keep_integers`` keeps a uint8/uint16 one; ``alpha`` as float32 in
    [0, 1], times ``image``'s own alpha where it has one (H x W x 4): a transparent input stays transparent)."""
    if image.dtype.kind in "ui" and not keep_integers:
        image = unit_float(image)
    if image.shape[-1] == 4:
        alpha = alpha * unit_float(image[..., 3])
    alpha = np.asarray(alpha, np.float32)
    if alpha.size and not (alpha.min() >= 0.0 and alpha.max() <= 1.0):  # (a copy only when it is needed)
        alpha = np.clip(alpha, 0.0, 1.0)
    return image, alpha


def subject_colours(
    image: np.ndarray, alpha: np.ndarray, decontaminate: bool = True, device=None, whole: bool = False
) -> np.ndarray:
    """The subject's colours under ``alpha`` (H x W float32 [0, 1]): ``image``'s (H x W x 3|4) decontaminated
    (:func:`mattekit.matting.estimate_foreground`, on ``device``: the finish's device, None here) unless
    ``decontaminate`` is off, then the photo's own; H x W x 3. ``whole``: the H x W x 4 straight RGBA cut-out itself
    (:func:`rgba`, of ``image``'s dtype), its colours decontaminated in place, the array made after the colours'
    coarser levels."""
    if whole:
        made = []
        if decontaminate:
            estimate_foreground(image, alpha, out=lambda: made.append(rgba(image, alpha)) or made[0], device=device)
        return made[0] if made else rgba(image, alpha)
    return estimate_foreground(image, alpha, device=device) if decontaminate else image[..., :3]


def assemble(
    image: np.ndarray,
    alpha: np.ndarray,
    colours: np.ndarray | None,
    options,
    kind: str,
    *,
    backdrop: np.ndarray | None = None,
    shadow: np.ndarray | None = None,
) -> np.ndarray:
    """The ``kind`` of result (:func:`result_kind`, not "shadow") from the subject's ``colours`` (H x W x 3, or the
    cut-out itself for rgba: :func:`subject_colours`; None for alpha) and ``alpha`` (H x W float32 [0, 1]) of
    ``image`` (float32 [0, 1], whose background a blur composite blurs): the alpha, the cut-out (with ``shadow``,
    H x W, as black at partial alpha: :func:`with_shadow`), the colours as float32, or a composite over
    :func:`background_for`'s background (darkened by ``shadow``, or under ``options``' drop shadow); cropped to the
    subject (and ``shadow``) when ``options.crop`` is set."""
    if kind == "alpha":
        result = alpha
    elif kind == "rgba":
        result = colours if shadow is None else with_shadow(colours, alpha, shadow)
    elif kind == "foreground":
        result = np.ascontiguousarray(colours, dtype=np.float32)
    else:
        behind = background_for(image, alpha, options.background, backdrop)
        cast = shadow
        if isinstance(options.shadow, tuple):
            cast = drop_shadow(alpha, options.shadow.offset, options.shadow.blur, options.shadow.opacity)
        result = composite(colours, alpha, behind, shadow=cast).astype(np.float32, copy=False)
    if options.crop is not None:
        box = bounding_box(alpha if shadow is None else np.maximum(alpha, shadow), margin=options.crop)
        if box is not None:
            top, left, bottom, right = box
            result = result[top:bottom, left:right]
    return result
