"""``mattekit bench see-through``: how close ``remove --see-through`` comes to the true alpha of see-through subjects
on one shot over a plain backdrop, next to the default cut-out, and what it costs.

The shots are the first of :mod:`mattekit_bench.backdrop_scenes`' pairs (a sweep or a spot-lit backdrop), from its
two generators: ``photographed`` (generator B, real photos and mattes made see-through: the tuning set, where
:mod:`mattekit.matting.see_through`'s constants were chosen) and ``drawn`` (generator A, drawn bottles with thin
bodies, thicker walls, highlights, labels and caps: the report set). Both cut-outs run through the task itself
(``remove``, rgba as floats, the same model); the alpha's mean absolute error around the subject and the colours'
where the true alpha is over 0.1 are :func:`mattekit_bench.two_shots.scores`'. Per generator and kind (glass,
opaque): the mean errors and the ratio of the summed see-through errors to the default's. ``--timed``: the CPU time
(all threads) of both, run in turns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mattekit import runtime
from mattekit.options import model_choice
from mattekit.progress import shown
from mattekit.tasks import remove
from . import backdrop_scenes
from .turns import BLUE, checks, in_turns, over, write_sheet
from .two_shots import AROUND, OPAQUE, generators, scores, shot_options

TUNING, REPORT = "photographed", "drawn"


def add_parser(kinds) -> None:
    p = kinds.add_parser(
        "see-through",
        help="remove --see-through on one shot of see-through and opaque subjects with known alphas from two "
        "generators: alpha error against the default cut-out's, CPU time",
    )
    shot_options(p, "shot", 8, "segmentation model")
    p.add_argument("--timed", action="store_true", help="also time remove without and with --see-through, in turns")
    p.set_defaults(func=run)


def run(args) -> int:
    data, asked = Path(args.data), generators(args)
    models = {"model": runtime.ModelCache().get(model_choice(args.model, "segment"), args.device)}
    plain = remove.TASK.make_options({"model": args.model, "device": args.device})
    see = remove.TASK.make_options({"model": args.model, "device": args.device, "see_through": True})
    print(
        f"bench see-through on {data}: remove with and without --see-through (model {models['model'].name} on "
        f"{args.device}), rgba, one shot; alpha scored within {AROUND} px of the subject, colours (sRGB) where the "
        f"true alpha > {OPAQUE}; tuned on {TUNING}, reported on {REPORT}"
    )
    results, seconds, sheet = {}, [0.0, 0.0], []
    for generator in asked:
        shots = backdrop_scenes.scenes(generator, data, args.count)
        with shown(len(shots), "shot") as report:
            for index, shot in enumerate(shots):
                inputs = {"image": shot.first}
                runs = (lambda: remove.TASK.run(models, inputs, plain), lambda: remove.TASK.run(models, inputs, see))
                made = [got["result"] for got in in_turns(index, runs, seconds)]
                results.setdefault((generator, shot.kind), []).append(scores(made[0], shot) + scores(made[1], shot))
                if args.sheet and index % args.count < 2:
                    behind = checks(*shot.first.shape[:2])
                    sheet.append((shot.first, over(made[0], behind), over(made[1], behind), over(made[1], BLUE)))
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
        write_sheet(args.sheet, sheet)
    return 0
