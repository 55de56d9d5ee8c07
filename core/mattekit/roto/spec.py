"""What defines a roto job (:class:`RotoSpec`, plain values that travel to workers as a dict), and the
checks that none of its outputs lands on a file it reads or on another of its outputs."""
from __future__ import annotations

import contextlib
import os
from dataclasses import MISSING, asdict, dataclass

from ..errors import InputError, OutputError
from ..fsutil import FilesRead
from ..io.sequences import FramePattern
from ..tasks.registry import DEVICE_HELP, DEVICE_PARSE, WEIGHTS_PARSE, option, options_of

# roto mattes with object segmentation or trimap-free (people) matting models, or tracks a hinted object (SAM 2.1)
ROTO_MODEL_TASKS = ("segment", "matte", "prompt")


@dataclass
class RotoSpec:
    """Everything that defines a roto job (plain values: it travels to workers as a dict).

    plate: pattern, numbered frame, folder or movie. output: matte pattern (``matte.####.png``)
    or a folder. frames: a range ("1001-1100x2", lists) or None for all. rgba / fg: optional
    patterns for the cut-out (premultiplied in EXR, straight in PNG/TIFF) and the decontaminated
    foreground plate (same alpha convention), both in the plate's own colour space and values.
    colorspace: the plate's OCIO colour space (None: each file's own, :mod:`mattekit.colour`); view: the view of the
    sRGB display the networks see it through (None: the plain conversion). temporal: motion-compensated smoothing over
    ``radius`` frames on each side. bit_depth: matte bits (PNG/TIFF 8|16, EXR 16 = half, 32 = float).
    threads: torch threads per inference worker; workers: inference workers (None: chosen by
    :func:`mattekit.pipeline.plan`); neither changes the bytes written at a given ``threads``.
    """

    plate: str = option(MISSING, "frame pattern (name.####.exr), numbered frame, folder of frames or movie", path=True)
    output: str = option(MISSING, "matte pattern such as out/matte.####.png (PNG/TIFF 16-bit, EXR half), or a folder",
                         path=True, writes=True)
    frames: str | None = option(None, "frame range, e.g. 1001-1100, 1001-1100x2, 1001,1005; default: every frame",
                                parse="mattekit.io.sequences:parse_frames")
    rgba: str | None = option(None, "also write the cut-out to this pattern (EXR premultiplied, PNG/TIFF straight)",
                              path=True, writes=True)
    fg: str | None = option(None, "also write the decontaminated foreground plate with its alpha to this pattern",
                            path=True, writes=True)
    layers: str | None = option(None, "also write one EXR per frame for compositors to this pattern: R G B A (the "
                                "cut-out, premultiplied) and fg.R fg.G fg.B fg.A, the plate's data window and "
                                "metadata kept", path=True, writes=True)
    model: str | None = option(None, "people (permissive people matting, Apache-2.0), objects (the default "
                               "segmentation model), any segment or matte model of `mattekit models list`, or a SAM 2.1 "
                               "model (sam2.1-hiera-tiny...: tracks the hinted objects with its memory); default: objects",
                               model=ROTO_MODEL_TASKS)
    weights: str | None = option(None, "use this weights file instead of the catalog's download", path=True,
                                 parse=WEIGHTS_PARSE, hosts=("cli", "api"))
    device: str = option("auto", DEVICE_HELP, parse=DEVICE_PARSE)
    threads: int | None = option(None, "CPU threads for inference", minimum=1, maximum=1024)
    workers: int | None = option(None, "inference workers (default: chosen for the machine; the files do not depend on it)",
                                 minimum=1, maximum=64)
    refine: bool = option(True, "edge-aware upsampling of the matte (off: plain bilinear)")
    temporal: bool = option(True, "temporal consistency (motion-compensated smoothing across frames)")
    radius: int | None = option(None, "temporal window: frames on each side (default 4; 0 = off)", minimum=0, maximum=32)
    colorspace: str | None = option(None, "OCIO colour space of the plate (a name or alias of $OCIO's config, else "
                                    "OCIO's built-in ACES studio config; `mattekit colorspaces` lists them); default: "
                                    "what the file says, else linear sRGB for float and sRGB for 8/16-bit files",
                                    parse="mattekit.colour:check_colorspace", label="Plate colour space")
    view: str | None = option(None, "a view of the OCIO config's sRGB display that the networks see the plate "
                              "through (`mattekit colorspaces` lists them; e.g. 'ACES 2.0 - SDR 100 nits (Rec.709)', "
                              "which keeps highlights above 1.0 apart); default: the plain conversion to sRGB, "
                              "clipped to 0..1; the mattes are data and the --rgba/--fg plates keep the plate's values "
                              "either way", parse="mattekit.colour:check_view", label="View for the networks")
    bit_depth: int = option(16, "matte bits: 8/16 for PNG and TIFF, 16 (half) or 32 (float) for EXR",
                            choices=(8, 16, 32))
    skip_missing: bool = option(False, "process the frames that exist when some are missing")
    box: str | None = option(None, "the subject lies in this box on a keyframe: FRAME:x0,y0,x1,y1 in pixels (x1, y1 "
                             "exclusive; repeatable, one per keyframe and object); carried to the other frames along the motion; "
                             "FRAME:x0,y0,x1,y1@NAME names its object (one matte sequence per object)",
                             repeat=True, label="Keyframe boxes")
    point: str | None = option(None, "a point on the subject on a keyframe: FRAME:x,y (repeatable): only the parts "
                               "connected to it are kept on that frame (FRAME:x,y@NAME: of that object)", repeat=True,
                               label="Keyframe include points")
    exclude: str | None = option(None, "a point not on the subject on a keyframe: FRAME:x,y (repeatable): the part "
                                 "there is left out on that frame", repeat=True, label="Keyframe exclude points")
    hint_mask: str | None = option(None, "keyframe hint masks: a pattern such as masks/####.png (white = subject, the "
                                   "plate's size and frame numbers); each existing file makes its frame a keyframe "
                                   "(PATTERN@NAME;PATTERN@NAME: one pattern per object)",
                                   path=True, label="Keyframe hint masks")
    overwrite: bool = option(False, "recompute every frame, even finished ones or ones made with other settings")

    @classmethod
    def from_dict(cls, values: dict) -> "RotoSpec":
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_dict(self) -> dict:
        return asdict(self)



