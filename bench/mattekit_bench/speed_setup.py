"""What both kinds of ``bench speed`` run need: the weights (a file, or stand-in weights made here), the
images, rembg's model folder, a tool in a process of its own driven through a pipe, and the machine's line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

# rembg's session name (``rembg.new_session(name)``) of each catalog model it ships.
REMBG_SESSION_NAMES = {
    "u2net": "u2net",
    "u2netp": "u2netp",
    "u2net-human-seg": "u2net_human_seg",
    "isnet-general-use": "isnet-general-use",
}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def _weights(args, work: Path) -> str:
    """The weights file both tools use: --weights, stand-in weights written into ``work``, or the catalog's
    (fetched)."""
    from mattekit import catalog, weights

    entry = catalog.load().get(args.model, "segment")
    if args.weights:
        return str(weights.given_file(args.weights).resolve())
    if args.stand_in:
        from .stand_in import write_stand_in

        return str(write_stand_in(entry, work))
    return str(weights.model_file(entry.name, entry.files))


def _images(args) -> list[Path]:
    """The image files to time: those in --data (default: grabcut50 in $MATTEKIT_TEST_DATA, where it is set),
    sorted, the first --limit of them."""
    from mattekit.errors import MattekitError

    root = os.environ.get("MATTEKIT_TEST_DATA")
    if not args.data and not root:
        raise MattekitError("Give a folder of images with --data.")
    folder = Path(args.data) if args.data else Path(root) / "data" / "grabcut50" / "im"
    if not folder.is_dir():
        raise MattekitError(f"{folder} is not a folder: give a folder of images with --data.")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    files = files[: args.limit] if args.limit else files
    if not files:
        raise MattekitError(f"{folder} holds no images.")
    return files


def _rembg_home(args, cfg, work: Path, check_import: bool = True) -> tuple[str, Path]:
    """(rembg session name, a U2NET_HOME holding an ONNX export of the same weights under rembg's file name);
    ``check_import``: rembg must be importable here (else it runs in another interpreter)."""
    import torch

    from mattekit import catalog
    from mattekit.engines import load_net
    from mattekit.engines.onnx import export_onnx, onnx_path
    from mattekit.errors import MattekitError

    session = REMBG_SESSION_NAMES.get(args.model)
    if session is None:
        raise MattekitError(
            f"rembg has no session for model {args.model}; use --no-rembg or one of {', '.join(REMBG_SESSION_NAMES)}."
        )
    if check_import:
        try:
            import rembg  # noqa: F401
        except ImportError:
            raise MattekitError("rembg is not installed: pip install 'mattekit[bench]' (or use --no-rembg).") from None
    entry = catalog.load().get(args.model, "segment")
    if str(cfg["weights"]).lower().endswith(".onnx"):  # rembg's own release of the weights: used as it is
        path = Path(cfg["weights"])
    else:
        net = load_net(entry, Path(cfg["weights"]))
        size = entry.input.size or (320, 320)
        recipe = {"net": entry.net, "kwargs": entry.kwargs, "size": list(size), "for": "rembg"}
        path = onnx_path(net, entry.output.index, cfg["weights"], recipe)
    if not path.is_file():
        print(f"bench speed: exporting {args.model} to ONNX for rembg (once, cached)...", file=sys.stderr)
        with torch.no_grad():
            export_onnx(net, path, entry.output.index, tuple(size), dynamic_size=False)
    home = work / "u2net_home"
    home.mkdir(exist_ok=True)
    link = home / f"{session}.onnx"
    link.unlink(missing_ok=True)
    try:
        link.symlink_to(path)
    except OSError:
        import shutil

        shutil.copyfile(path, link)
    return session, home


class _Child:
    """One tool in a process of its own, driven chunk by chunk through a pipe: the two tools take turns
    every few images, so a noisy machine's load falls on both alike."""

    def __init__(self, kind: str, cfg: dict, work: Path, env: dict | None = None):
        self.kind = kind
        cfg_path = work / f"{kind}-config.json"
        cfg_path.write_text(json.dumps(cfg), encoding="utf-8")
        self.log = work / f"{kind}-stderr.txt"
        start = time.perf_counter()
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mattekit_bench.speed_tools", kind, str(cfg_path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
            )
        self.ready = self._reply()
        self.ready["startup_s"] = time.perf_counter() - start  # process start, imports, model load

    def _reply(self) -> dict:
        from mattekit.errors import MattekitError

        for line in self.proc.stdout:
            if line.startswith("@@"):
                return json.loads(line[2:])
        self.proc.wait()
        lines = self.log.read_text(errors="replace").strip().splitlines() if self.log.is_file() else []
        raise MattekitError(f"The {self.kind} run failed: {(lines or ['no output'])[-1][:300]}")

    def _send(self, message: dict) -> dict:
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def run(self, files: list[str]) -> dict:
        return self._send({"files": files})

    def finish(self) -> dict:
        result = self._send({"end": True})
        self.proc.wait()
        return result

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def machine_line(args) -> str:
    """The machine as the figures depend on it: CPU, cores, CPU class and the features engines use, torch's version,
    and the engine mattekit's processes plan for the model (:func:`mattekit.engines.plan.decide`, on the device asked
    for), and whether the shipped table was read."""
    import torch

    from mattekit import catalog
    from mattekit.engines import plan
    from mattekit.machine import cpu_count, cpu_info
    from .simulated import deciding

    model, flags = cpu_info() or ("unknown CPU", frozenset())
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16")
    decide = plan.decide if args.simulate_device is None else deciding(args.simulate_device)
    made = decide(catalog.load().get(args.model), args.device)
    table = "hidden" if plan.shipped_hidden() else "shown"
    return (
        f"machine: {model}, {cpu_count()} cores, CPU class {plan.cpu_class()}, features "
        f"{' '.join(f for f in wanted if f in flags) or 'none of ' + '/'.join(wanted)}; torch {torch.__version__}; "
        f"mattekit's engine: {made.engine} {made.precision} on {made.device}, {made.workers}x{made.threads} threads "
        f"(shipped table {table}: {made.why('engine')})"
    )
