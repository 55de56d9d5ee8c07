"""File input and output."""
from mattekit.io.images import Picture, linear_to_srgb, read_image, read_provenance, srgb_to_linear, write_image

__all__ = ["Picture", "read_image", "read_provenance", "write_image", "srgb_to_linear", "linear_to_srgb"]

from mattekit.io.sequences import (FramePattern, ImageSequence, MissingFramesError, Movie, format_frames,  # noqa: E402
                                   open_plate, output_pattern, parse_frames, select_frames)

__all__ += ["FramePattern", "ImageSequence", "Movie", "MissingFramesError", "open_plate", "select_frames",
            "output_pattern", "parse_frames", "format_frames"]
