"""``mattekit bench see-through``: how close ``remove --see-through`` comes to the true alpha of see-through subjects
on one shot over a plain backdrop, next to the default cut-out, and what it costs.

The shots are the first of :mod:`mattekit.bench.backdrop_scenes`' pairs (a sweep or a spot-lit backdrop), from its
two generators: ``photographed`` (generator B, real photos and mattes made see-through: the tuning set, where
:mod:`mattekit.matting.see_through`'s constants were chosen) and ``drawn`` (generator A, drawn bottles with thin
bodies, thicker walls, highlights, labels and caps: the report set). Both cut-outs run through the task itself
(``remove``, rgba as floats, the same model); the alpha's mean absolute error around the subject and the colours'
where the true alpha is over 0.1 are :func:`mattekit.bench.two_shots.scores`'. Per generator and kind (glass,
opaque): the mean errors and the ratio of the summed see-through errors to the default's. ``--timed``: the CPU time
(all threads) of both, run in turns.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import io, runtime
from ..errors import InputError
from ..options import model_choice
from ..progress import shown
from ..tasks import remove
from . import backdrop_scenes
from .two_shots import AROUND, OPAQUE, scores

TUNING, REPORT = "photographed", "drawn"


def add_parser(kinds) -> None:
    p = kinds.add_parser(
        "see-through",
        help="remove --see-through on one shot of see-through and opaque subjects with known alphas from two "
        "generators: alpha error against the default cut-out's, CPU time",
    )
    p.add_argument("--data", required=True, help="the shared data folder: alphamatting/ (real photos and mattes)")
    p.add_argument(
        "--generator", choices=backdrop_scenes.GENERATORS + ("both",), default="both", help="which shots (default both)"
    )
    p.add_argument("--count", type=int, default=8, help="shots of each kind per generator (default 8)")
    p.add_argument("--model", default=None, help="segmentation model (default: the catalog's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--timed", action="store_true", help="also time remove without and with --see-through, in turns")
    p.add_argument("--sheet", help="write a PNG contact sheet of the first shots of each generator and kind here")
    p.set_defaults(func=run)


def _cpu(call):
    """(the CPU seconds of all threads ``call()`` took, its value)."""
    start = time.process_time()
    value = call()
    return time.process_time() - start, value


def run(args) -> int:
    data = Path(args.data)
    if not 1 <= args.count <= 14:
        raise InputError(f"--count takes 1 to 14, not {args.count}.")
    generators = backdrop_scenes.GENERATORS if args.generator == "both" else (args.generator,)
    models = {"model": runtime.ModelCache().get(model_choice(args.model, "segment"), args.device)}
    plain = remove.TASK.make_options({"model": args.model, "device": args.device})
    see = remove.TASK.make_options({"model": args.model, "device": args.device, "see_through": True})
    print(
        f"bench see-through on {data}: remove with and without --see-through (model {models['model'].name} on "
        f"{args.device}), rgba, one shot; alpha scored within {AROUND} px of the subject, colours (sRGB) where the "
        f"true alpha > {OPAQUE}; tuned on {TUNING}, reported on {REPORT}"
    )
    results, seconds, sheet = {}, [0.0, 0.0], []
    for generator in generators:
        shots = backdrop_scenes.scenes(generator, data, args.count)
        with shown(len(shots), "shot") as report:
            for index, shot in enumerate(shots):
                inputs, made = {"image": shot.first}, {}
                runs = [(0, plain), (1, see)] if index % 2 == 0 else [(1, see), (0, plain)]  # in turns
                for which, options in runs:
                    spent, made[which] = _cpu(lambda: remove.TASK.run(models, inputs, options)["result"])
                    seconds[which] += spent
                results.setdefault((generator, shot.kind), []).append(scores(made[0], shot) + scores(made[1], shot))
                if args.sheet and index % args.count < 2:
                    sheet.append((shot.first, made[0], made[1]))
                report(shot.name)
    print(f"{'generator':14}{'set':8}{'kind':8}{'n':>3}{'default':>9}{'see-through':>13}{'ratio':>7}{'colour':>8}")
    for (generator, kind), got in results.items():
        default, _, alpha, colour = np.array(got).T
        role = "tuning" if generator == TUNING else "report"
        print(
            f"{generator:14}{role:8}{kind:8}{len(got):3d}{default.mean():9.4f}{alpha.mean():13.4f}"
            f"{alpha.sum() / max(default.sum(), 1e-9):7.3f}{colour.mean():8.4f}"
        )
    if args.timed:
        print(
            f"CPU time (all threads) of remove: {seconds[0]:.1f} s with its defaults, {seconds[1]:.1f} s with "
            f"--see-through: {seconds[1] / seconds[0]:.2f}x (in turns)"
        )
    if args.sheet:
        io.write_image(args.sheet, contact_sheet(sheet))
        print(f"wrote {args.sheet}")
    return 0


def contact_sheet(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """One row per shot (the photo H x W x 3, the default and the see-through cut-outs H x W x 4): the photo, the
    default cut-out over a checkerboard, the see-through one over the checkerboard and over a coloured background;
    rows stacked. float32 H x 4W x 3."""
    h, w = rows[0][0].shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    checks = np.repeat((0.6 + 0.3 * (((ys // 16) + (xs // 16)) % 2))[..., None], 3, 2).astype(np.float32)
    blue = np.broadcast_to(np.float32([0.15, 0.35, 0.75]), (h, w, 3))
    cells = [
        [photo] + [rgba[..., :3] * rgba[..., 3:] + back * (1.0 - rgba[..., 3:]) for rgba, back in pairs]
        for photo, default, see in rows
        for pairs in [((default, checks), (see, checks), (see, blue))]
    ]
    return np.concatenate([np.concatenate(row, axis=1) for row in cells], axis=0).astype(np.float32)
