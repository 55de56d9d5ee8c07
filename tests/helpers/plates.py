"""Roto plates for the tests: real DAVIS frames shrunk to a VFX-style plate, small random plates, and the roto
command line the output tests run."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mattekit.io import read_image, write_image

MODEL = "csnet-sod"  # real weights from the shared mirror; 0.7 MB, fast on CPU


def make_plate(
    shared: Path,
    folder: Path,
    count: int,
    first: int = 1001,
    suffix: str = ".png",
    sequence: str = "dog",
    size=(214, 120),
) -> str:
    """Real DAVIS frames, shrunk, as a VFX-style plate ``folder/plate.####<suffix>``."""
    folder.mkdir(parents=True, exist_ok=True)
    source = sorted((shared / "data" / "davis" / "im" / sequence).iterdir())[:count]
    for i, path in enumerate(source):
        image = cv2.resize(read_image(path).pixels, size, interpolation=cv2.INTER_AREA)
        write_image(folder / f"plate.{first + i:04d}{suffix}", image, bit_depth=32 if suffix == ".exr" else 8)
    return str(folder / f"plate.####{suffix}")


def small_plate(folder: Path, frames=(1, 2, 3)) -> Path:
    """A plate folder/f.####.png of random frames (no model runs in the refusal tests)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for frame in frames:
        write_image(folder / f"f.{frame:04d}.png", rng.random((12, 16, 3)).astype(np.float32))
    return folder


def roto_args(plate: Path, out: Path, *extra) -> list[str]:
    """``mattekit roto`` arguments for ``small_plate``'s frames into ``out/m.####.png`` with :data:`MODEL`."""
    return [
        "roto",
        str(plate / "f.####.png"),
        "-o",
        str(out / "m.####.png"),
        "--model",
        MODEL,
        "--device",
        "cpu",
        "--threads",
        "1",
        "--radius",
        "1",
        *map(str, extra),
    ]


def one_error(capsys) -> str:
    """The one sentence the command wrote to standard error (after ``mattekit: error: ``); fails on more lines."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mattekit: error: "), err
    return err[0][len("mattekit: error: ") :]


def two_subject_plate(shared: Path, folder: Path, count: int, first: int = 1001) -> str:
    """Real DAVIS frames side by side, each shrunk to 214 x 120: dog on the left, blackswan on the
    right, as ``folder/plate.####.png`` (428 x 120). Two subjects; the hint picks one."""
    folder.mkdir(parents=True, exist_ok=True)
    sides = [sorted((shared / "data" / "davis" / "im" / name).iterdir())[:count] for name in ("dog", "blackswan")]
    for i, (left, right) in enumerate(zip(*sides)):
        halves = [cv2.resize(read_image(p).pixels, (214, 120), interpolation=cv2.INTER_AREA) for p in (left, right)]
        write_image(folder / f"plate.{first + i:04d}.png", np.concatenate(halves, axis=1), bit_depth=8)
    return str(folder / "plate.####.png")
