"""File input and output."""
from mattekit.io.images import Picture, linear_to_srgb, read_image, srgb_to_linear, write_image

__all__ = ["Picture", "read_image", "write_image", "srgb_to_linear", "linear_to_srgb"]
