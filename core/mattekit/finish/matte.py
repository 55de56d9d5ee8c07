"""Matting's entry points: a soft alpha from a trimap, or from a subject mask's uncertain edge.

Images are sRGB float32 H x W x 3|4 in [0,1]; trimaps, masks and the alphas returned are H x W
(float32 in [0,1]). The settings are :class:`MattingOptions`; the solver's own parameters are
:class:`mattekit.matting.AlphaOptions`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from ..ops.pixels import grey_map
from ..errors import MattekitError
from ..matting import trimap as trimaps
from ..matting.alpha import AlphaOptions, estimate_alpha


@dataclass
class MattingOptions:
    """How hard the matting works.

    band: half-width in px of the unknown band of trimaps made from masks (None: from the image
    size, :func:`mattekit.matting.trimap.band_width`); iterations: solver iterations at the solve
    resolution (>= 1); extra_iterations: more iterations at full resolution (>= 0; slower, sharper).
    The ``matte`` task declares these fields for the front ends and passes them on with :meth:`of`.
    """

    band: int | None = None
    iterations: int = 20
    extra_iterations: int = 0

    @classmethod
    def of(cls, options) -> MattingOptions:
        """These fields, read from ``options`` (a task's options that declare them)."""
        return cls(**{f.name: getattr(options, f.name) for f in fields(cls)})

    def alpha_options(self) -> AlphaOptions:
        return AlphaOptions(iterations=self.iterations, refine=self.extra_iterations)


def alpha_from_trimap(image: np.ndarray, trimap: np.ndarray, options: MattingOptions | None = None) -> np.ndarray:
    """Alpha (H x W float32) of ``image`` for a trimap (0 / 0.5 / 1 floats, or a 0/128/255 image)."""
    options = options or MattingOptions()
    t = np.asarray(trimap)
    if t.dtype != np.float32 or t.ndim != 2:
        t = trimaps.normalise(t)
    return estimate_alpha(image[..., :3], t, options.alpha_options())


def matte_edge(
    image: np.ndarray,
    mask: np.ndarray,
    options: MattingOptions | None = None,
    extent: tuple[int, int] | None = None,
    solve: int | None = None,
    sample_rings: int = AlphaOptions.sample_rings,
    device=None,
) -> np.ndarray:
    """Alpha refined from a subject mask (probabilities, or a 0/255 image) by matting its uncertain edge:
    the trimap is made from the mask, and the mask stays in the estimate where colours say little.
    ``extent``: (height, width) of the photo ``image`` is a tile of; ``solve``: the solve's downscale (a power
    of two; None: from the extent); ``sample_rings``: the colour samples' reach; ``device``: where the solve runs
    (the finish's device: :func:`mattekit.finish.device.device_of`; None: here). See :class:`AlphaOptions`."""
    options = options or MattingOptions()
    m = np.clip(grey_map(mask), 0.0, 1.0)
    band = None if options.band is None else min(options.band, max(m.shape))  # wider covers the image anyway
    trimap = trimaps.from_mask(m, band=band)
    alpha_options = replace(
        options.alpha_options(), extent=extent, scale=solve, sample_rings=sample_rings, device=device
    )
    return estimate_alpha(image[..., :3], trimap, alpha_options, guess=m)


def check_edge(mask: np.ndarray) -> None:
    """A mask to refine needs both a sure-subject and a sure-background part; else one sentence saying why."""
    missing = [
        name
        for name, part in (("white (subject)", mask >= trimaps.FG_AT), ("black (background)", mask <= trimaps.BG_AT))
        if not part.any()
    ]
    if missing:
        raise MattekitError(
            f"The mask has no edge to refine: it needs both a white (subject) and a black "
            f"(background) part, and it has no {' or '.join(missing)} part."
        )
