"""Every worker operation on degenerate shapes (1 x 1 to 4000 x 1), the worker started as ``mattekit serve`` in a
subprocess under an address-space cap (tests/helpers/capped_runs.py): each answer a result or a 4xx in one sentence,
no traceback in its log."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from capped_runs import CAP, _cap, _env


SHAPES = [(1, 1), (2, 2), (1, 4000), (4000, 1), (2, 3000), (48, 64)]


@pytest.mark.slow
@pytest.mark.needs_data
def test_every_worker_operation_on_degenerate_shapes(tmp_path, shared):
    from mattekit.wire import client

    env = _env(shared, tmp_path / "home")
    state = tmp_path / "state" / "worker.json"
    argv = [
        sys.executable,
        "-m",
        "mattekit",
        "serve",
        "--state-file",
        str(state),
        "--allow-dir",
        str(tmp_path),
        "--idle-timeout",
        "600",
    ]
    err = open(tmp_path / "serve.err", "wb")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env, preexec_fn=_cap)
    try:
        deadline = time.time() + 120
        while not state.exists():
            assert proc.poll() is None and time.time() < deadline, (tmp_path / "serve.err").read_text()
            time.sleep(0.2)
        worker = client.WorkerClient(*_address(state))
        counts, reasons = {}, {}
        rng = np.random.default_rng(1)
        for op in worker.schema()["operations"]:
            if op["name"] == "roto":
                continue  # paths, not pixels: its confinement and bad paths are tested in test_server.py
            options = {
                name: "csnet-sod"
                for name, spec in op["options"].items()  # a task or a list of tasks
                if "segment" in ([spec["model"]] if isinstance(spec.get("model"), str) else spec.get("model") or [])
            }
            if op["name"] == "bokeh":
                options["mask_only"] = True
            if op["name"] == "matte":
                options["model"] = "csnet-sod"  # a segmentation model whose mask is matted
            if op["name"] == "upscale":
                options["model"] = "rfdn-x4"  # the worker takes no weights path; the shared animevideov3 is a re-export
            for h, w in SHAPES:
                inputs = {
                    p["name"]: client.Pixels(
                        (rng.random((h, w, max(p["channels"]))) * 255).astype(np.uint8).tobytes(),
                        w,
                        h,
                        max(p["channels"]),
                    )
                    for p in op["inputs"]
                    if not p["optional"]
                }
                try:
                    worker.run(op["name"], inputs, options)
                    outcome = "ok"
                except client.WorkerError as exc:
                    message = str(exc)
                    assert exc.status is not None and 400 <= exc.status < 500, (op["name"], h, w, exc.status, message)
                    assert "\n" not in message and message.endswith("."), message
                    outcome = "error"
                    reasons.setdefault(op["name"], message)
                counts.setdefault(op["name"], {"ok": 0, "error": 0})[outcome] += 1
        assert worker.health()
        failed = {name: reasons[name] for name, c in counts.items() if c["error"] and name != "depth"}
        assert not failed, failed  # depth alone has no offline weights: its 422 says so in one sentence
        worker.shutdown()
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()
    log = (tmp_path / "serve.err").read_text()
    assert "Traceback" not in log, log
    print(
        f"\nworker operations under RLIMIT_AS = {CAP >> 30} GiB on shapes {SHAPES}: "
        + json.dumps(counts)
        + f"; first errors: {json.dumps(reasons)}; children's peak RSS {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MiB"
    )


def _address(state: Path) -> tuple[str, str]:
    data = json.loads(state.read_text())
    return data["url"], data["token"]
