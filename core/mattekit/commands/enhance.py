"""``mattekit enhance``: automatic white balance, exposure / local contrast and gentle denoise."""
from __future__ import annotations

from ..errors import MattekitError
from ..tasks import enhance as task
from .files import each_image


def add_parser(sub) -> None:
    p = sub.add_parser("enhance", help="automatic colour and tone correction of photos",
                       description="Correct each photo: white balance, exposure and local contrast, gentle denoise. "
                                   "Name steps to run only those (default: all three). Clipped highlights stay "
                                   "clipped and no other highlight is pushed into clipping.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("-o", "--output", help="output file (one input) or folder; default: beside each input as NAME_enhanced.EXT")
    p.add_argument("--wb", action="store_true", help="automatic white balance")
    p.add_argument("--contrast", action="store_true", help="exposure and local contrast (CLAHE on lightness, colours kept)")
    p.add_argument("--denoise", action="store_true", help="gentle edge-preserving denoise (chroma more than luma)")
    p.add_argument("--strength", type=float, default=1.0, metavar="S",
                   help="0 = unchanged, 1 = default correction (default), up to 2 = stronger")
    p.add_argument("--skip-existing", action="store_true", help="leave inputs whose output already exists")
    p.set_defaults(func=run)


def run(args) -> int:
    if not 0.0 <= args.strength <= 2.0:
        raise MattekitError(f"--strength must be between 0 and 2, not {args.strength:g}.")
    every = not (args.wb or args.contrast or args.denoise)
    options = task.EnhanceOptions(white_balance=every or args.wb, contrast=every or args.contrast,
                                  denoise=every or args.denoise, strength=args.strength)
    return each_image(args, "_enhanced", lambda picture, target: task.enhance(picture.pixels, options))
