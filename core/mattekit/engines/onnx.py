"""The ONNX engines: the net exported once to ONNX (cached) and run by ONNX Runtime on the CPU in fp32, or an
.onnx release run as it is (:class:`OnnxFileEngine`).

Exports live in ``<weights cache>/onnx`` under a name made of the weights' sha256 and a digest of the
export recipe (net, kwargs, output index, opset, export version, torch minor version), so other weights or
another recipe never reuse a stale file. Also the session and run options every ONNX Runtime run here uses, and
:class:`OnnxRunner`. The only module that imports onnxruntime (when an engine is made; torch's exporter imports
onnx). The engines take a numpy array (and return one) or a torch tensor (and return one): a run whose export is
cached and whose inputs are numpy arrays never imports torch.
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
from importlib import metadata
from typing import TYPE_CHECKING, Callable

import numpy as np

from .. import heap
from ..errors import MattekitError
from ..fsutil import atomic_write
from . import threads as thread_count
from .inputs import as_feed, joined, like

if TYPE_CHECKING:
    import torch.nn as nn

ONNX_OPSET = 17
EXPORT_VERSION = 1  # bump when the export recipe changes; older cached exports are then ignored


def _weights_digest(net: nn.Module | None, weights_path: str | Path | None) -> str:
    """sha256 of the weights file (read once per version: :func:`mattekit.weights.file_sha256`), else of ``net``'s
    state dict."""
    if weights_path is not None:
        from ..weights import file_sha256

        return file_sha256(weights_path)
    h = hashlib.sha256()
    for name, t in net.state_dict().items():
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def onnx_path(
    net: nn.Module | None, index: tuple = (), weights_path: str | Path | None = None, recipe: dict | None = None
) -> Path:
    """Where the ONNX export of ``net`` (with these weights and this output) is cached. ``net`` may be None
    where ``weights_path`` and ``recipe["net"]`` name both (the path is then known before the net is built)."""
    from ..weights import cache_dir

    recipe = dict(recipe or {})
    if net is None and (weights_path is None or "net" not in recipe):
        raise ValueError("onnx_path needs the net, or both a weights file and recipe['net'].")
    if net is not None:
        recipe.setdefault("net", f"{type(net).__module__}.{type(net).__qualname__}")
    recipe.update(index=list(index), opset=ONNX_OPSET, export=EXPORT_VERSION, torch=_torch_minor())
    tag = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:10]
    label = str(recipe.get("net", "model")).split(":")[-1].split(".")[-1].lower()
    return cache_dir() / "onnx" / f"{label}-{_weights_digest(net, weights_path)[:16]}-{tag}.onnx"


def _torch_minor() -> str:
    """torch's version without its patch level and build ("2.13"), read without importing torch."""
    return metadata.version("torch").split("+")[0].rsplit(".", 1)[0]


def export_onnx(
    net: nn.Module, path: str | Path, index: tuple = (), example: tuple[int, int] = (64, 64), dynamic_size: bool = True
) -> Path:
    """Export ``Selected(net, index)`` (fp32, CPU) to ``path`` atomically.

    With ``dynamic_size`` the batch size, height and width stay dynamic; otherwise the graph is
    static at 1 x 3 x ``example`` (shape-dependent pooling, as in SINet, only exports that way).
    """
    import torch

    from .torch_engine import Selected

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = Selected(net, index).eval()
    x = torch.rand((1, 3) + tuple(example), generator=torch.Generator().manual_seed(0))
    args = dict(opset_version=ONNX_OPSET, input_names=["input"], output_names=["prediction"])
    if dynamic_size:
        args["dynamic_axes"] = {"input": {0: "n", 2: "h", 3: "w"}, "prediction": {0: "n", 2: "oh", 3: "ow"}}

    def export(tmp: Path) -> None:
        chatter = io.StringIO()
        with (
            warnings.catch_warnings(),
            torch.no_grad(),
            contextlib.redirect_stdout(chatter),
            contextlib.redirect_stderr(chatter),
        ):
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(module, (x,), str(tmp), dynamo=False, **args)
            except TypeError:  # torch < 2.5 has only the TorchScript exporter and no `dynamo` argument
                torch.onnx.export(module, (x,), str(tmp), **args)

    try:
        atomic_write(path, export)
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise MattekitError(
            f"{type(net).__name__} cannot be exported to ONNX ({reason}); use the torch backend."
        ) from None
    return path


