"""``mattekit matte``: a soft alpha and clean colours from a trimap, a mask, or a model."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import catalog, io, ops, runtime
from ..errors import InputError, MattekitError
from ..tasks import matte, segment
from .files import IMAGE_SUFFIXES, each_image

BLUR = "blur"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "matte", help="alpha matting: soft alpha and decontaminated colours from a trimap or a mask",
        description="Refine the alpha of each image by alpha matting. The unknown region comes from a trimap "
                    "(--trimap: black = background, white = foreground, grey = unknown) or from a mask's soft "
                    "edge (--mask); with neither, from a segmentation model's mask, or straight from a matting "
                    "model such as modnet-portrait (--model). Writes an RGBA cut-out with the subject's own "
                    "colours (straight alpha; premultiplied in EXR) unless told otherwise.")
    p.add_argument("inputs", nargs="+", metavar="IMAGE", help="image files, folders or glob patterns")
    given = p.add_mutually_exclusive_group()
    given.add_argument("--trimap", metavar="T", help="trimap image (0/128/255), or a folder of trimaps named like the images")
    given.add_argument("--mask", metavar="M", help="mask image (soft or hard), or a folder of masks named like the images")
    p.add_argument("-o", "--output", help="output file (one input) or folder; default: beside each input as NAME_matte.png")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--alpha-only", action="store_true", help="write the alpha alone (greyscale)")
    what.add_argument("--fg-only", action="store_true", help="write the decontaminated foreground colours alone (RGB, no alpha)")
    what.add_argument("--bg", metavar="COLOR|IMAGE|blur[:SIGMA]",
                      help="composite over a colour, an image (scaled to cover) or a blurred copy of the photo's background")
    p.add_argument("--shadow", nargs="?", const="12,12,8,0.5", metavar="DY,DX,BLUR,OPACITY",
                   help="with --bg: a drop shadow under the subject (default 12,12,8,0.5)")
    p.add_argument("--no-decontaminate", action="store_true", help="keep the photo's colours in the cut-out")
    p.add_argument("--band", type=int, help="with --mask or a model's mask: unknown band half-width in pixels (default: from the image size)")
    p.add_argument("--refine", type=int, default=0, metavar="N", help="extra solver iterations at full resolution (slower, slightly sharper)")
    p.add_argument("--model", help="without --trimap/--mask: a segmentation model (its mask is matted) or a matting model "
                                   "(modnet-portrait, non-commercial); default: the catalog's segmentation model")
    p.add_argument("--weights", help="use this weights file instead of the catalog's download")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--threads", type=int, help="CPU threads for inference")
    p.add_argument("--skip-existing", action="store_true", help="leave inputs whose output already exists")
    p.set_defaults(func=run)


def _companion(given: str, source: Path, what: str) -> Path:
    """The trimap/mask file for ``source``: the file itself, or the same-named image in a folder."""
    path = Path(given)
    if path.is_dir():
        for candidate in sorted(path.iterdir()):
            if candidate.stem == source.stem and candidate.suffix.lower() in IMAGE_SUFFIXES:
                return candidate
        raise InputError(f"The {what} folder {given} has no image named {source.stem}.*.")
    if not path.is_file():
        raise InputError(f"The {what} {given} does not exist.")
    return path


def _read_plane(path: Path, shape: tuple[int, int], what: str) -> np.ndarray:
    """First channel of an image, float32 H x W in [0,1], checked against the photo's size."""
    pixels = io.read_image(path).pixels
    if pixels.shape[:2] != shape:
        raise InputError(f"The {what} {path} is {pixels.shape[1]}x{pixels.shape[0]} but the image is "
                         f"{shape[1]}x{shape[0]}; they must have the same size.")
    return pixels[..., 0]


