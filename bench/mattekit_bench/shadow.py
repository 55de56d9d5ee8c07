"""``mattekit bench shadow``: how well ``remove --shadow keep`` finds the shadow the subject casts, on composites
with known shadow mattes from one of two generators (:data:`GENERATORS`: :mod:`mattekit_bench.shadow_scenes`, drawn
shadows over blurred photos, and :mod:`mattekit_bench.shadow_cast`, shadows cast by a point light on sweeps and
textured photo floors), and what it costs.

Each subject of the subjects folder (alphamatting's im/ + gt/) makes one composite of each of the generator's kinds. Subjects are split in sorted order: even-indexed ones are the tuning
half (where :mod:`mattekit.matting.shadow`'s constants were chosen), odd-indexed ones the report half. The subject's
alpha is the model's (``remove --result alpha``, the real model path); the shadow matte is ``remove --result
shadow``. Scored outside the subject (its true alpha < 0.01): the matte's mean absolute error against the truth,
as a ratio to an empty matte's (pooled over the composites of a kind), the IoU of the shadow regions (matte >= 0.1;
mean over composites), and the matte's mean (what a shadowless composite should keep near 0); on the subject's
fine edges (its true alpha 0.01-0.5: hair, fur), the matte's mean excess over the true shadow (a ring of shadow
taken from the subject's own fringe). Cost (``--timed``): the
CPU time (all threads) of ``remove`` (rgba) without and with ``--shadow keep``, run in turns on every composite.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mattekit import io, runtime
from mattekit.ops.pixels import unit_float
from mattekit.options import model_choice
from mattekit.errors import InputError
from mattekit.progress import shown
from mattekit.tasks import remove
from . import shadow_cast, shadow_scenes
from .segment import HALVES, half_of, pairs
from .turns import BLUE, checks, cpu_time, over, write_sheet

OUTSIDE = 0.01  # true alpha below this: outside the subject, where the shadow is scored
FRINGE = 0.5  # true alpha from OUTSIDE up to this: the subject's fine edges, where no shadow should be added
REGION = 0.1  # the shadow region: matte >= this
WITH_SHADOW = ("floor", "offset", "far", "sweep")  # the kinds whose targets are the shadow's error and IoU
SHEET_KINDS = ("floor", "offset", "sweep", "textured")  # the kinds a contact sheet shows
PHOTO_ROW = 200  # the height of a real photo's row on a --photos sheet, px
GENERATORS = {"scenes": shadow_scenes, "cast": shadow_cast}  # --generator: the module making the composites


def add_parser(kinds) -> None:
    p = kinds.add_parser(
        "shadow",
        help="the photo's own shadow (remove --shadow keep) on composites with known "
        "shadow mattes: error and IoU outside the subject, shadows invented, CPU time",
    )
    p.add_argument(
        "--data",
        help="the shared data folder: alphamatting/ (subjects with true alphas), "
        "grabcut50/im and sr/ (photos used as surfaces)",
    )
    p.add_argument(
        "--photos",
        nargs="+",
        help="real photos, no shadow known: with --sheet, a sheet of them (photo, the cut-out with its shadow "
        "over a checkerboard and over a colour, the matte) in place of the composites' scores",
    )
    p.add_argument("--model", default=None, help="segmentation model (default: the catalog's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--half", choices=HALVES + ("both",), default="both")
    p.add_argument(
        "--generator",
        choices=tuple(GENERATORS),
        default="scenes",
        help="how the composites are made: scenes (drawn shadows over blurred photos; kinds "
        + ", ".join(shadow_scenes.KINDS)
        + ") or cast (a point light's cast shadows on sweeps and textured photo floors; kinds "
        + ", ".join(shadow_cast.KINDS)
        + ")",
    )
    p.add_argument(
        "--kinds", default=None, help="the kinds of composite, comma-separated (default: all of the generator's)"
    )
    p.add_argument(
        "--draws",
        type=int,
        default=1,
        help="composites of each kind per subject (default 1; more: "
        "other draws of surface, placement and shadow, e.g. to tune on more than one per subject)",
    )
    p.add_argument("--timed", action="store_true", help="also time remove without and with --shadow keep, in turns")
    p.add_argument(
        "--sheet",
        help="write a PNG contact sheet of the first report-half composites here: photo, the cut-out with its "
        "shadow over a checkerboard and over a colour, the matte",
    )
    p.set_defaults(func=run)


def scenes(
    data: Path, half: str = "both", kinds: tuple[str, ...] = shadow_scenes.KINDS, draws: int = 1, generator="scenes"
) -> list[tuple[str, shadow_scenes.Scene]]:
    """(half, scene) of every subject of ``data``/alphamatting in ``half``, each of ``kinds`` and ``draws`` draws,
    made by the ``generator`` (a key of :data:`GENERATORS`)."""
    found = pairs(data / "alphamatting")
    photos = shadow_scenes.surfaces([data / "grabcut50" / "im", data / "sr"])
    if not found or not photos:
        raise InputError(f"{data} needs alphamatting/im + gt and photos under grabcut50/im or sr.")
    return [
        (half_of(i), GENERATORS[generator].scene(image, gt, kind, photos, draw))
        for i, (image, gt) in enumerate(found)
        if half in ("both", half_of(i))
        for kind in kinds
        for draw in range(draws)
    ]


def scores(matte: np.ndarray, scene: shadow_scenes.Scene) -> tuple[float, float, float, float, float]:
    """(mean |matte - truth|, an empty matte's error, IoU of the regions >= :data:`REGION`, mean of the matte), all
    outside the subject (true alpha < :data:`OUTSIDE`), and the matte's mean excess over the truth on the subject's
    fine edges (true alpha :data:`OUTSIDE` .. :data:`FRINGE`; 0 where it has none)."""
    outside, fringe = scene.alpha < OUTSIDE, (scene.alpha >= OUTSIDE) & (scene.alpha < FRINGE)
    found, truth = (matte >= REGION) & outside, (scene.shadow >= REGION) & outside
    union = np.count_nonzero(found | truth)
    iou = 1.0 if union == 0 else np.count_nonzero(found & truth) / union
    return (
        float(np.abs(matte - scene.shadow)[outside].mean()),
        float(scene.shadow[outside].mean()),
        float(iou),
        float(matte[outside].mean()),
        float(np.clip(matte - scene.shadow, 0.0, None)[fringe].mean()) if fringe.any() else 0.0,
    )


def photo_sheet(paths: list[str], model: str | None, device: str, sheet: str) -> None:
    """Write ``sheet``: a row for each photo of ``paths`` (scaled to :data:`PHOTO_ROW` px high, rows padded white):
    the photo, its cut-out with ``--shadow keep`` over a checkerboard and over a colour, the shadow matte."""
    models = {"model": runtime.ModelCache().get(model_choice(model, "segment"), device)}
    kept = remove.TASK.make_options({"model": model, "device": device, "shadow": "keep"})
    alone = remove.TASK.make_options({"model": model, "device": device, "result": "shadow"})
    rows = []
    for path in paths:
        photo = unit_float(io.read_image(path).pixels[..., :3])
        cut = remove.TASK.run(models, {"image": photo}, kept)["result"]
        matte = remove.TASK.run(models, {"image": photo}, alone)["result"]
        h, w = photo.shape[:2]
        cells = (photo, over(cut, checks(h, w)), over(cut, BLUE), np.repeat(matte[..., None], 3, 2))
        size = (round(w * PHOTO_ROW / h), PHOTO_ROW)
        rows.append(np.concatenate([cv2.resize(c, size, interpolation=cv2.INTER_AREA) for c in cells], axis=1))
    width = max(row.shape[1] for row in rows)
    write_sheet(
        sheet, [(np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0)), constant_values=1.0),) for row in rows]
    )


def print_scores(results: dict, known: tuple[str, ...]) -> None:
    """Print a row of :func:`scores` pooled over each half and kind of ``results`` ({(half, kind): [scores]})."""
    print(
        f"{'half':8}{'kind':9}{'n':>3}{'MAE/empty':>11}{'empty MAE':>11}{'IoU>=0.1':>10}{'mean matte':>12}{'fringe':>8}"
    )
    for half in HALVES:
        for kind in known + ("shadowed",):
            got = [s for k in (WITH_SHADOW if kind == "shadowed" else (kind,)) for s in results.get((half, k), [])]
            if not got:
                continue
            error, empty, iou, mean, fringe = np.array(got).T
            ratio = f"{error.sum() / empty.sum():11.3f}" if empty.sum() > 0 else f"{'-':>11}"
            print(
                f"{half:8}{kind:9}{len(got):3d}{ratio}{empty.mean():11.4f}{iou.mean():10.3f}{mean.mean():12.4f}{fringe.mean():8.4f}"
            )


def run(args) -> int:
    if args.photos:
        if not args.sheet:
            raise InputError("--photos makes a sheet: give --sheet FILE too.")
        photo_sheet(args.photos, args.model, args.device, args.sheet)
        return 0
    if not args.data:
        raise InputError("bench shadow needs --data (the composites' folder) or --photos with --sheet.")
    data = Path(args.data)
    known = GENERATORS[args.generator].KINDS
    kinds = tuple(k.strip() for k in (args.kinds or ",".join(known)).split(",") if k.strip())
    unknown = sorted(set(kinds) - set(known))
    if unknown or not kinds:
        raise InputError(f"--kinds takes {', '.join(known)} with --generator {args.generator}, not {args.kinds!r}.")
    if not 1 <= args.draws <= 20:
        raise InputError(f"--draws takes 1 to 20, not {args.draws}.")
    rows = scenes(data, args.half, kinds, args.draws, args.generator)
    predictor = runtime.ModelCache().get(model_choice(args.model, "segment"), args.device)
    plain = remove.TASK.make_options({"model": args.model, "device": args.device})
    kept = remove.TASK.make_options({"model": args.model, "device": args.device, "shadow": "keep"})
    alone = remove.TASK.make_options({"model": args.model, "device": args.device, "result": "shadow"})
    models = {"model": predictor}
    print(
        f"bench shadow on {data}: {len(rows)} composites ({args.generator} generator) of alphamatting subjects "
        f"(sorted; tuning half = even-indexed, report half = odd-indexed) over grabcut50/sr photos as surfaces; model "
        f"{predictor.name} on {args.device}; scored outside the subject (true alpha < {OUTSIDE})"
    )
    results, seconds, sheet = {}, [0.0, 0.0], []
    with shown(len(rows), "composite") as report:  # on stderr: a bar on a terminal, a line per composite elsewhere
        for index, (half, scene) in enumerate(rows):
            inputs = {"image": scene.photo}
            shown_here = args.sheet and half == "report" and scene.kind in SHEET_KINDS and len(sheet) < 8
            made = {}
            if args.timed or shown_here:
                runs = [(0, plain), (1, kept)] if index % 2 == 0 else [(1, kept), (0, plain)]  # in turns
                for which, options in runs:
                    spent, made[which] = cpu_time(lambda: remove.TASK.run(models, inputs, options)["result"])
                    seconds[which] += spent
            matte = remove.TASK.run(models, inputs, alone)["result"]
            results.setdefault((half, scene.kind), []).append(scores(matte, scene))
            if shown_here:
                h, w = scene.photo.shape[:2]
                sheet.append((scene.photo, over(made[1], checks(h, w)), over(made[1], BLUE), matte))
            report(scene.name)
    print_scores(results, known)
    if args.timed:
        print(
            f"CPU time (all threads) of remove on these composites: {seconds[0]:.1f} s without, {seconds[1]:.1f} s "
            f"with --shadow keep: {seconds[1] / seconds[0]:.2f}x (in turns)"
        )
    if args.sheet:
        write_sheet(args.sheet, sheet)
    return 0
