"""Roto (task ``roto``, kind "sequence"): a plate sequence in, a matte sequence out; its options (:class:`RotoSpec`).

The job that runs them (:class:`mattekit.roto.RotoJob`, with the worker's :func:`mattekit.roto.run_operation`)
lives a layer above the tasks; ``mattekit roto``, the worker's ``roto`` operation and the API function
``mattekit.rotoscope(plate, output, ...)`` (not ``mattekit.roto``: that is the package) find this declaration in
:func:`.registry.sequences` and run that job.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass
from pathlib import Path

from ..io.frame_ranges import Frames
from ..options import ModelChoice, option
from ..subject.keyframe_hints import HintMask, KeyframeHint, parse_boxes, parse_excludes, parse_hint_masks, parse_points
from .common import DEVICE_HELP, DEVICE_PARSE, weights_option
from .registry import SequenceTask

# roto mattes with object segmentation or trimap-free (people) matting models, or tracks a hinted object (SAM 2.1)
ROTO_MODEL_TASKS = ("segment", "matte", "prompt")
BOXES_PARSE = "mattekit.subject.keyframe_hints:parse_boxes"  # roto's keyframe hints, read once into values
POINTS_PARSE = "mattekit.subject.keyframe_hints:parse_points"
EXCLUDES_PARSE = "mattekit.subject.keyframe_hints:parse_excludes"
HINT_MASKS_PARSE = "mattekit.subject.keyframe_hints:parse_hint_masks"


@dataclass
class RotoSpec:
    """Everything that defines a roto job (values that pickle: it travels to Ray workers as a dict).

    plate: pattern, numbered frame, folder or movie. output: matte pattern (``matte.####.png``)
    or a folder. frames: a range ("1001-1100x2", lists) or None for all. rgba / fg: optional
    patterns for the cut-out (premultiplied in EXR, straight in PNG/TIFF) and the decontaminated
    foreground plate (same alpha convention), both in the plate's own colour space and values. shadow: optional
    pattern for the shadow the subject casts (:mod:`mattekit.matting.shadow`), a matte per frame.
    colorspace: the plate's OCIO colour space (None: each file's own, :mod:`mattekit.io.colour`); view: the view of the
    sRGB display the networks see it through (None: the plain conversion). temporal: motion-compensated smoothing over
    ``radius`` frames on each side. bit_depth: matte bits (PNG/TIFF 8|16, EXR 16 = half, 32 = float).
    threads: torch threads per inference worker; workers: inference workers (None: chosen by
    :func:`mattekit.running.layout.plan`); neither changes the bytes written at a given ``threads``.
    """

    plate: str = option(MISSING, "frame pattern (name.####.exr), numbered frame, folder of frames or movie", path=True)
    output: str = option(
        MISSING,
        "matte pattern such as out/matte.####.png (PNG/TIFF 16-bit, EXR half), or a folder",
        path=True,
        writes=True,
    )
    frames: Frames | None = option(
        None,
        "frame range, e.g. 1001-1100, 1001-1100x2, 1001,1005; default: every frame",
        parse="mattekit.io.frame_ranges:parse_frames",
    )
    rgba: str | None = option(
        None, "also write the cut-out to this pattern (EXR premultiplied, PNG/TIFF straight)", path=True, writes=True
    )
    fg: str | None = option(
        None, "also write the decontaminated foreground plate with its alpha to this pattern", path=True, writes=True
    )
    layers: str | None = option(
        None,
        "also write one EXR per frame for compositors to this pattern: R G B A (the "
        "cut-out, premultiplied) and fg.R fg.G fg.B fg.A, the plate's data window and "
        "metadata kept",
        path=True,
        writes=True,
    )
    shadow: str | None = option(
        None,
        "also write the shadow the subject casts in the plate to this pattern, a matte "
        "per frame (0 none, 1 black; one subject), and with --layers as their shadow.A "
        "channel",
        path=True,
        writes=True,
    )
    keep_personal: bool = option(
        False,
        "keep all the plate's metadata in the --layers files; by default only what describes "
        "the picture and its rights: no location, names, serial numbers nor ids "
        "(no other output carries the plate's metadata)",
    )
    model: ModelChoice | None = option(
        None,
        "people (permissive people matting, Apache-2.0), objects (the default "
        "segmentation model), any segment or matte model of `mattekit models list`, or a SAM 2.1 "
        "model (sam2.1-hiera-tiny...: tracks the hinted objects with its memory); default: objects",
        model=ROTO_MODEL_TASKS,
    )
    weights: Path | None = weights_option()
    device: str = option("auto", DEVICE_HELP, parse=DEVICE_PARSE)
    threads: int | None = option(None, "CPU threads for inference", minimum=1, maximum=1024)
    workers: int | None = option(
        None,
        "inference workers (default: chosen for the machine; the files do not depend on it)",
        minimum=1,
        maximum=64,
    )
    refine: bool = option(True, "edge-aware upsampling of the matte (off: plain bilinear)")
    temporal: bool = option(True, "temporal consistency (motion-compensated smoothing across frames)")
    radius: int | None = option(
        None,
        "temporal window: frames on each side (default: the model's, 4 for most, 2 for u2netp; 0 = off)",
        minimum=0,
        maximum=32,
    )
    colorspace: str | None = option(
        None,
        "OCIO colour space of the plate (a name or alias of $OCIO's config, else "
        "OCIO's built-in ACES studio config; `mattekit colorspaces` lists them); default: "
        "what the file says, else linear sRGB for float and sRGB for 8/16-bit files",
        parse="mattekit.io.colour:check_colorspace",
        label="Plate colour space",
    )
    view: str | None = option(
        None,
        "a view of the OCIO config's sRGB display that the networks see the plate "
        "through (`mattekit colorspaces` lists them; e.g. 'ACES 2.0 - SDR 100 nits (Rec.709)', "
        "which keeps highlights above 1.0 apart); default: the plain conversion to sRGB, "
        "clipped to 0..1; the mattes are data and the --rgba/--fg plates keep the plate's values "
        "either way",
        parse="mattekit.io.colour:check_view",
        label="View for the networks",
    )
    bit_depth: int = option(
        16, "matte bits: 8/16 for PNG and TIFF, 16 (half) or 32 (float) for EXR", choices=(8, 16, 32)
    )
    skip_missing: bool = option(False, "process the frames that exist when some are missing")
    box: tuple[KeyframeHint, ...] | None = option(
        None,
        "the subject lies in this box on a keyframe: FRAME:x0,y0,x1,y1 in pixels (x1, y1 exclusive; repeatable, "
        "one per keyframe and object); carried to the other frames along the motion; FRAME:x0,y0,x1,y1@NAME names "
        "its object (one matte sequence per object)",
        repeat=True,
        label="Keyframe boxes",
        parse=BOXES_PARSE,
    )
    point: tuple[KeyframeHint, ...] | None = option(
        None,
        "a point on the subject on a keyframe: FRAME:x,y (repeatable): only the parts connected to it are kept "
        "on that frame (FRAME:x,y@NAME: of that object)",
        repeat=True,
        label="Keyframe include points",
        parse=POINTS_PARSE,
    )
    exclude: tuple[KeyframeHint, ...] | None = option(
        None,
        "a point not on the subject on a keyframe: FRAME:x,y (repeatable): the part there is left out on that frame",
        repeat=True,
        label="Keyframe exclude points",
        parse=EXCLUDES_PARSE,
    )
    hint_mask: tuple[HintMask, ...] | None = option(
        None,
        "keyframe hint masks: a pattern such as masks/####.png (white = subject, the plate's size and frame "
        "numbers); each existing file makes its frame a keyframe (PATTERN@NAME;PATTERN@NAME: one pattern per object)",
        path=True,
        label="Keyframe hint masks",
        parse=HINT_MASKS_PARSE,
    )
    overwrite: bool = option(False, "recompute every frame, even finished ones or ones made with other settings")

    def __post_init__(self) -> None:
        """Keyframe hints and hint masks given to the class as text (not through the declaration's check, which
        parses them) read as their values (:mod:`mattekit.subject.keyframe_hints`), and a model's name as the checked
        choice (:class:`~mattekit.options.ModelChoice`); values stay as they are."""
        for name, parse in (
            ("box", parse_boxes),
            ("point", parse_points),
            ("exclude", parse_excludes),
            ("hint_mask", parse_hint_masks),
        ):
            if isinstance(getattr(self, name), str):
                setattr(self, name, parse(getattr(self, name)))
        if isinstance(self.model, str):
            self.model = TASK.option_table()["model"].check(self.model)

    @classmethod
    def from_dict(cls, values: dict) -> "RotoSpec":
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_dict(self) -> dict:
        """The options as plain values (a model as its name), for :meth:`from_dict` in another process."""
        return asdict(self) | {"model": None if self.model is None else str(self.model)}


TASK = SequenceTask(
    name="roto",
    summary="Matte every frame of a plate (pattern, folder or movie) into a matte sequence; resumable.",
    options=RotoSpec,
    api="rotoscope",  # mattekit.roto is the package that runs it
)
