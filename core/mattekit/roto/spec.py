"""The checks of a roto job's outputs (its options are :class:`mattekit.tasks.roto.RotoSpec`): none lands on a
file the job reads or on another of its outputs."""

from __future__ import annotations

import contextlib
import os

from ..errors import InputError, OutputError
from ..fsutil import FilesRead
from ..io.frame_patterns import FramePattern
from ..options import options_of
from ..tasks.roto import RotoSpec


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
        for named in declared.paths(value):  # a file, or patterns such as masks/####.png (the hint masks)
            read.add(named, f"the {declared.flag} file")
            with contextlib.suppress(InputError):  # a pattern: its files
                pattern = FramePattern.parse(named)
                patterns.append((pattern, f"the {declared.flag} pattern {pattern}"))
                for path in pattern.scan().values():
                    read.add(path, f"a file of the {declared.flag} pattern {pattern}")
    for name, out in outputs.items():
        fix = (
            "choose another -o (output pattern or folder)"
            if name == "output"
            else f"choose another {'--' + name.replace('_', '-')} pattern"
        )
        for pattern, what in patterns:
            if _same_naming(out, pattern):
                raise OutputError(
                    f"The output pattern {out} is {what}: writing it would replace or add to its files; {fix}."
                )
        for frame in frames:
            what = read.which(out.path(frame))
            if what is not None:
                raise OutputError(
                    f"The output {out.path(frame)} is {what}: writing it would replace the original; {fix}."
                )


def refuse_shared_outputs(outputs: dict[str, FramePattern]) -> None:
    """OutputError (one sentence) when two of the job's output patterns (``outputs``: {option name: pattern}: the
    matte, ``rgba``, ``fg``, ``layers``) name files of one sequence (:func:`_same_naming`): one file would hold
    two outputs, the last one written winning, and the journal would record two hashes for it.
    Patterns that differ only in case are refused too, on every system: macOS's and Windows' disks (and shares
    they mount) take them for one name."""
    names = list(outputs)
    for n, first in enumerate(names):
        for second in names[n + 1 :]:
            flags = " and ".join("-o" if name == "output" else f"--{name}" for name in (first, second))
            if _same_naming(outputs[first], outputs[second]):
                raise OutputError(
                    f"{flags} both name the files {outputs[second]}; give each output (the matte, "
                    f"--rgba, --fg, --layers) a pattern of its own."
                )
            if _same_naming(outputs[first], outputs[second], fold=True):
                raise OutputError(
                    f"{flags} name files that differ only in case ({outputs[first]} and "
                    f"{outputs[second]}), one name on macOS and Windows disks; give each output a "
                    f"pattern that differs in more than case."
                )


def _same_naming(a: FramePattern, b: FramePattern, fold: bool = False) -> bool:
    """The two patterns name files of one sequence: same folder (links resolved), prefix and suffix (whatever
    the padding: ``f.#.png`` and ``f.####.png`` share frames 1000 and up, and a plate named by one frame
    takes the shortest numbers as its padding); ``fold``: compared as a case-insensitive disk compares names."""
    same = str.casefold if fold else str
    if (same(a.prefix), same(a.suffix)) != (same(b.prefix), same(b.suffix)):
        return False
    try:
        return same(str(a.folder.resolve())) == same(str(b.folder.resolve())) or (
            a.folder.is_dir() and b.folder.is_dir() and os.path.samefile(a.folder, b.folder)
        )
    except OSError:
        return False
