"""A see-through subject on one shot over a plain backdrop (``remove --see-through``): alpha from how much of the
backdrop's light comes through, the colours from the rest.

The photo is ``C = a F + (1 - a) B`` in linear light, with ``B`` the backdrop's light behind the subject (fitted
outside it and continued under it: :func:`mattekit.matting.backdrop.backdrop_behind`). One shot gives three
equations for four unknowns, so the subject's own light ``F`` is assumed to lie between :data:`DARKEST` and 1 in
every channel (clear glass sends little light of its own; a highlight is white), and the alpha is the least that
keeps it there (:func:`least_alpha`): a pixel darker than the backdrop is the backdrop dimmed, one brighter is a
highlight. What comes out nearly opaque anyway (a label, a cap, a dark print: they do not look like the backdrop)
is made opaque (:data:`OPAQUE`, its gaps closed: :data:`GROW`), and so is a bright highlight (:data:`SHINE`). The
model's alpha stays the outline: the see-through alpha is never above it. Where the backdrop is not plain (its fit's
confidence below :data:`PLAIN`) the model's alpha is kept.

The limit: dark clear glass and grey opaque plastic send the same light, so the user says the subject is
see-through; a grey opaque subject given as see-through comes out partly transparent.

Images sRGB H x W x 3|4 (float in [0, 1] or uint8/uint16), alphas H x W float32 in [0, 1], colours H x W x 3
float32 sRGB (straight).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..ops.pixels import linear_to_srgb, srgb_to_linear, unit_float
from .backdrop import backdrop_behind

DARKEST = 0.0  # the darkest channel of a see-through subject's own light, linear (clear glass: none of its own)
OPAQUE = (0.5, 0.7)  # an alpha above the first is pulled towards 1, reaching it at the second (labels, caps)
SHINE = (0.3, 0.6)  # a highlight's alpha above the first is pulled towards 1, reaching it at the second
PLAIN = (0.1, 0.4)  # the backdrop fit's confidence from which the see-through alpha counts, and counts whole
GROW = 0.012  # an opaque part's gaps up to twice this fraction of the diagonal are closed (a label's light print)


def least_alpha(photo: np.ndarray, backdrop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The least alpha for which ``photo = a F + (1 - a) backdrop`` (both H x W x 3, linear) has a subject light
    ``F`` between :data:`DARKEST` and 1 in every channel, as (dimmed, brighter), each H x W float32 in [0, 1]: the
    largest over the channels of ``(B - C) / (B - DARKEST)`` (darker than the backdrop) and of ``(C - B) / (1 - B)``
    (brighter: a highlight); the alpha is the larger of the two."""
    dimmed = brighter = np.zeros(photo.shape[:2], np.float32)  # (channel by channel: a strided max is slow)
    for channel in range(photo.shape[2]):
        c, b = photo[..., channel], backdrop[..., channel]
        dimmed = np.maximum(dimmed, (b - c) / np.maximum(b - DARKEST, 1e-3))
        brighter = np.maximum(brighter, (c - b) / np.maximum(1.0 - b, 1e-3))
    return np.minimum(dimmed, 1.0, dtype=np.float32), np.minimum(brighter, 1.0, dtype=np.float32)


def with_opaque_parts(dimmed: np.ndarray, brighter: np.ndarray) -> np.ndarray:
    """The alpha (H x W float32) of :func:`least_alpha`'s parts, the larger of the two, pulled towards 1 where it
    is dimmed past :data:`OPAQUE` (the parts that do not look like the backdrop: a label, a cap; the pull closed
    over gaps of twice :data:`GROW` of the diagonal, the light print between their dark) or brightened past
    :data:`SHINE` (a highlight: nearly white, opaque-ish); from the first value of each, whole at the second."""
    pull = ramp(dimmed, OPAQUE)
    reach = int(round(GROW * np.hypot(*dimmed.shape)))
    if reach > 0:
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2)
        pull = cv2.morphologyEx(pull, cv2.MORPH_CLOSE, disc)
    pull = np.maximum(pull, ramp(brighter, SHINE))
    alpha = np.maximum(dimmed, brighter)
    return (alpha + (1.0 - alpha) * pull).astype(np.float32)


def ramp(values: np.ndarray, span: tuple[float, float]) -> np.ndarray:
    """0 below ``span``'s first value, 1 above its second, linear between (H x W float32)."""
    low, high = span
    return np.clip((values - low) / (high - low), 0.0, 1.0).astype(np.float32)


def subject_light(photo: np.ndarray, backdrop: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The subject's own colours, ``(C - (1 - a) B) / a`` (H x W x 3 linear, clipped to [0, 1]) of ``photo`` over
    ``backdrop`` (H x W x 3 linear) at ``alpha`` (H x W); the photo's own where the alpha is nearly 0."""
    a = alpha[..., None]
    light = (photo - (1.0 - a) * backdrop) / np.maximum(a, 1e-3)
    return np.clip(np.where(a > 1e-3, light, photo), 0.0, 1.0).astype(np.float32)


def see_through(image: np.ndarray, alpha: np.ndarray, marked: np.ndarray | None = None) -> tuple:
    """(alpha H x W float32, colours H x W x 3 float32 sRGB) of a see-through subject in ``image`` (H x W x 3|4
    sRGB) whose outline is the model's ``alpha`` (H x W): the least alpha over the backdrop behind
    (:func:`least_alpha`, :func:`with_opaque_parts`) within the outline, where ``marked`` (H x W in [0, 1], None:
    everywhere) says the subject is see-through, faded to the model's alpha as the backdrop's confidence falls;
    the colours from the rest (:func:`subject_light`)."""
    alpha = np.clip(np.asarray(alpha, np.float32), 0.0, 1.0)
    photo = srgb_to_linear(unit_float(np.asarray(image)[..., :3]).astype(np.float32))
    behind = backdrop_behind(photo, alpha)
    backdrop = behind.light
    found = np.minimum(alpha, with_opaque_parts(*least_alpha(photo, backdrop)))
    share = ramp(np.float32(behind.confidence), PLAIN)
    if marked is not None:
        share = share * np.clip(np.asarray(marked, np.float32), 0.0, 1.0)
    found = (alpha + share * (found - alpha)).astype(np.float32)
    return found, linear_to_srgb(subject_light(photo, backdrop, found))
