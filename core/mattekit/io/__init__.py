"""File input and output: :mod:`.read` and :mod:`.write` by format (:mod:`.formats`; :mod:`.photo` decodes what
Pillow opens, :mod:`.png` and :mod:`.tiff` hold their own codecs, :mod:`.oiio` reads and writes EXR and DPX), the
in-memory :mod:`.picture`, plates: :mod:`.sequences` (with :mod:`.frame_patterns`, :mod:`.frame_ranges`
and :mod:`.movie`), their colour spaces (:mod:`.colour`), and where results go: :mod:`.outputs` (format, bit depth)
and :mod:`.naming` (names, and the outputs refused)."""

from mattekit.io.frame_patterns import FramePattern
from mattekit.io.frame_ranges import format_frames, parse_frames
from mattekit.io.movie import Movie
from mattekit.io.picture import Picture
from mattekit.io.read import read_image, read_layout, read_provenance
from mattekit.io.sequences import ImageSequence, MissingFramesError, open_plate, output_pattern, select_frames
from mattekit.io.write import write_image, write_layers
from mattekit.ops.pixels import linear_to_srgb, srgb_to_linear

__all__ = [
    "Picture",
    "read_image",
    "read_layout",
    "read_provenance",
    "write_image",
    "write_layers",
    "srgb_to_linear",
    "linear_to_srgb",
    "FramePattern",
    "ImageSequence",
    "Movie",
    "MissingFramesError",
    "open_plate",
    "select_frames",
    "output_pattern",
    "parse_frames",
    "format_frames",
]
