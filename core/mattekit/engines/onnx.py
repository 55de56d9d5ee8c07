"""The ONNX engines: the net exported once to ONNX (cached) and run by ONNX Runtime on the CPU in fp32, or an
.onnx release run as it is (:class:`OnnxFileEngine`).

Exports live in ``<weights cache>/onnx`` under a name made of the weights' sha256 and a digest of the
export recipe (net, kwargs, output index, opset, export version, torch minor version), so other weights or
another recipe never reuse a stale file. With :mod:`mattekit.onnx_import` (whose ``OnnxRunner`` the file engine
uses), the only module that imports onnxruntime (when an engine is made; torch's exporter imports onnx).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from .. import heap
from ..errors import MattekitError
from ..fsutil import atomic_write, known_sha256
from ..onnx_import import run_options, session_options, shrinks
from .torch_engine import Selected

ONNX_OPSET = 17
EXPORT_VERSION = 1  # bump when the export recipe changes; older cached exports are then ignored

def _weights_digest(net: nn.Module | None, weights_path: str | Path | None) -> str:
    """sha256 of the weights file (read once: :func:`mattekit.fsutil.known_sha256`), else of ``net``'s state dict."""
    if weights_path is not None:
        return known_sha256(weights_path)
    h = hashlib.sha256()
    for name, t in net.state_dict().items():
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def onnx_path(net: nn.Module | None, index: tuple = (), weights_path: str | Path | None = None,
              recipe: dict | None = None) -> Path:
    """Where the ONNX export of ``net`` (with these weights and this output) is cached. ``net`` may be None
    where ``weights_path`` and ``recipe["net"]`` name both (the path is then known before the net is built)."""
    from ..weights import cache_dir

    recipe = dict(recipe or {})
    if net is None and (weights_path is None or "net" not in recipe):
        raise ValueError("onnx_path needs the net, or both a weights file and recipe['net'].")
    if net is not None:
        recipe.setdefault("net", f"{type(net).__module__}.{type(net).__qualname__}")
    recipe.update(index=list(index), opset=ONNX_OPSET, export=EXPORT_VERSION,
                  torch=torch.__version__.split("+")[0].rsplit(".", 1)[0])
    tag = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:10]
    label = str(recipe.get("net", "model")).split(":")[-1].split(".")[-1].lower()
    return cache_dir() / "onnx" / f"{label}-{_weights_digest(net, weights_path)[:16]}-{tag}.onnx"


