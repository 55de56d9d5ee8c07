"""Stand-ins for gi.repository.Gimp, Gegl, GLib, GObject, GimpUi, Gtk: small, in-memory, numpy-backed.

They model what the mattekit plug-in relies on, with GIMP 3.0's semantics where they matter:
drawables in layer coordinates with offsets, babl format strings ("R'G'B'A u8", "Y u16",
"R'G'B' float"), a shadow buffer merged *through the selection*, layer masks applied into alpha,
the selection as an image-sized channel, choice arguments, progress calls recorded.
"""

from . import Gegl, Gimp, GimpUi, GLib, GObject, Gtk  # noqa: F401
