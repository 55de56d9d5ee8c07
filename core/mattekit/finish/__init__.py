"""The finish: what turns a network's answer into the cut-out's alpha and colours.

- :mod:`.refine` - the prediction as the photo's mask, moved onto the photo's edges where the model is unsure;
- :mod:`.matte` - matting's entry points: an alpha from a trimap, or from a mask's uncertain edge (one window);
- :mod:`.edge` - a photo's mask matted at its uncertain edge, tile by tile, at a working scale;
- :mod:`.cutout` - what a user gets from the photo and its alpha: decontaminated colours, a cut-out, a composite;
- :mod:`.device` - where the finish runs: the model's GPU for a large photo, else the CPU cores.

A module's twin on a model's device (a GPU, torch operations) is named after it with ``_device``
(:mod:`.refine_device` for :mod:`.refine`). The learning-free solvers they call are :mod:`mattekit.matting`'s.
"""