def _background_maker(value: str | None):
    """--bg as a function (pixels, alpha) -> H x W x 3 background, or None."""
    if value is None:
        return None
    if value == BLUR or value.startswith(BLUR + ":"):
        try:
            sigma = float(value.split(":", 1)[1]) if ":" in value else None
        except ValueError:
            raise MattekitError(f"--bg {value}: the blur radius must be a number, e.g. blur:15.") from None

        def blurred(pixels, alpha):
            s = sigma if sigma is not None else max(2.0, 0.01 * max(alpha.shape))
            return ops.blurred_background(pixels, alpha, s)

        return blurred
    try:
        colour = ops.parse_colour(value)
        return lambda pixels, alpha: np.broadcast_to(np.asarray(colour, np.float32), pixels[..., :3].shape)
    except ValueError:
        pass
    if not Path(value).is_file():
        raise MattekitError(f"--bg {value} is neither a colour (#rrggbb, r,g,b or a name), 'blur', nor an image file.")
    image = io.read_image(value).pixels[..., :3]
    return lambda pixels, alpha: ops.fit_cover(image, *alpha.shape)


def _shadow(value: str | None):
    if value is None:
        return None
    try:
        dy, dx, blur, opacity = (float(v) for v in value.split(","))
    except ValueError:
        raise MattekitError(f"--shadow {value}: expected DY,DX,BLUR,OPACITY, e.g. 12,12,8,0.5.") from None
    return lambda alpha: ops.drop_shadow(alpha, (int(round(dy)), int(round(dx))), blur, opacity)


def run(args) -> int:
    options = matte.MatteOptions(device=args.device, weights=args.weights, band=args.band, refine=max(0, args.refine))
    seg_options = None
    if not (args.trimap or args.mask):
        cat = catalog.load()
        entry = cat.get(args.model) if args.model else cat.default("segment")
        if entry.task not in ("segment", "matte"):
            raise MattekitError(f"Model '{entry.name}' is for {entry.task}, not for matting; use a segment or matte model.")
        runtime.set_threads(args.threads)
        runtime.get_predictor(entry, device=args.device, weights_path=args.weights)  # load once, fail early
        if entry.task == "matte":
            options.model = entry.name
        else:
            seg_options = segment.SegmentOptions(model=entry.name, device=args.device, weights=args.weights)
    elif args.model:
        raise MattekitError("--model is for images without --trimap or --mask.")
    if args.shadow and not args.bg:
        raise MattekitError("--shadow needs --bg (the shadow falls on the new background).")
    background = _background_maker(args.bg)
    shadow = _shadow(args.shadow)

    def alpha_of(picture) -> np.ndarray:
        pixels, source, shape = picture.pixels, Path(picture.source), picture.pixels.shape[:2]
        if args.trimap:
            return matte.alpha_from_trimap(pixels, _read_plane(_companion(args.trimap, source, "trimap"), shape, "trimap"), options)
        if args.mask:
            return matte.alpha_from_mask(pixels, _read_plane(_companion(args.mask, source, "mask"), shape, "mask"), options)
        if options.model:
            return matte.predict_alpha(pixels, options)
        return matte.alpha_from_mask(pixels, segment.predict_mask(pixels, seg_options), options)

    def process(picture, target):
        alpha = alpha_of(picture)
        if picture.pixels.shape[-1] == 4:  # a transparent input stays transparent where it was
            alpha = alpha * picture.pixels[..., 3]
        if args.alpha_only:
            return alpha
        colours = picture.pixels[..., :3] if args.no_decontaminate else matte.foreground(picture.pixels, alpha)
        if args.fg_only:
            return colours
        if background is not None:
            behind = background(picture.pixels, alpha)
            return ops.composite(colours, alpha, behind, shadow=shadow(alpha) if shadow else None)
        return np.concatenate([colours, alpha[..., None]], axis=-1)

    def extension(source):  # PNG, or EXR (premultiplied, float) for EXR plates; -o FILE names its own format
        return ".exr" if source.suffix.lower() == ".exr" else ".png"

    return each_image(args, "_alpha" if args.alpha_only else "_fg" if args.fg_only else "_matte", process, extension)
