"""``mattekit roto``: turn a plate sequence into a matte sequence (resumable, chunkable, Ray)."""

from __future__ import annotations

import sys

from ..errors import MattekitError
from ..io.frame_ranges import format_frames

EPILOG = """\
plates: name.####.exr, name.%04d.png, name.$F4.png, name.@.png, one frame (name.1001.exr),
a folder of numbered frames, or a movie (needs: pip install 'mattekit[video]').
frames: 1001-1100, 1001-1100x2, 1001,1005,1010-1020.

A re-run resumes: frames whose files match the job journal are kept, the rest are computed.
A render farm can split a shot with --frames START-END per task, or with
--chunk N --chunk-index I (I from 0; --print-chunks lists them). With temporal consistency a
frame's matte depends only on plate frames within --radius of it, so every split gives the
same files as one run. --ray [ADDRESS] runs the chunks on a Ray cluster (pip install 'mattekit[ray]').

Choosing the subject: hint it on one or more keyframes (plate frame numbers) with
--box FRAME:x0,y0,x1,y1, --point FRAME:x,y, --exclude FRAME:x,y (each repeatable) or
--hint-mask masks/####.png (every existing file is a keyframe's mask, white = subject). The hint
is carried to the other frames along the motion (forward from each keyframe, backward before the
first) and each keyframe re-locks it. A frame then depends on the frames since its keyframe, so
a split or resumed run first re-runs them (add keyframes to shorten that).

Tracking with SAM 2.1: --model sam2.1-hiera-tiny (-small, -base-plus, -large; --weights FILE) with
keyframe hints tracks the object with SAM's memory from each keyframe (backward before the first)
instead of the flow. Several objects: name each hint's object, e.g. --box 1001:10,10,80,90@dog
--box 1001:100,20,160,90@swan; each object writes its own sequence (matte_dog.####.png, or
{object} in the output pattern: mattes/{object}.####.png) and resumes on its own.
"""


def _declaration():
    """The registry's roto task (:mod:`mattekit.tasks.roto`): its options are :class:`mattekit.roto.RotoSpec`."""
    from ..tasks import registry

    return registry.sequences()["roto"]


def add_parser(sub) -> None:
    """``mattekit roto``: the job's options come from the registry's roto declaration (:class:`mattekit.roto.RotoSpec`);
    the flags that split and distribute the work (chunks, Ray) are the command's own."""
    import argparse

    from .tasks import add_option_flags, help_line

    task = _declaration()
    p = sub.add_parser(
        task.name,
        help=help_line(task.summary),
        description="Compute an alpha matte for every frame of a plate.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    declared = task.option_table()
    p.add_argument("plate", metavar="PLATE", help=declared["plate"].help)
    p.add_argument("-o", "--output", required=True, metavar="MATTE_PATTERN", help=declared["output"].help)
    add_option_flags(p, [o for name, o in declared.items() if name not in ("plate", "output")])
    p.add_argument("--chunk", type=int, default=0, metavar="N", help="split the frames into chunks of N")
    p.add_argument("--chunk-index", type=int, metavar="I", help="with --chunk: run only chunk I (from 0)")
    p.add_argument("--print-chunks", action="store_true", help="with --chunk: print each chunk's frame range and exit")
    p.add_argument(
        "--ray", nargs="?", const="", metavar="ADDRESS", help="run chunks on a Ray cluster (default: a local one)"
    )
    p.add_argument(
        "--ray-workers",
        type=int,
        metavar="N",
        help="Ray workers (default: one per GPU, else one per --threads CPUs; workers beyond the GPUs share them)",
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing but errors and warnings (no progress, no summary)"
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import roto
    from ..runtime import ModelCache, say_on_stderr

    _check_chunk_flags(args)
    from ..options import OptionError
    from .tasks import as_flags, option_values

    task = _declaration()
    values = option_values(args, task.declared) | {"plate": args.plate, "output": args.output}
    try:
        spec = task.make_options(values, host="cli")  # the one option check of the CLI, the worker and the API
    except OptionError as exc:
        raise MattekitError(as_flags(str(exc), task)) from None
    from ..progress import Display

    bar = Display(quiet=args.quiet)  # a bar on a terminal, a line per frame elsewhere
    try:
        if args.ray is not None:
            summary = roto.run_on_ray(
                spec,
                args.chunk or 25,
                address=args.ray or None,
                workers=args.ray_workers,
                progress=bar,
                say=say_on_stderr,
            )
            job = None
        else:
            job = roto.RotoJob(spec, ModelCache(say=say_on_stderr))
            if spec.model and spec.model.stands_for():  # an alias: say what it stands for and its licence
                print(f"mattekit: --model {spec.model} is {spec.model.stands_for()}", file=sys.stderr)
            if job.missing:
                print(
                    f"mattekit: warning: skipping {len(job.missing)} missing frame(s): {format_frames(job.missing)}",
                    file=sys.stderr,
                )
            chunks = job.chunks(args.chunk) if args.chunk > 0 else [job.frames]
            if args.print_chunks:
                for frames in chunks:
                    print(format_frames(frames).replace(" ", ""))
                return 0
            frames = [f for c in _chosen(chunks, args.chunk_index) for f in c]
            summary = job.run(frames, progress=bar)
    finally:
        bar.close()
    if args.quiet:
        return 0
    _say_done(summary, job, spec)
    return 0


def _check_chunk_flags(args) -> None:
    """A MattekitError sentence for chunk and Ray flags that do not go together or are out of range."""
    if args.chunk < 0 or (args.chunk_index is not None and args.chunk_index < 0):
        flag, value = ("--chunk", args.chunk) if args.chunk < 0 else ("--chunk-index", args.chunk_index)
        raise MattekitError(f"{flag} must be 0 or more, not {value}.")
    if args.ray_workers is not None and args.ray_workers < 1:
        raise MattekitError(f"--ray-workers must be 1 or more, not {args.ray_workers}.")
    if args.chunk_index is not None and args.chunk <= 0:
        raise MattekitError("--chunk-index needs --chunk N.")
    if args.print_chunks and args.chunk <= 0:
        raise MattekitError("--print-chunks needs --chunk N.")
    if args.ray is not None and args.chunk_index is not None:
        raise MattekitError("--ray runs every chunk; leave out --chunk-index.")


def _chosen(chunks: list[list[int]], index: int | None) -> list[list[int]]:
    """The chunk ``index`` (--chunk-index) of ``chunks`` alone, or all of them for None; out of range: a
    MattekitError sentence."""
    if index is None:
        return chunks
    if not 0 <= index < len(chunks):
        raise MattekitError(
            f"--chunk-index {index} is out of range: there are {len(chunks)} chunks (0-{len(chunks) - 1})."
        )
    return [chunks[index]]


def _say_done(summary, job, spec) -> None:
    """The run's one line on standard error: frames, where the mattes went, computed and skipped, seconds."""
    rate = f" ({len(summary.computed) / summary.seconds:.2f} frames/s)" if summary.computed and summary.seconds else ""
    target = job.alpha_out if job is not None else spec.output
    if job is not None and job.parts:
        target = ", ".join(str(part.alpha_out) for part in job.parts)
    print(
        f"mattekit: {len(summary.frames)} frames -> {target}: {len(summary.computed)} computed, "
        f"{len(summary.skipped)} already done, {summary.seconds:.1f} s{rate}"
        f"{' ' + summary.placement if summary.placement else ''}",
        file=sys.stderr,
    )
