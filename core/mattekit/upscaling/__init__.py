"""Upscaling: super-resolution through a catalog SR network (:mod:`.superres`), run tile by tile with feathered,
overlapping windows (:mod:`.tiling`) so that any image fits the memory there is."""
