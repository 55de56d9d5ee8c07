"""`python -m mattekit_bench.plain_loop`: the plainest PyTorch loop next to mattekit's engine, here on the CPU with
u2netp's stand-in weights (tests/cuda/run.sh runs it on a GPU with BiRefNet's)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mattekit import catalog
from mattekit_bench.plain_loop import main
from mattekit_bench.stand_in import write_stand_in


@pytest.mark.slow
def test_the_plain_loop_and_the_engine_both_run_and_are_compared(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(photos / f"p{i}.jpg")
    weights = write_stand_in(catalog.load().get("u2netp"), tmp_path)
    assert (
        main([str(photos), "--model", "u2netp", "--weights", str(weights), "--device", "cpu", "--precision", "fp32"])
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("plain loop: u2netp fp32 batch 1 on cpu, 1 photos from ")
    assert "eager PyTorch" in out[1] and "mattekit's engine torch-cpu-" in out[2], out
    assert out[3].startswith("  mattekit / eager: ") and out[4] == "  engine's choice: eager (not on CUDA)"


def test_a_folder_without_two_photos_is_one_sentence(tmp_path, capsys):
    assert main([str(tmp_path), "--weights", str(tmp_path / "none.pth"), "--device", "cpu"]) == 1
    assert capsys.readouterr().err.strip() == f"plain_loop: {tmp_path} holds fewer than 2 photos."
