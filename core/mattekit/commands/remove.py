"""``mattekit remove``: cut subjects out of photos (files, folders, globs)."""
from __future__ import annotations

from pathlib import Path

from .. import catalog, io, ops, runtime
from ..errors import MattekitError
from ..tasks import segment
from .files import each_image, each_image_pipelined, expand_inputs


def add_parser(sub) -> None:
    p = sub.add_parser("remove", help="remove the background of photos", description="Cut the subject out of each image.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("-o", "--output", help="output file (one input) or folder; default: beside each input as NAME_cutout.png")
    p.add_argument("--model", help="segmentation model (see `mattekit models list`); default: the catalog's")
    p.add_argument("--weights", help="use this weights file instead of the catalog's download")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--threads", type=int, help="CPU threads for inference (per inference worker for several images)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--mask", action="store_true", help="write the alpha mask (greyscale) instead of a cut-out")
    what.add_argument("--bg", metavar="COLOR|IMAGE", help="replace the background by a colour (#rrggbb, r,g,b, white) or an image")
    p.add_argument("--crop", nargs="?", type=float, const=0.05, metavar="MARGIN",
                   help="crop to the subject, with a margin (fraction of its size, default 0.05)")
    p.add_argument("--no-refine", action="store_true", help="plain bilinear upsampling of the mask (no edge-aware refinement)")
    p.add_argument("--no-matting", action="store_true",
                   help="use the segmentation mask as the alpha: no alpha matting of its edge, no colour decontamination")
    p.add_argument("--skip-existing", action="store_true", help="leave inputs whose output already exists")
    p.set_defaults(func=run)


def _load_background(value: str):
    """--bg as an RGB triple, or as an H x W x 3 image."""
    try:
        return ops.parse_colour(value)
    except ValueError:
        pass
    if not Path(value).is_file():
        raise MattekitError(f"--bg {value} is neither a colour (#rrggbb, r,g,b or a name) nor an image file.")
    return io.read_image(value).pixels[..., :3]


def _fit(background, shape):
    """A background image resized to ``shape``; a colour as it is."""
    if isinstance(background, tuple):
        return background
    return ops.resize(background, shape[0], shape[1], "area" if background.shape[0] > shape[0] else "bilinear")


def run(args) -> int:
    entry = catalog.load().get(args.model, "segment") if args.model else catalog.load().default("segment")
    jobs = expand_inputs(args.inputs)
    single = len(jobs) == 1
    if single:  # several images: threads per inference worker (mattekit.pipeline.plan)
        runtime.set_threads(args.threads)
    predictor = runtime.get_predictor(entry, device=args.device, weights_path=args.weights)  # load once, fail early
    options = segment.SegmentOptions(model=entry.name, device=args.device, weights=args.weights, refine=not args.no_refine,
                                     matting=not args.no_matting, decontaminate=not args.no_matting)
    background = _load_background(args.bg) if args.bg else None

    def result(picture, alpha):
        if args.mask:
            return segment.cutout(picture.pixels, alpha, output="mask", crop_margin=args.crop)
        colours = segment.foreground_colours(picture.pixels, alpha) if options.decontaminate else None
        if background is not None:
            bg = _fit(background, picture.pixels.shape[:2])
            return segment.cutout(picture.pixels, alpha, output="composite", background=bg, crop_margin=args.crop,
                                  colours=colours)
        return segment.cutout(picture.pixels, alpha, crop_margin=args.crop, colours=colours)

    def extension(source):  # cut-outs and masks are PNG; a composite may go to the JPEG the user named
        named = Path(args.output).suffix.lower() if args.output else ""
        return ".jpg" if background is not None and named in (".jpg", ".jpeg") else ".png"

    suffix = "_mask" if args.mask else "_cutout"
    if single:
        return each_image(args, suffix, lambda picture, _: result(picture, segment.predict_alpha(picture.pixels, options)),
                          extension, jobs)
    # many images: decoding, inference and encoding overlap (mattekit.pipeline)
    return each_image_pipelined(args, suffix, predictor,
                                lambda picture, mask: result(picture, segment.alpha_from_mask(picture.pixels, mask, options)),
                                extension, refine=options.refine, jobs=jobs)
