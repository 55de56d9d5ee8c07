"""``mattekit roto``: turn a plate sequence into a matte sequence (resumable, chunkable, Ray)."""
from __future__ import annotations

import sys

from tqdm import tqdm

from ..errors import MattekitError
from ..io.sequences import format_frames

EPILOG = """\
plates: name.####.exr, name.%04d.png, name.$F4.png, name.@.png, one frame (name.1001.exr),
a folder of numbered frames, or a movie (needs: pip install 'mattekit[video]').
frames: 1001-1100, 1001-1100x2, 1001,1005,1010-1020.

A re-run resumes: frames whose files match the job journal are kept, the rest are computed.
A render farm can split a shot with --frames START-END per task, or with
--chunk N --chunk-index I (I from 0; --print-chunks lists them). With temporal consistency a
frame's matte depends only on plate frames within --radius of it, so every split gives the
same files as one run. --ray [ADDRESS] runs the chunks on a Ray cluster (pip install 'mattekit[ray]').
"""


def add_parser(sub) -> None:
    import argparse

    p = sub.add_parser("roto", help="matte a frame sequence or movie (rotoscoping)",
                       description="Compute an alpha matte for every frame of a plate.", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("plate", metavar="PLATE", help="frame pattern, numbered frame, folder of frames or movie file")
    p.add_argument("-o", "--output", required=True, metavar="MATTE_PATTERN",
                   help="matte pattern such as out/matte.####.png (PNG/TIFF 16-bit, EXR half), or a folder")
    p.add_argument("--frames", help="frame range; default: every frame of the plate (gaps are reported)")
    p.add_argument("--rgba", metavar="PATTERN", help="also write the cut-out (EXR premultiplied, PNG/TIFF straight alpha)")
    p.add_argument("--fg", metavar="PATTERN", help="also write the decontaminated foreground plate with its alpha")
    p.add_argument("--model", help="segmentation model (see `mattekit models list`); default: the catalog's")
    p.add_argument("--weights", help="use this weights file instead of the catalog's download")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--threads", type=int, help="CPU threads for inference")
    p.add_argument("--no-temporal", action="store_true", help="per-frame mattes, no temporal consistency")
    p.add_argument("--radius", type=int, help="temporal window: frames on each side per pass (default 4; 0 = off)")
    p.add_argument("--no-refine", action="store_true", help="plain bilinear upsampling of the matte")
    p.add_argument("--depth", type=int, default=16, choices=(8, 16, 32), help="matte bits: 8/16 PNG-TIFF, 16 (half)/32 EXR")
    p.add_argument("--skip-missing", action="store_true", help="process the frames that exist when some are missing")
    p.add_argument("--overwrite", action="store_true", help="recompute every frame, even finished ones or other settings")
    p.add_argument("--chunk", type=int, default=0, metavar="N", help="split the frames into chunks of N")
    p.add_argument("--chunk-index", type=int, metavar="I", help="with --chunk: run only chunk I (from 0)")
    p.add_argument("--print-chunks", action="store_true", help="with --chunk: print each chunk's frame range and exit")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS", help="run chunks on a Ray cluster (default: a local one)")
    p.add_argument("--ray-workers", type=int, metavar="N", help="Ray workers (default: one per GPU, else per CPU)")
    p.set_defaults(func=run)


class _Bar:
    """A tqdm bar fed by jobs.Progress events."""

    def __init__(self, quiet: bool):
        self.bar = None
        self.quiet = quiet

    def __call__(self, event) -> None:
        if self.bar is None:
            self.bar = tqdm(total=event.total, unit="frame", file=sys.stderr, disable=self.quiet,
                            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}] {postfix}")
        self.bar.n = event.done
        eta = "" if event.eta is None else f", ETA {event.eta:.0f} s"
        self.bar.set_postfix_str(f"{event.fps:.2f} frames/s{eta}", refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args) -> int:
    from .. import jobs

    if args.chunk_index is not None and args.chunk <= 0:
        raise MattekitError("--chunk-index needs --chunk N.")
    if args.print_chunks and args.chunk <= 0:
        raise MattekitError("--print-chunks needs --chunk N.")
    if args.ray is not None and args.chunk_index is not None:
        raise MattekitError("--ray runs every chunk; leave out --chunk-index.")
    if args.radius is not None and args.radius < 0:
        raise MattekitError("--radius must be 0 or more.")
    spec = jobs.RotoSpec(plate=args.plate, output=args.output, frames=args.frames, rgba=args.rgba, fg=args.fg,
                         model=args.model, weights=args.weights, device=args.device, threads=args.threads,
                         refine=not args.no_refine, temporal=not args.no_temporal, radius=args.radius,
                         bit_depth=args.depth, skip_missing=args.skip_missing, overwrite=args.overwrite)
    bar = _Bar(quiet=False)
    try:
        if args.ray is not None:
            summary = jobs.run_on_ray(spec, args.chunk or 25, address=args.ray or None, workers=args.ray_workers,
                                      progress=bar)
            job = None
        else:
            job = jobs.RotoJob(spec)
            if job.missing:
                print(f"mattekit: warning: skipping {len(job.missing)} missing frame(s): {format_frames(job.missing)}",
                      file=sys.stderr)
            chunks = job.chunks(args.chunk) if args.chunk > 0 else [job.frames]
            if args.print_chunks:
                for frames in chunks:
                    print(format_frames(frames).replace(" ", ""))
                return 0
            if args.chunk_index is not None:
                if not 0 <= args.chunk_index < len(chunks):
                    raise MattekitError(f"--chunk-index {args.chunk_index} is out of range: there are {len(chunks)} chunks (0-{len(chunks) - 1}).")
                chunks = [chunks[args.chunk_index]]
            frames = [f for c in chunks for f in c]
            summary = job.run(frames, progress=bar)
    finally:
        bar.close()
    rate = f" ({len(summary.computed) / summary.seconds:.2f} frames/s)" if summary.computed and summary.seconds else ""
    target = job.alpha_out if job is not None else spec.output
    print(f"mattekit: {len(summary.frames)} frames -> {target}: {len(summary.computed)} computed, "
          f"{len(summary.skipped)} already done, {summary.seconds:.1f} s{rate}", file=sys.stderr)
    return 0