class OnnxEngine:
    """The net ``load()`` makes, exported to ONNX (once, cached at ``path``) and run by ONNX Runtime on the CPU
    in fp32; ``load`` is called only to export (or for :attr:`net`).

    example / dynamic_size: as for :func:`export_onnx`; a static graph takes one image per run.
    threads: ONNX Runtime intra-op threads (default: this thread's count, :func:`mattekit.engines.threads.count`).
    A call from a thread whose count differs (a pipeline worker: :func:`mattekit.running.layout.plan`) runs a session of that many threads,
    made on first use and kept (sessions give the same outputs whatever their threads). label: the model's name in
    the lines that show the export on standard error (:meth:`mattekit.progress.Display.ticking`; default: the file's).
    """

    concurrent = True  # InferenceSession.run is thread-safe
    takes_arrays = True  # numpy in, numpy out
    parallel_calls = True  # calls on several threads, each with its own thread count, run at once

    def __init__(
        self,
        load: Callable[[], nn.Module],
        index: tuple,
        path: str | Path,
        *,
        example: tuple[int, int] = (64, 64),
        dynamic_size: bool = True,
        threads: int | None = None,
        label: str | None = None,
    ):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MattekitError(f"ONNX Runtime cannot be imported ({exc}); pip install 'mattekit[onnx]'.") from None

        self.device_type, self.name, self.path = "cpu", "onnx-cpu-fp32", Path(path)
        self._load, self._net = load, None
        self.export = (index, example, dynamic_size)
        if not self.path.is_file():
            from ..progress import Display

            name = label or self.path.name
            with Display().ticking(
                f"exporting {name} to ONNX once (seconds to a minute; cached for later runs)",
                done=f"exported {name} to ONNX in {{time}}.",
            ):
                export_onnx(self.net, self.path, *self.export)
        self.run_options = run_options(ort)
        self.threads = int(threads or thread_count.count())
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
        return self._ort.InferenceSession(
            str(self.path), session_options(self._ort, threads), providers=["CPUExecutionProvider"]
        )

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
                raise MattekitError(
                    f"ONNX Runtime cannot load the export {self.path.name} ({str(exc).splitlines()[0][:160]})."
                ) from None

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

    device = property(lambda self: _cpu_device(), doc="torch.device('cpu') (imports torch).")
    dtype = property(lambda self: _float32(), doc="torch.float32 (imports torch).")

    @property
    def net(self) -> nn.Module:
        """The torch module (fp32, CPU), loaded on first use: a cached export needs none to run."""
        if self._net is None:
            import torch

            self._net = self._load().to("cpu", torch.float32)
        return self._net

    def __call__(self, x):
        """N x 3 x h x w float32 (numpy array or torch tensor) -> the prediction, of the same kind."""
        feed = as_feed(x, np.float32)
        if self.static_batch and feed.shape[0] > 1:
            return joined([self(x[i : i + 1]) for i in range(feed.shape[0])])
        session = self.session_for(thread_count.count())
        name = session.get_inputs()[0].name
        return like(x, session.run(None, {name: feed}, self.run_options[shrinks(feed.shape)])[0])


def _cpu_device():
    import torch

    return torch.device("cpu")


def _float32():
    import torch

    return torch.float32


def session_options(ort, threads: int | None = None):
    """ONNX Runtime session options for mattekit's CPU runs: all graph optimisations, ``threads`` intra-op threads
    (default: this thread's count, :func:`mattekit.engines.threads.count`), and threads that sleep between calls instead of spinning: spinning
    took 0.76-0.81 CPU s per u2netp call against 0.63-0.64 without, at the same or better images/s, and the
    pipeline's decoding and finishing threads need those cores (issue 32's whole commands on the 2-vCPU AMD EPYC,
    2026-11-24).
    No memory pattern: with it a session's second run lays out one more block for the planned pattern beside the
    arena the first run filled (u2netp at 320²: 49,000 more page faults, about 190 MB held), for the same steady speed;
    without it 50 photos' `remove` peaked at 736 against 922 MiB, the same bytes (the 2-vCPU AMD EPYC with AVX-512,
    2026-11-27)."""
    options = ort.SessionOptions()
    options.enable_mem_pattern = False
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = int(threads or thread_count.count())
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


