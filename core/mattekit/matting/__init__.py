"""Learning-free alpha matting: trimaps, alpha in the unknown band, foreground colours.

- :mod:`.trimap` - trimaps from masks or users' images, expansion of known regions;
- :mod:`.alpha` - alpha estimation (closed-form energy + colour-sampling data term, solved at
  reduced resolution and carried to full resolution through the local colour model);
- :mod:`.evidence` - the data term's evidence: colour sampling, pure colours, background texture;
- :mod:`.colour_linear` - the local colour-linear model that carries a reduced-resolution alpha to full size;
- :mod:`.foreground` - foreground colour estimation (decontamination) under a soft alpha;
- :mod:`.laplacian` and :mod:`.solver` - the matting Laplacian as a pixel stencil and the
  multigrid-preconditioned conjugate-gradient solver behind the alpha;
- :mod:`.shadow` - the shadow a subject casts in the photo, estimated beside its alpha.

Their entry points for a trimap or a network's mask, and the cut-out, are :mod:`mattekit.finish`'s.

Arrays are float32, sRGB images H x W x 3 in [0,1], alphas and trimaps H x W.
"""

from .alpha import AlphaOptions, estimate_alpha
from .foreground import estimate_foreground
from .trimap import from_mask as trimap_from_mask, normalise as normalise_trimap

__all__ = ["AlphaOptions", "estimate_alpha", "estimate_foreground", "trimap_from_mask", "normalise_trimap"]
