"""``mattekit upscale``: super-resolution of photos (files, folders, globs), alpha and bit depth kept."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import io, runtime
from ..errors import MattekitError
from ..tasks import upscale as task
from .files import each_image, expand_inputs

def add_parser(sub) -> None:
    p = sub.add_parser("upscale", help="upscale images with a super-resolution network",
                       description="Upscale each image (x2, x4 or any factor or width). Alpha, greyscale and 16-bit "
                                   "depth are kept; large images are processed in blended tiles.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("-o", "--output", help="output file (one input) or folder; default: beside each input as NAME_x4.EXT")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--scale", type=float, help="output size / input size (default: the model's own factor, 2 or 4)")
    size.add_argument("--width", type=int, help="output width in pixels (height keeps the aspect ratio)")
    p.add_argument("--model", help="upscale model (see `mattekit models list`); default: realesr-general-x4v3")
    p.add_argument("--weights", help="use this weights file instead of the catalog's download")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--threads", type=int, help="CPU threads for inference")
    p.add_argument("--tile", type=int, help="tile side in input pixels (default: chosen from free memory; 0 = no tiling)")
    p.add_argument("--strength", type=float, default=1.0,
                   help="1 = network detail only (default), 0 = plain bicubic, between = a blend of the two")
    p.add_argument("--alpha", choices=task.ALPHA_METHODS, default="model",
                   help="how transparency is upscaled: model (sharp, default) or bicubic (soft, faster)")
    p.add_argument("--skip-existing", action="store_true", help="leave inputs whose output already exists")
    p.set_defaults(func=run)


def _suffix(args, scale: int) -> str:
    if args.width:
        return f"_w{args.width}"
    return f"_x{args.scale if args.scale is not None else scale:g}"


def _is_grey(pixels: np.ndarray) -> bool:
    return bool(np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 0], pixels[..., 2]))


def upscale_picture(picture: io.Picture, options: task.UpscaleOptions, target: Path, progress=None) -> np.ndarray:
    """The upscaled pixels of ``picture`` ready for ``target``'s format: grey stays grey (one
    channel, or RGBA when there is alpha or the target is EXR), everything else keeps its channels."""
    pixels = picture.pixels
    if _is_grey(pixels):
        grey = pixels[..., [0, 3]] if pixels.shape[-1] == 4 else pixels[..., 0]
        result = task.upscale(grey, options, progress=progress)
        if result.ndim == 3:  # grey + alpha -> RGBA (files hold no grey+alpha here)
            return np.concatenate([np.repeat(result[..., :1], 3, axis=2), result[..., 1:]], axis=2)
        return np.repeat(result[..., None], 3, axis=2) if target.suffix.lower() == ".exr" else result
    return task.upscale(pixels, options, progress=progress)


def run(args) -> int:
    single = len(expand_inputs(args.inputs)) == 1  # per-tile progress only for a single image
    runtime.set_threads(args.threads)
    options = task.UpscaleOptions(model=args.model, device=args.device, scale=args.scale, width=args.width,
                                  strength=args.strength, tile=args.tile, weights=args.weights, alpha=args.alpha)
    if not 0.0 <= args.strength <= 1.0:
        raise MattekitError(f"--strength must be between 0 and 1, not {args.strength:g}.")
    if args.scale is not None and not 0 < args.scale <= task.MAX_SCALE:
        raise MattekitError(f"--scale must be above 0 and at most {task.MAX_SCALE:g}, not {args.scale:g}.")
    if args.width is not None and args.width < 1:
        raise MattekitError(f"--width must be a positive number of pixels, not {args.width}.")
    if args.tile is not None and args.tile < 0:
        raise MattekitError(f"--tile must be 0 (no tiling) or a number of pixels, not {args.tile}.")
    entry = task.model_entry(options)
    runtime.get_predictor(entry, device=args.device, weights_path=args.weights)  # load once, fail early

    def process(picture, target):
        tiles = tqdm(unit="tile", desc=target.name, disable=None if single else True, leave=False, file=sys.stderr)

        def progress(done, total):
            tiles.total = total
            tiles.update(done - tiles.n)

        with tiles:
            return upscale_picture(picture, options, target, progress)

    return each_image(args, _suffix(args, entry.scale), process)