SHRINK_ABOVE = 512 * 512  # input pixels (h x w) above which a run hands its scratch memory back


def run_options(ort) -> dict:
    """ONNX Runtime run options for mattekit's CPU runs, keyed by ``shrink`` (pick with :func:`shrinks`). ``True``:
    the memory arena gives back what the run used once it ends (IS-Net at 1024²: the process holds 0.8 GB after a
    run instead of 1.4-1.6 GB), so a big photo's finish does not sit on top of the network's scratch memory.
    ``False``: the arena keeps it for the next run, which would otherwise fault the same pages in again, zeroed
    (u2netp at 320²: about 64,000 page faults, 250 MB, and 0.15 CPU s of the kernel's time per call; AVX2,
    2026-11-24: docs/quality.md "The default's rule")."""
    shrunk = ort.RunOptions()
    shrunk.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return {False: ort.RunOptions(), True: shrunk}


def shrinks(shape) -> bool:
    """Whether a run on an input of ``shape`` (... x h x w) hands its scratch memory back: inputs of more than
    ``SHRINK_ABOVE`` pixels, whose scratch is hundreds of megabytes (IS-Net, BiRefNet at 1024²)."""
    return shape[-1] * shape[-2] > SHRINK_ABOVE


class OnnxRunner:
    """An ONNX file run by ONNX Runtime on the CPU, for architectures without an import mapping.

    ``OnnxRunner(path, output=0)(x)``: x a 1 x 3 x h x w float32 array or tensor (already preprocessed as
    the model expects) -> the selected output as float32, of the same kind.
    """

    def __init__(self, path: str | Path, output: int = 0, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise MattekitError("Running ONNX files needs ONNX Runtime: pip install 'mattekit[onnx]'.") from None
        options, self.run_options = session_options(ort, threads), run_options(ort)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise MattekitError(
                f"ONNX Runtime cannot load {Path(path).name} ({str(exc).splitlines()[0][:160]})."
            ) from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        self.output_name = self.session.get_outputs()[output].name

    def __call__(self, x):
        feed = {self.input_name: as_feed(x, self.input_dtype)}
        (out,) = self.session.run([self.output_name], feed, self.run_options[shrinks(x.shape)])
        return like(x, np.asarray(out, dtype=np.float32))


class OnnxFileEngine:
    """An ONNX file run by ONNX Runtime on the CPU as it is (its own graph, weights and precision): a release
    whose layers :mod:`mattekit.onnx_import` cannot map onto the project's module (BiRefNet's Swin backbone,
    with LayerNorm, as rembg ships it). The graph's first output is the prediction (rembg's sessions take
    ``outputs[0]`` too); a graph with a fixed batch size gets one image per run. There is no torch module.

    threads: ONNX Runtime intra-op threads (default: this thread's count, :func:`mattekit.engines.threads.count`).
    """

    concurrent = True  # InferenceSession.run is thread-safe
    takes_arrays = True  # numpy in, numpy out
    device = OnnxEngine.device
    dtype = OnnxEngine.dtype

    def __init__(self, path: str | Path, threads: int | None = None):
        self.threads = int(threads or thread_count.count())
        self.runner = OnnxRunner(path, 0, self.threads)
        self.device_type, self.net, self.path = "cpu", None, Path(path)
        self.name = "onnx-file-cpu-" + ("fp16" if self.runner.input_dtype is np.float16 else "fp32")
        self.static_batch = isinstance(self.runner.session.get_inputs()[0].shape[0], int)

    def __call__(self, x):
        """N x 3 x h x w float32 (numpy array or torch tensor) -> the prediction, of the same kind."""
        if self.static_batch and x.shape[0] > 1:
            return joined([self(x[i : i + 1]) for i in range(x.shape[0])])
        return self.runner(x)
