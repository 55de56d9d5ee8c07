"""A command run with a small disk under a folder (:func:`on_a_small_disk`): a tmpfs of a few KiB mounted there in a
mount namespace of the run's own (``unshare``: no root needed where user namespaces are allowed), so that writing past
it fails as on a full disk (ENOSPC). What the run left on it is copied out before the namespace, and the tmpfs, go."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

MOUNTED = (
    'mount -t tmpfs -o size="$1" small "$2" || exit 97\n'
    'disk=$2 kept=$3 to=$4; shift 4\nif [ -n "$to" ]; then "$@" > "$to"; else "$@"; fi\ncode=$?\n'
    'cp -a "$disk/." "$kept/" && exit $code\n'
)
NO_MOUNT = 97


def on_a_small_disk(
    disk: Path, kib: int, argv: list, env: dict, stdout_to: Path | None = None
) -> tuple[subprocess.CompletedProcess, Path]:
    """(The finished run of ``argv`` with a tmpfs of ``kib`` KiB at the folder ``disk``, the folder its files were
    copied to: ``disk`` with "-kept" added); ``stdout_to``: a file on the disk that standard output goes to (else a
    pipe). Skips the test where no mount namespace and tmpfs can be made here."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare here: a small disk cannot be mounted for the run")
    kept = disk.with_name(disk.name + "-kept")
    disk.mkdir()
    kept.mkdir()
    done = subprocess.run(
        ["unshare", "--mount", "--map-root-user", "sh", "-c", MOUNTED, "sh", f"{kib}k", disk, kept, stdout_to or ""]
        + [str(word) for word in argv],
        capture_output=True,
        env=env,
    )
    if done.returncode == NO_MOUNT or done.stderr.startswith(b"unshare:"):
        pytest.skip(f"no small disk can be mounted here: {done.stderr.decode().strip()}")
    return done, kept
