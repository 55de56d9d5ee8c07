"""Learning-free alpha matting: trimaps, alpha in the unknown band, foreground colours.

- :mod:`.entry` - the entry points: alpha from a trimap or a mask (:class:`MattingOptions`);
- :mod:`.trimap` - trimaps from masks or users' images, expansion of known regions;
- :mod:`.alpha` - alpha estimation (closed-form energy + colour-sampling data term, solved at
  reduced resolution and carried to full resolution through the local colour model);
- :mod:`.evidence` - the data term's evidence: colour sampling, pure colours, background texture;
- :mod:`.colour_linear` - the local colour-linear model that carries a reduced-resolution alpha to full size;
- :mod:`.foreground` - foreground colour estimation (decontamination) under a soft alpha;
- :mod:`.laplacian` and :mod:`.solver` - the matting Laplacian as a pixel stencil and the
  multigrid-preconditioned conjugate-gradient solver behind the alpha;
- :mod:`.cutout` - what a user gets from an image and its alpha (cut-out, alpha, colours, composite),
  for every task that ends in a cut-out.

Arrays are float32, sRGB images H x W x 3 in [0,1], alphas and trimaps H x W.
"""
from .alpha import AlphaOptions, estimate_alpha
from .entry import MattingOptions, alpha_from_trimap, matte_edge
from .foreground import estimate_foreground
from .trimap import from_mask as trimap_from_mask, normalise as normalise_trimap

__all__ = ["AlphaOptions", "estimate_alpha", "MattingOptions", "matte_edge", "alpha_from_trimap", "estimate_foreground", "trimap_from_mask", "normalise_trimap"]
