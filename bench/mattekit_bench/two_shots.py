"""``mattekit bench two-shots``: how exact ``remove --second-shot`` is on pairs of shots with known alphas and
colours (:mod:`mattekit_bench.backdrop_scenes`), and what it costs next to the default cut-out.

The pairs come from two generators that differ in how see-through subjects, backdrops and the camera's movement
are made: ``drawn`` (generator A, where the backdrop fit's degree was chosen: the tuning set) and ``photographed``
(generator B, real photos and mattes: the report set). Scored through the task itself (``remove`` with the second
shot, rgba as floats): the alpha's mean absolute error around the subject (within :data:`AROUND` px of where its
true alpha is over 0.01), the colours' mean absolute error (sRGB, over the channels) where the true alpha is over
0.1; per generator and kind (glass, opaque), the mean over pairs and the worst pair. ``--timed``: the CPU time (all
threads) of ``remove`` with its defaults (the segmentation model) and with the second shot, run in turns.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mattekit import runtime
from mattekit.errors import InputError
from mattekit.options import model_choice
from mattekit.progress import shown
from mattekit.tasks import remove
from . import backdrop_scenes
from .turns import BLUE, checks, in_turns, over, write_sheet

AROUND = 16  # px around the subject where the alpha is scored
OPAQUE = 0.1  # true alpha over this: where the colours are scored


def add_parser(kinds) -> None:
    p = kinds.add_parser(
        "two-shots",
        help="remove --second-shot on pairs of shots with known alphas and colours from two generators: "
        "alpha and colour errors, CPU time against the defaults",
    )
    shot_options(p, "pair", 14, "the defaults' segmentation model for --timed")
    p.add_argument("--timed", action="store_true", help="also time remove with its defaults and with the second shot")
    p.set_defaults(func=run)


def shot_options(p, unit: str, count: int, model: str) -> None:
    """The options of a bench on :mod:`mattekit_bench.backdrop_scenes`' shots, one ``unit`` of them (pair, shot) a
    scene, ``count`` of each kind by default, the ``model`` option's help."""
    p.add_argument("--data", required=True, help="the shared data folder: alphamatting/ (real photos and mattes)")
    p.add_argument(
        "--generator",
        choices=backdrop_scenes.GENERATORS + ("both",),
        default="both",
        help=f"which {unit}s (default both)",
    )
    p.add_argument("--count", type=int, default=count, help=f"{unit}s of each kind per generator (default {count})")
    p.add_argument("--model", default=None, help=f"{model} (default: the catalog's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--sheet", help=f"write a PNG contact sheet of the first {unit}s of each generator and kind here")


def generators(args) -> tuple[str, ...]:
    """The generators ``args`` (:func:`shot_options`') ask for; InputError where --count is not 1 to 14."""
    if not 1 <= args.count <= 14:
        raise InputError(f"--count takes 1 to 14, not {args.count}.")
    return backdrop_scenes.GENERATORS if args.generator == "both" else (args.generator,)


def scores(rgba: np.ndarray, pair: backdrop_scenes.ShotPair) -> tuple[float, float]:
    """(alpha error around the subject, colour error where its true alpha > :data:`OPAQUE`) of a float RGBA
    cut-out (H x W x 4) against ``pair``'s truth."""
    grown = cv2.dilate((pair.alpha > 0.01).astype(np.uint8), np.ones((2 * AROUND + 1,) * 2, np.uint8)) > 0
    solid = pair.alpha > OPAQUE
    return (
        float(np.abs(rgba[..., 3] - pair.alpha)[grown].mean()),
        float(np.abs(rgba[..., :3] - pair.colours)[solid].mean()),
    )


def run(args) -> int:
    data, asked = Path(args.data), generators(args)
    two = remove.TASK.make_options({})
    models, plain = {}, None
    if args.timed:
        models = {"model": runtime.ModelCache().get(model_choice(args.model, "segment"), args.device)}
        plain = remove.TASK.make_options({"model": args.model, "device": args.device})
    print(
        f"bench two-shots on {data}: remove --second-shot, rgba; alpha scored within {AROUND} px of the subject, "
        f"colours (sRGB) where the true alpha > {OPAQUE}; tuned on drawn (generator A), reported on photographed (B)"
    )
    results: dict = {}
    seconds, sheet = [0.0, 0.0], []
    for generator in asked:
        pairs = backdrop_scenes.scenes(generator, data, args.count)
        with shown(len(pairs), "pair") as report:
            for index, pair in enumerate(pairs):
                inputs = {"image": pair.first, "second_shot": pair.second}
                calls = (
                    lambda: remove.TASK.run(models, {"image": pair.first}, plain),
                    lambda: remove.TASK.run({}, inputs, two)["result"],
                )
                rgba = in_turns(index, calls, seconds)[1] if args.timed else calls[1]()
                results.setdefault((generator, pair.kind), []).append(scores(rgba, pair))
                if args.sheet and index % args.count < 2:
                    behind = checks(*pair.first.shape[:2])
                    sheet.append((pair.first, pair.second, over(rgba, behind), over(rgba, BLUE)))
                report(pair.name)
    print(f"{'generator':14}{'kind':8}{'n':>3}{'alpha err':>11}{'worst':>9}{'colour err':>12}{'worst':>9}")
    for (generator, kind), got in results.items():
        alpha, colour = np.array(got).T
        print(
            f"{generator:14}{kind:8}{len(got):3d}{alpha.mean():11.4f}{alpha.max():9.4f}"
            f"{colour.mean():12.4f}{colour.max():9.4f}"
        )
    if args.timed:
        print(
            f"CPU time (all threads) of remove: {seconds[0]:.1f} s with its defaults (model {models['model'].name}), "
            f"{seconds[1]:.1f} s with --second-shot: {seconds[1] / seconds[0]:.2f}x (in turns)"
        )
    if args.sheet:
        write_sheet(args.sheet, sheet)
    return 0
