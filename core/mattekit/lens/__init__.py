"""The lens: depth of field for one photo, a layered lens-blur renderer driven by depth or a subject mask.

The lens model: a thin lens focused at disparity ``d_f`` spreads a point at disparity ``d``
(inverse depth, 1 = nearest) over a disc whose radius is proportional to ``|d - d_f|`` (the
circle of confusion). The renderer works in linear light and splits the picture into layers
of equal circle of confusion, one pixel apart up to 6 px and three per doubling beyond. Each
layer is scattered with an aperture kernel (a disc, or a polygon for bladed apertures): the
sharp layers at full resolution and only in the strips where they occur, the wider ones at
a resolution where the kernel is 3-12 px in radius, so a 12 MP photo costs about as much as a
few full-resolution passes. Layers are gathered front to back: a layer hides what lies two or
more steps behind it (a sharp subject is never overrun by the blurred background behind it),
neighbouring steps add up (no seams on receding surfaces), and layers in front of the focal
plane are laid over the background, whose hidden part is filled in, so a blurred foreground
spills over what is behind it. Bright highlights are boosted before the blur and the boost is
undone after it, so small lights become bright bokeh balls while untouched pixels keep
their values.

:mod:`.layers` holds the layers (kernels, gathering, composing); :mod:`.renderer` the blur of a
photo and the choices behind it; :mod:`.disparity` the depth maps, from a depth network's prediction.
Images are sRGB float32 H x W x 3|4 in [0,1]; depth maps are disparities H x W in [0,1], 1 = nearest; radii are
in pixels.
"""

from .layers import aperture_kernel, layer_position, layer_radius
from .renderer import Focus, blur_radius, circle_of_confusion, focus_depth_at, parse_point, render, subject_depth

__all__ = [
    "aperture_kernel",
    "layer_position",
    "layer_radius",
    "blur_radius",
    "circle_of_confusion",
    "focus_depth_at",
    "Focus",
    "parse_point",
    "render",
    "subject_depth",
]
