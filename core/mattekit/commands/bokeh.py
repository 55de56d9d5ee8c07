"""``mattekit bokeh``: DSLR-like depth of field for photos (files, folders, globs)."""
from __future__ import annotations

from .. import catalog, runtime
from ..errors import MattekitError, WeightsError
from ..tasks import bokeh as task
from .files import each_image

def add_parser(sub) -> None:
    p = sub.add_parser("bokeh", help="shallow depth of field (lens blur) from one photo",
                       description="Blur each photo like a wide-open lens: sharp where it is focused, lens-blurred "
                                   "in front and behind, with bokeh balls on highlights. Depth comes from a depth "
                                   "model (Depth Anything V2), or with --mask-only from the subject mask alone.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("-o", "--output", help="output file (one input) or folder; default: beside each input as NAME_bokeh.EXT")
    focus = p.add_mutually_exclusive_group()
    focus.add_argument("--focus", metavar="X,Y", help="focus on this point: pixels (640,400) or percent (50%%,40%%); "
                                                      "default: the subject found by segmentation")
    focus.add_argument("--focus-depth", type=float, metavar="D", help="focus at this depth, 0 (farthest) .. 1 (nearest)")
    blur = p.add_mutually_exclusive_group()
    blur.add_argument("--strength", type=float, default=1.0, metavar="S",
                      help="blur strength: 1 (default) blurs the farthest background by about 2%% of the long side")
    blur.add_argument("--f-number", type=float, metavar="N", help="blur like this f-number (f/2.8 = strength 1, f/1.4 = 2)")
    p.add_argument("--mask-only", action="store_true", help="no depth model: keep the subject sharp, blur everything else")
    p.add_argument("--highlights", type=float, default=2.0, metavar="GAIN",
                   help="extra brightness for highlights before blurring (bokeh balls); 0 = none, default 2")
    p.add_argument("--blades", type=int, default=0, metavar="N", help="aperture blades (polygonal bokeh), 0 = round (default)")
    p.add_argument("--rotation", type=float, default=0.0, metavar="DEG", help="turn the aperture polygon by this angle")
    p.add_argument("--depth-model", help="depth model (see `mattekit models list --task depth`)")
    p.add_argument("--depth-weights", metavar="FILE", help="use this depth weights file instead of the catalog's download")
    p.add_argument("--model", help="segmentation model for the subject (default: the catalog's)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--threads", type=int, help="CPU threads for inference")
    p.add_argument("--skip-existing", action="store_true", help="leave inputs whose output already exists")
    p.set_defaults(func=run)


def parse_point(text: str, width: int, height: int) -> tuple[float, float]:
    """'X,Y' in pixels or 'X%,Y%' in percent of the size -> pixel coordinates (x, y)."""
    parts = [v.strip() for v in text.split(",")]
    if len(parts) != 2:
        raise MattekitError(f"--focus {text} is not a point; write X,Y in pixels (640,400) or percent (50%,40%).")
    out = []
    for value, size in zip(parts, (width, height)):
        try:
            v = float(value[:-1]) / 100 * (size - 1) if value.endswith("%") else float(value)
        except ValueError:
            raise MattekitError(f"--focus {text} is not a point; write X,Y in pixels (640,400) or percent (50%,40%).") from None
        if not 0 <= v <= size - 1:
            raise MattekitError(f"--focus {text} lies outside the {width} x {height} image.")
        out.append(v)
    return out[0], out[1]


def run(args) -> int:
    strength = 2.8 / args.f_number if args.f_number else args.strength
    if args.f_number is not None and args.f_number <= 0:
        raise MattekitError(f"--f-number must be positive, not {args.f_number:g}.")
    if not 0 <= strength <= 20:
        raise MattekitError(f"--strength must be between 0 and 20, not {strength:g}.")
    if args.focus_depth is not None and not 0 <= args.focus_depth <= 1:
        raise MattekitError(f"--focus-depth must be between 0 (farthest) and 1 (nearest), not {args.focus_depth:g}.")
    if args.blades and not 3 <= args.blades <= 16:
        raise MattekitError(f"--blades must be 0 (round) or between 3 and 16, not {args.blades}.")
    if args.highlights < 0:
        raise MattekitError(f"--highlights must be 0 or more, not {args.highlights:g}.")
    runtime.set_threads(args.threads)
    cat = catalog.load()
    needs_subject = args.mask_only or (args.focus is None and args.focus_depth is None)
    if not args.mask_only:  # load once, fail early, with a way out when the depth model is missing
        entry = cat.get(args.depth_model, "depth") if args.depth_model else cat.default("depth")
        try:
            runtime.get_predictor(entry, device=args.device, weights_path=args.depth_weights)
        except WeightsError as exc:
            raise WeightsError(f"{str(exc).rstrip('.')}; or use --mask-only to blur without a depth model.") from None
    if needs_subject:
        seg = cat.get(args.model, "segment") if args.model else cat.default("segment")
        runtime.get_predictor(seg, device=args.device)

    def process(picture, target):
        h, w = picture.pixels.shape[:2]
        options = task.BokehOptions(
            focus=parse_point(args.focus, w, h) if args.focus else None, focus_depth=args.focus_depth,
            strength=strength, highlight_gain=args.highlights, blades=args.blades, rotation=args.rotation,
            mask_only=args.mask_only, depth_model=args.depth_model, depth_weights=args.depth_weights,
            segment_model=args.model, device=args.device)
        return task.bokeh(picture.pixels, options)

    return each_image(args, "_bokeh", process)