def refuse_overwriting_inputs(spec: RotoSpec, plate, frames: list[int], outputs: dict[str, FramePattern]) -> None:
    """OutputError (one sentence) when a file the job would write is one it reads, checked before anything
    is written or loaded.

    Written: each output pattern (``outputs``: {option name: pattern}, the matte, ``rgba``, ``fg``, ``layers``) for
    ``frames``. Read: every option of :class:`RotoSpec` that names files and does not write (``path`` and
    not ``writes``): every frame file of the plate (or the movie), the hint masks, the weights file.
    An output pattern that names a read sequence (same folder and naming) is refused too, even where their
    frames do not meet: its files would join that sequence (a new frame of the plate, a new keyframe).
    """
    read = FilesRead()
    patterns: list[tuple[FramePattern, str]] = []  # (a pattern read, what it is)
    for declared in options_of(RotoSpec):
        value = getattr(spec, declared.name)
        if not declared.reads or not value:
            continue
        if declared.name == "plate":  # a pattern, one frame, a folder or a movie: the frames as opened
            if hasattr(plate, "files"):
                patterns.append((plate.pattern, f"the plate {plate.pattern}"))
                for path in plate.files.values():
                    read.add(path, f"a frame of the plate {plate.pattern}")
            else:
                read.add(plate.path, f"the plate {plate.path}")
            continue
        read.add(value, f"the {declared.flag} file")
        with contextlib.suppress(InputError):  # a pattern such as masks/####.png: its files
            pattern = FramePattern.parse(value)
            patterns.append((pattern, f"the {declared.flag} pattern {pattern}"))
            for path in pattern.scan().values():
                read.add(path, f"a file of the {declared.flag} pattern {pattern}")
    for name, out in outputs.items():
        fix = ("choose another -o (output pattern or folder)" if name == "output"
               else f"choose another {'--' + name.replace('_', '-')} pattern")
        for pattern, what in patterns:
            if _same_naming(out, pattern):
                raise OutputError(f"The output pattern {out} is {what}: writing it would replace or add to its "
                                  f"files; {fix}.")
        for frame in frames:
            what = read.which(out.path(frame))
            if what is not None:
                raise OutputError(f"The output {out.path(frame)} is {what}: writing it would replace the original; {fix}.")


def refuse_shared_outputs(outputs: dict[str, FramePattern]) -> None:
    """OutputError (one sentence) when two of the job's output patterns (``outputs``: {option name: pattern}: the
    matte, ``rgba``, ``fg``, ``layers``) name files of one sequence (:func:`_same_naming`): one file would hold
    two outputs, the last one written winning, and the journal would record two hashes for it."""
    names = list(outputs)
    for n, first in enumerate(names):
        for second in names[n + 1:]:
            if _same_naming(outputs[first], outputs[second]):
                flags = " and ".join("-o" if name == "output" else f"--{name}" for name in (first, second))
                raise OutputError(f"{flags} both name the files {outputs[second]}; give each output (the matte, "
                                  f"--rgba, --fg, --layers) a pattern of its own.")


def _same_naming(a: FramePattern, b: FramePattern) -> bool:
    """The two patterns name files of one sequence: same folder (links resolved), prefix and suffix (whatever
    the padding: ``f.#.png`` and ``f.####.png`` share frames 1000 and up, and a plate named by one frame
    takes the shortest numbers as its padding)."""
    if (a.prefix, a.suffix) != (b.prefix, b.suffix):
        return False
    try:
        return a.folder.resolve() == b.folder.resolve() or (a.folder.is_dir() and b.folder.is_dir()
                                                            and os.path.samefile(a.folder, b.folder))
    except OSError:
        return False
