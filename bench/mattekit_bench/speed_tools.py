"""The tool processes of ``bench speed``: rembg's loop and mattekit's shipped runner, each loading its model
once, then answering one chunk of files at a time (``python -m mattekit_bench.speed_tools KIND CONFIG``)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .memory import current_rss, peak_rss

STAGES = ("read", "infer", "write")  # decode + prepare, the network, finish + encode


class _RembgTool:
    """The loop of ``rembg p -m MODEL IN OUT`` (rembg's CLI defaults), instrumented per stage."""

    def __init__(self, cfg: dict):
        import inspect
        from importlib.metadata import version

        from rembg import bg, new_session

        try:  # rembg p skips non-images with filetype (its CLI extra); our folder is filtered by suffix already
            import filetype
        except ImportError:
            filetype = None
        self.session = new_session(cfg["session"])
        self.bg, self.filetype, self.out = bg, filetype, Path(cfg["out"])
        self.versions = {"version": version("rembg"), "onnxruntime": version("onnxruntime")}
        self.spent = dict.fromkeys(("decode", "preprocess", "infer", "total"), 0.0)
        self.images = 0

        def timed(name, fn):
            def wrapper(*a, **k):
                start = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    self.spent[name] += time.perf_counter() - start

            return wrapper

        s = self.session
        s.inner_session.run = timed("infer", s.inner_session.run)
        s.normalize = timed("preprocess", s.normalize)
        bg.fix_image_orientation = timed("decode", bg.fix_image_orientation)  # Image.open is lazy: pixels decode here
        defaults = dict(
            alpha_matting=False,
            alpha_matting_foreground_threshold=240,
            alpha_matting_background_threshold=10,
            alpha_matting_erode_size=10,
            only_mask=False,
            post_process_mask=False,
            decontaminate=False,
            vitmatte=False,
            bgcolor=(0, 0, 0, 0),
        )
        accepted = inspect.signature(bg.remove).parameters
        self.kwargs = {k: v for k, v in defaults.items() if k in accepted}

    def run(self, files: list[str]) -> dict:
        cpu0, loop0, done = time.process_time(), time.perf_counter(), 0
        for name in files:
            path = Path(name)
            if self.filetype is not None:
                kind = self.filetype.guess(path)
                if kind is None or "image" not in kind.mime:
                    continue
            start = time.perf_counter()
            result = self.bg.remove(path.read_bytes(), session=self.session, **self.kwargs)
            (self.out / path.name).with_suffix(".png").write_bytes(result)
            self.spent["total"] += time.perf_counter() - start
            done += 1
        self.images += done
        return {"images": done, "loop_s": time.perf_counter() - loop0, "cpu_s": time.process_time() - cpu0}

    def finish(self) -> dict:
        t, n = self.spent, max(1, self.images)
        stages = {
            "read": t["decode"] + t["preprocess"],
            "infer": t["infer"],
            "write": t["total"] - t["decode"] - t["preprocess"] - t["infer"],
        }
        return dict(self.versions, maxrss_mb=peak_rss() / 2**20, stages_ms={k: 1000 * v / n for k, v in stages.items()})


class _MattekitTool:
    """What ``mattekit remove --no-matting`` does on a folder: the shipped runner (:mod:`mattekit.running.runner`)
    with the remove task, timed per pipeline stage."""

    def __init__(self, cfg: dict):
        import torch

        from mattekit import runtime
        from mattekit.options import model_choice
        from mattekit.running import layout, pipeline
        from mattekit.running.runner import Runner
        from mattekit.tasks import registry
        from . import simulated

        if cfg.get("threads"):
            torch.set_num_threads(cfg["threads"])  # also what an ONNX Runtime session is made with
        self.cfg, self.torch = cfg, torch
        self.model = model_choice(cfg["model"], "segment")
        self.simulated = simulated
        if cfg.get("simulate") is not None:  # --simulate-device: this process's models on a simulated GPU
            simulated.install(cfg["simulate"])
        self.predictor = runtime.ModelCache().get(
            self.model, cfg["device"], cfg["weights"], backend=cfg["backend"], precision=cfg["precision"]
        )
        self.timings = pipeline.Timings()
        task = registry.get("remove")
        options = task.make_options(
            {
                "model": self.model.model,
                "refine": bool(cfg["refine"]),
                "matting": False,
                "result": "alpha" if cfg.get("masks") else "rgba",
            }
        )
        self.runner = Runner(task, {"model": self.predictor}, options)
        self.settings = layout.plan(self.predictor, cfg.get("workers"), cfg.get("threads"), cfg.get("batch"))
        self.samples, self.images, self.failed = [(0, current_rss() / 2**20)], 0, []
        self.out = Path(cfg["out"])
        self.held_s = 0.0  # seconds a simulated device was held during the loops

    def run(self, files: list[str]) -> dict:
        import threading

        every, lock = max(1, len(files) // 10), threading.Lock()

        def progress(done, item):
            if self.cfg.get("sample") and (done % every == 0 or done in (10, 100)):
                with lock:
                    self.samples.append((self.images + done, current_rss() / 2**20))

        cpu0, held0 = time.process_time(), self.simulated.figures()["held_s"]
        s = self.settings
        planned = [(Path(f), self.out / f"{Path(f).stem}.png") for f in files]
        outcome = self.runner.files(
            planned,
            progress=progress,
            timings=self.timings,
            threads=s["threads"],
            workers=s["workers"],
            batch=s["batch"],
        )
        self.images += outcome.done
        self.failed += [str(source) for (source, _), _ in outcome.failed]
        self.held_s += self.simulated.figures()["held_s"] - held0
        return {"images": outcome.done, "loop_s": outcome.seconds, "cpu_s": time.process_time() - cpu0}

    def finish(self) -> dict:
        torch, predictor = self.torch, self.predictor
        self.samples.append((self.images + len(self.failed), current_rss() / 2**20))
        s = self.settings
        result = {
            "maxrss_mb": peak_rss() / 2**20,
            "engine": predictor.backend,
            "failed": self.failed,
            "stages_ms": {k: 1000 * self.timings.seconds.get(k, 0.0) / max(1, self.images) for k in STAGES},
            "plan": f"{s['workers']} workers x {s['threads'] or 'default'} thread(s), batch {s['batch']}, "
            f"{s.get('readers', 1)} reader(s)",
            "rss_samples": sorted(self.samples),
            "device_name": str(predictor.device),
        }
        if self.cfg.get("simulate") is not None:
            done = self.simulated.figures()
            result["simulated"] = {
                "ms": self.cfg["simulate"],
                "held_s": self.held_s,
                "batches": done["batches"],
                "images": done["images"],
            }
        elif predictor.device.type == "cuda":
            result["device_name"] = torch.cuda.get_device_name(predictor.device)
            result["cuda_peak_mb"] = torch.cuda.max_memory_allocated(predictor.device) / 2**20
            compiled = getattr(predictor.engine, "compiled", None)
            result["compiled"] = compiled.describe() if compiled is not None else "eager (MATTEKIT_COMPILE=off)"
        if self.cfg.get("check"):  # after the measurement: the engine against a fresh eager PyTorch net
            result["check"] = self._check()
        return result

    def _check(self) -> dict:
        torch = self.torch
        from mattekit import io
        from mattekit.engines import inputs, load_net, select_output

        entry = self.model.entry
        net = load_net(entry, Path(self.cfg["weights"]))
        files = self.cfg.get("check_files") or []
        worst, previous = 0.0, torch.get_num_threads()
        torch.set_num_threads(self.settings["threads"] or previous)  # the engine's throughput path
        with torch.inference_mode():
            for name in files:
                x = inputs.prepare(entry, io.read_image(name).pixels[..., :3])
                ref = select_output(net(x), entry.output.index).float()
                got = self.predictor.engine(x).float().cpu()
                worst = max(worst, float((got - ref).abs().max()))
        torch.set_num_threads(previous)
        return {"images": len(files), "max_abs": worst}


def _child(argv: list[str]) -> int:
    """A tool process: READY, then one reply per chunk of files, then the final figures (lines starting @@)."""
    kind, cfg_path = argv
    cfg = json.loads(Path(cfg_path).read_text(encoding="utf-8"))
    out = sys.stdout
    sys.stdout = sys.stderr  # libraries' prints must not mix with the replies

    def say(obj: dict) -> None:
        out.write("@@" + json.dumps(obj) + "\n")
        out.flush()

    tool = _RembgTool(cfg) if kind == "rembg" else _MattekitTool(cfg)
    say({})  # ready: the model loaded
    for line in sys.stdin:
        message = json.loads(line)
        if message.get("end"):
            say(tool.finish())
            return 0
        say(tool.run(message["files"]))
    return 0


if __name__ == "__main__" and len(sys.argv) == 3:
    sys.exit(_child(sys.argv[1:]))