def export_onnx(net: nn.Module, path: str | Path, index: tuple = (), example: tuple[int, int] = (64, 64),
                dynamic_size: bool = True) -> Path:
    """Export ``Selected(net, index)`` (fp32, CPU) to ``path`` atomically.

    With ``dynamic_size`` the batch size, height and width stay dynamic; otherwise the graph is
    static at 1 x 3 x ``example`` (shape-dependent pooling, as in SINet, only exports that way).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = Selected(net, index).eval()
    x = torch.rand((1, 3) + tuple(example), generator=torch.Generator().manual_seed(0))
    args = dict(opset_version=ONNX_OPSET, input_names=["input"], output_names=["prediction"])
    if dynamic_size:
        args["dynamic_axes"] = {"input": {0: "n", 2: "h", 3: "w"}, "prediction": {0: "n", 2: "oh", 3: "ow"}}

    def export(tmp: Path) -> None:
        chatter = io.StringIO()
        with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(module, (x,), str(tmp), dynamo=False, **args)
            except TypeError:  # torch < 2.5 has only the TorchScript exporter and no `dynamo` argument
                torch.onnx.export(module, (x,), str(tmp), **args)

    try:
        atomic_write(path, export)
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise MattekitError(f"{type(net).__name__} cannot be exported to ONNX ({reason}); use the torch backend.") from None
    return path


class OnnxEngine:
    """The net ``load()`` makes, exported to ONNX (once, cached at ``path``) and run by ONNX Runtime on the CPU
    in fp32; ``load`` is called only to export (or for :attr:`net`).

    example / dynamic_size: as for :func:`export_onnx`; a static graph takes one image per run.
    threads: ONNX Runtime intra-op threads (default: torch's thread count now). A call from a thread whose torch
    thread count differs (a pipeline worker: :func:`mattekit.pipeline.plan`) runs a session of that many threads,
    made on first use and kept (sessions give the same outputs whatever their threads). label: the model's name in
    the lines that show the export on standard error (:meth:`mattekit.progress.Display.ticking`; default: the file's).
    """

    concurrent = True  # InferenceSession.run is thread-safe
    parallel_calls = True  # calls on several threads, each with its own thread count, run at once

    def __init__(self, load: Callable[[], nn.Module], index: tuple, path: str | Path, *,
                 example: tuple[int, int] = (64, 64), dynamic_size: bool = True, threads: int | None = None,
                 label: str | None = None):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MattekitError(f"ONNX Runtime cannot be imported ({exc}); pip install 'mattekit[onnx]'.") from None

        self.device, self.dtype, self.name, self.path = torch.device("cpu"), torch.float32, "onnx-cpu-fp32", Path(path)
        self._load, self._net = load, None
        self.export = (index, example, dynamic_size)
        if not self.path.is_file():
            from ..progress import Display

            name = label or self.path.name
            with Display().ticking(f"exporting {name} to ONNX once (seconds to a minute; cached for later runs)",
                                   done=f"exported {name} to ONNX in {{time}}."):
                export_onnx(self.net, self.path, *self.export)
        self.run_options = run_options(ort)
        self.threads = int(threads or torch.get_num_threads())
        self._ort, self._lock = ort, threading.Lock()
        self.sessions: dict = {}
        # The first session loads on a thread of its own (ONNX Runtime lets go of the GIL meanwhile), so the caller
        # goes on, e.g. the pipeline reads the first image; the first call waits for it. A process that ends sooner
        # (its first input refused) waits for the load at exit: ONNX Runtime aborts a process stopped while loading.
        loader = ThreadPoolExecutor(1, "mattekit-onnx-load")
        self._loading = loader.submit(self._loaded_session, self.threads)
        loader.shutdown(wait=False)
        self.static_batch = not dynamic_size  # a static graph takes one image at a time

    def _session(self, threads: int):
        return self._ort.InferenceSession(str(self.path), session_options(self._ort, threads),
                                          providers=["CPUExecutionProvider"])

    def _loaded_session(self, threads: int):
        """:meth:`_session`, then the memory its loading freed handed back (:func:`mattekit.heap.hand_back_freed_memory`)."""
        session = self._session(threads)
        heap.hand_back_freed_memory()
        return session

    def _first_session(self):
        """The session loading since the engine was made, once loaded; from a damaged cache file, the net exported
        again once and loaded (MattekitError where that fails too)."""
        try:
            return self._loading.result()
        except Exception as exc:
            self.path.unlink(missing_ok=True)
            export_onnx(self.net, self.path, *self.export)
            try:
                return self._session(self.threads)
            except Exception:
                raise MattekitError(f"ONNX Runtime cannot load the export {self.path.name} ({str(exc).splitlines()[0][:160]}).") from None

    @property
    def session(self):
        """The session with the engine's ``threads``."""
        return self.session_for(self.threads)

    @property
    def input_name(self) -> str:
        return self.session.get_inputs()[0].name

    def session_for(self, threads: int):
        """The session with ``threads`` intra-op threads (made on first use, then kept; the first one, with the
        engine's threads, checked before any other is made)."""
        with self._lock:
            if self.threads not in self.sessions:
                self.sessions[self.threads] = self._first_session()
            if threads not in self.sessions:
                self.sessions[threads] = self._session(threads)
            return self.sessions[threads]

    @property
    def net(self) -> nn.Module:
        """The torch module (fp32, CPU), loaded on first use: a cached export needs none to run."""
        if self._net is None:
            self._net = self._load().to("cpu", torch.float32)
        return self._net

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        feed = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        if self.static_batch and feed.shape[0] > 1:
            return torch.cat([self(x[i : i + 1]) for i in range(feed.shape[0])])
        session = self.session_for(torch.get_num_threads())
        name = session.get_inputs()[0].name
        return torch.from_numpy(session.run(None, {name: feed}, self.run_options[shrinks(feed.shape)])[0])


class OnnxFileEngine:
    """An ONNX file run by ONNX Runtime on the CPU as it is (its own graph, weights and precision): a release
    whose layers :mod:`mattekit.onnx_import` cannot map onto the project's module (BiRefNet's Swin backbone,
    with LayerNorm, as rembg ships it). The graph's first output is the prediction (rembg's sessions take
    ``outputs[0]`` too); a graph with a fixed batch size gets one image per run. There is no torch module.

    threads: ONNX Runtime intra-op threads (default: torch's thread count now).
    """

    concurrent = True  # InferenceSession.run is thread-safe

    def __init__(self, path: str | Path, threads: int | None = None):
        from ..onnx_import import OnnxRunner

        self.threads = int(threads or torch.get_num_threads())
        self.runner = OnnxRunner(path, 0, self.threads)
        self.device, self.dtype, self.net, self.path = torch.device("cpu"), torch.float32, None, Path(path)
        self.name = "onnx-file-cpu-" + ("fp16" if self.runner.input_dtype is np.float16 else "fp32")
        self.static_batch = isinstance(self.runner.session.get_inputs()[0].shape[0], int)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.static_batch and x.shape[0] > 1:
            return torch.cat([self(x[i : i + 1]) for i in range(x.shape[0])])
        return self.runner(x)
