"""Running networks: threads, preprocessing per catalog, a Predictor per loaded model (its engine from
``mattekit.engines``), and ModelCache, the loaded models of whoever owns it (a CLI run, the worker, the API).

A model that runs on ONNX Runtime on the CPU (:func:`mattekit.engines.policy.plain_cpu_onnx`) with a plain net family
(:func:`mattekit.nets.plain`) and a cached export is loaded and run without importing torch: its inputs and
predictions are numpy arrays. Every other model's are torch tensors."""
from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import catalog as catalog_mod
from . import engines, nets, settings, weights
from .ops.pixels import quantise
from .ops.resizing import resize
from .engines import gpus, policy, threads
from .catalog import ModelEntry
from .errors import MattekitError
from .nets.descriptor import own_size

if TYPE_CHECKING:
    import torch


def set_threads(count: int | None) -> None:
    """Limit the calling thread's CPU threads for network calls (torch's too where loaded; None = leave as is)."""
    if count:
        threads.set_count(int(count))


def input_size(entry: ModelEntry, height: int, width: int) -> tuple[int, int]:
    """The (H, W) in pixels ``entry``'s network sees for an image of ``height`` x ``width`` pixels (its
    family's rule, :attr:`mattekit.nets.descriptor.Family.input_size`, on the catalog's ``[input]``)."""
    if nets.plain(entry.net):
        return own_size(entry.input, height, width)
    return nets.family(entry.net).input_size(entry.input, height, width)


def prepare_array(entry: ModelEntry, image: np.ndarray) -> np.ndarray:
    """sRGB HxWx3 (float32 in [0,1], or uint8/uint16: see :func:`mattekit.ops.resizing.resize`, which shrinks a
    large integer photo without a full-size float copy) -> 1x3xhxw float32 array as the catalog entry wants it.
    Where the model's reference reads 8-bit pictures (``eight_bit``) every source is rounded to 8-bit levels first."""
    spec = entry.input
    if spec.eight_bit:  # one quantisation for every source: a float on the 8-bit grid gives the 8-bit answer
        image = quantise(image[..., :3], 8)
    image = resize(image[..., :3], *input_size(entry, *image.shape[:2]), spec.resize)
    if spec.quantize_uint8:
        image = np.floor(np.clip(image, 0, 1) * 255.0) / 255.0
    if spec.divide_by_max:
        image = image / max(float(image.max()), 1e-6)
    if spec.colour_order == "BGR":
        image = image[..., ::-1]
    image = (image - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    image = image * np.float32(spec.extra_scale * spec.value_scale)
    return np.ascontiguousarray(image.transpose(2, 0, 1))[None]


def prepare(entry: ModelEntry, image: np.ndarray) -> torch.Tensor:
    """:func:`prepare_array` as a 1x3xhxw float32 torch tensor (sharing its memory)."""
    import torch

    return torch.from_numpy(prepare_array(entry, image))


def runs_as_is(entry: ModelEntry) -> bool:
    """An .onnx file for ``entry`` runs through ONNX Runtime as it is (:func:`mattekit.engines.from_onnx_file`)
    when the model takes a fixed input size and its module has layers :mod:`mattekit.onnx_import` cannot map
    (looked at on the meta device: nothing allocated). The catalog's pre- and postprocessing apply either way."""
    import torch

    from .onnx_import import unmapped_layer

    if entry.input.size is None or entry.recurrent:
        return False
    with torch.device("meta"):
        probe = nets.build(entry.net, **entry.kwargs)
    return unmapped_layer(probe) is not None


def without_torch(entry: ModelEntry, device, backend: str | None = "auto", precision: str | None = "auto") -> bool:
    """Whether ``entry`` runs on ONNX Runtime on the CPU in fp32 with a plain net family: then it loads and runs
    without importing torch (where its export is cached). ``device``: a name, None or a torch.device."""
    return nets.plain(entry.net) and not entry.recurrent and policy.plain_cpu_onnx(
        None if device is None else str(device), backend, precision, entry.name, entry.cpu_bf16)


class Predictor:
    """One loaded model on one device. ``__call__(x)`` runs the net and returns the prediction; calls
    from several threads at once are fine (the pipeline's workers do). ``lock`` is taken only by tiled
    super-resolution, which sizes its tiles from free memory and so runs one image at a time per model.

    The prediction is the catalog's chosen output after its activation: N x C x h x w
    probabilities in [0,1] for segmentation/matting, the image for SR (value scale undone),
    depth for depth models; a numpy array for a numpy input, else a torch tensor. :meth:`prepare` gives the
    input the engine takes as it is: numpy arrays for the ONNX engines, torch tensors for the others.
    ``device_type``: "cpu", "cuda" or "mps"; ``device`` / ``dtype``: the torch device and dtype (import torch).
    """

    def __init__(self, entry: ModelEntry, device: str | torch.device | None = "auto",
                 weights_path: str | Path | None = None, backend: str | None = "auto", precision: str | None = "auto"):
        self.entry = entry
        path = weights.given_file(weights_path) if weights_path else weights.model_file(entry.name, entry.files)
        self.weights_path = path
        self.lock = threading.Lock()
        self._provenance: dict | None = None
        example = input_size(entry, 64, 64)
        # The engine runs the net (see mattekit.engines): backend "torch" | "onnx" | "auto", precision auto/fp32/fp16/bf16.
        made = dict(index=entry.output.index, weights_path=path, recipe={"net": entry.net, "kwargs": entry.kwargs},
                    example=tuple(-(-v // entry.pad_multiple) * entry.pad_multiple for v in example),
                    dynamic_size=entry.input.size is None)
        onnx_here = without_torch(entry, device, backend, precision)
        exported = onnx_here and engines.onnx_export_path(**made).is_file()  # then not a release to run as it is
        if path.suffix.lower() == ".onnx" and not exported and runs_as_is(entry):  # e.g. rembg's BiRefNet files
            self.engine = engines.from_onnx_file(path)
        elif onnx_here:
            self.engine = engines.onnx_engine(lambda: self._loaded_net(path), label=entry.name, **made)
        else:
            device, backend, _ = engine_plan(entry, device, backend, precision)  # "auto": this model's engine here
            self.engine = engines.create(lambda: self._loaded_net(path), device, backend=backend, precision=precision,
                                          half_ok=entry.half, cpu_bf16_ok=entry.cpu_bf16, label=entry.name, **made)
        self.backend = self.engine.name
        self.takes_arrays = bool(getattr(self.engine, "takes_arrays", False))

    device_type = property(lambda self: self.engine.device_type, doc='"cpu", "cuda" or "mps".')
    device = property(lambda self: self.engine.device, doc="The torch.device (imports torch).")
    dtype = property(lambda self: self.engine.dtype, doc="The torch dtype the net runs in (imports torch).")

    @property
    def family(self):
        """The net family's descriptor (:class:`mattekit.nets.descriptor.Family`; imports its module, and torch)."""
        return nets.family(self.entry.net)

    @property
    def net(self):
        """The torch module the engine runs (None for an .onnx release run as it is); an ONNX engine whose export
        was cached builds it only now."""
        return self.engine.net

    def _loaded_net(self, path: Path):
        """The entry's net (eval mode, fp32, CPU) with the weights at ``path``; one sentence when they do not fit."""
        import torch

        net = nets.build(self.entry.net, **self.entry.kwargs)
        try:
            state = weights.load_state_dict_file(path, net, self.family.trace)
            # fp32 checkpoints become the parameters themselves (no second copy while loading); others are cast
            fp32 = all(t.dtype is torch.float32 for t in state.values() if t.is_floating_point())
            net.load_state_dict(state, strict=True, assign=fp32)
            del state
        except (RuntimeError, ValueError, OSError, EOFError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MattekitError(f"Weights file {path.name} does not fit model '{self.entry.name}' ({first[:160]}).") from None
        return net.eval()

    def provenance(self) -> dict:
        """:func:`mattekit.provenance.model_record` of this model (its weights file hashed once)."""
        if self._provenance is None:
            from .fsutil import known_sha256
            from .provenance import model_record

            self._provenance = model_record(self.entry, self.weights_path, known_sha256(self.weights_path),
                                            weights.pinned_sha256s(self.entry.files))
        return dict(self._provenance)

    def __call__(self, x):
        """N x 3 x h x w input (numpy array or torch tensor) -> the prediction, of the same kind."""
        if isinstance(x, np.ndarray) and self.takes_arrays and nets.plain(self.entry.net):
            return self._activate_array(self.engine(x))
        import torch

        if isinstance(x, np.ndarray):
            return self(torch.from_numpy(x)).cpu().numpy()
        with torch.inference_mode():
            return self._activate(self.engine(x))

    def _activate(self, out: torch.Tensor) -> torch.Tensor:
        """The net's selected output -> the prediction (activation, normalisation, value scale per catalog)."""
        import torch

        out = self.family.as_maps(out).float()
        spec = self.entry.output
        if spec.activation == "sigmoid":
            out = torch.sigmoid(out * spec.logit_scale)
        elif spec.activation.startswith("softmax:"):
            k = int(spec.activation.split(":")[1])
            out = torch.softmax(out * spec.logit_scale, dim=1)[:, k : k + 1]
        if spec.normalize == "minmax":
            lo = out.amin(dim=(1, 2, 3), keepdim=True)
            hi = out.amax(dim=(1, 2, 3), keepdim=True)
            out = (out - lo) / (hi - lo).clamp_min(1e-8)
        if spec.quantize_uint8:
            out = torch.floor(out * 255.0) / 255.0
        if spec.value_scale != 1.0:
            out = out / spec.value_scale
        return out

    def _activate_array(self, out: np.ndarray) -> np.ndarray:
        """:meth:`_activate` for a plain family's output as a numpy array (the same steps in float32: minmax and
        the 8-bit rounding give the same values, a sigmoid or softmax agrees to float32 rounding)."""
        out = out.astype(np.float32, copy=False)
        spec = self.entry.output
        if spec.activation == "sigmoid":
            out = 1.0 / (1.0 + np.exp(-(out * np.float32(spec.logit_scale))))
        elif spec.activation.startswith("softmax:"):
            k = int(spec.activation.split(":")[1])
            scaled = out * np.float32(spec.logit_scale)
            scaled = np.exp(scaled - scaled.max(axis=1, keepdims=True))
            out = (scaled / scaled.sum(axis=1, keepdims=True))[:, k : k + 1]
        if spec.normalize == "minmax":
            lo = out.min(axis=(1, 2, 3), keepdims=True)
            hi = out.max(axis=(1, 2, 3), keepdims=True)
            out = (out - lo) / np.maximum(hi - lo, np.float32(1e-8))
        if spec.quantize_uint8:
            out = np.floor(out * np.float32(255.0)) / np.float32(255.0)
        if spec.value_scale != 1.0:
            out = out / np.float32(spec.value_scale)
        return out

    def step(self, x: torch.Tensor, state: tuple | None) -> tuple[torch.Tensor, tuple]:
        """One frame of a recurrent model (``entry.recurrent``): ``x`` as :meth:`prepare` makes it and the
        state the previous frame returned (None: a clip's first frame). Returns (prediction as
        :meth:`__call__` gives it, the new state). The net picks its own working resolution (RVM: its
        authors' downsample ratio for the frame size). Frames must come in order, one at a time."""
        import torch

        if not self.entry.recurrent or self.family.step is None:
            raise MattekitError(f"Model '{self.entry.name}' is not a recurrent video model.")
        with torch.inference_mode():
            net = self.engine.net
            param = next(net.parameters())
            outputs, state = self.family.step(net, x.to(param.device, param.dtype), state)
            prediction = outputs
            for i in self.entry.output.index:
                prediction = prediction[i]
            return self._activate(prediction), state

    def prepare(self, image: np.ndarray):
        """sRGB H x W x 3|4 float32 [0,1] -> the 1 x 3 x h x w input this model wants (see :func:`prepare_array`):
        a numpy array where the engine takes one (:attr:`takes_arrays`), else a torch tensor."""
        x = prepare_array(self.entry, image[..., :3])
        if self.takes_arrays:
            return x
        import torch

        return torch.from_numpy(x)

    def predict_map(self, image: np.ndarray) -> np.ndarray:
        """sRGB HxWx3 [0,1] -> the prediction's first channel at network resolution, float32 h x w."""
        return self(prepare_array(self.entry, image))[0, 0]


def engine_plan(entry: ModelEntry, device: str | torch.device | None = "auto", backend: str | None = "auto",
                precision: str | None = "auto") -> tuple[torch.device, str, torch.dtype]:
    """(device, backend "torch" | "onnx", dtype) that ``entry`` runs with, as asked: the device checked
    (an absent CUDA GPU is one sentence, never a silent CPU), the one backend of a net family that runs on one
    winning (SAM 2.1: torch), ``auto`` the CPU where the onnx backend is asked for, the precision by the policy
    (:func:`mattekit.engines.resolve_precision`). ``auto`` takes the torch engine where the policy gives the model a
    lower precision here (bf16 on a CPU with native bf16 for a model the catalog marks ``cpu_bf16``: ONNX Runtime runs
    fp32 only), else the engine measured faster. Loads nothing; imports torch (:func:`without_torch` answers without
    it where it can)."""
    import torch

    backend = pinned_backend(entry) or backend
    dev = device if isinstance(device, torch.device) else engines.select_device(device, backend)
    wanted = engines.resolve_precision(precision, dev, entry.half, entry.cpu_bf16)
    lower = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(wanted, precision)
    backend = engines.resolve_backend(backend, dev, entry.name, lower)
    return dev, backend, engines.engine_precision(backend, precision, dev, entry.half, entry.cpu_bf16)


def pinned_backend(entry: ModelEntry) -> str | None:
    """The one backend ``entry``'s net family runs on ("torch" for SAM 2.1), or None where it runs on either."""
    if nets.plain(entry.net):
        return None
    backends = nets.family(entry.net).backends
    return backends[0] if len(backends) == 1 else None


def check_memory(entry: ModelEntry, device: str | torch.device) -> None:
    """MattekitError (one sentence) when ``entry`` runs on the CPU (``device``: a torch.device or a name) and this
    machine has less memory free than the catalog's ``memory_gb`` for it (the peak of a whole ``remove`` of a 50 MP
    photo, measured: the big-photo BiRefNets take 13-13.5 GiB), rather than a machine that swaps or a process the
    kernel kills."""
    need = entry.memory_gb
    if need is None or str(device).split(":")[0] != "cpu":
        return
    free = engines.available_memory("cpu") / 2 ** 30
    if free < need:
        raise MattekitError(f"Model '{entry.name}' needs about {need:g} GiB of memory on the CPU and {free:.1f} GiB is "
                            f"free; close other programs, or use a model that runs at 1024 px (birefnet-general, "
                            f"birefnet-matting).")


class ModelCache:
    """Loaded predictors, each loaded once, owned by whoever made the cache (a CLI run, the worker,
    the Python API). Keyed by model name, device, weights file, backend and precision; thread-safe."""

    def __init__(self):
        self._loaded: dict[tuple, Predictor] = {}
        self._lock = threading.Lock()

    def get(self, model: str | ModelEntry | None, task: str | None = None, device: str | torch.device | None = "auto",
            weights_path: str | Path | None = None, backend: str | None = "auto",
            precision: str | None = "auto") -> Predictor:
        """The Predictor for ``model`` (None: the catalog's default ``task`` model), loaded on first use."""
        cat = catalog_mod.load()
        if isinstance(model, ModelEntry):
            entry = model
        elif model is None:
            entry = cat.default(task)
        else:
            entry = cat.get(model, task)
        if without_torch(entry, device, backend, precision):
            dev, backend, dtype_name = "cpu", "onnx", "fp32"
        else:
            dev, backend, dtype = engine_plan(entry, device, backend, precision)
            dtype_name = policy.dtype_name(dtype)
        key = (entry.name, str(dev), str(weights_path or ""), backend, dtype_name)
        with self._lock:
            if key not in self._loaded:
                check_memory(entry, dev)  # before its weights are looked for or loaded
                if entry.notice and entry.name not in _NOTICES_SHOWN:
                    print(f"mattekit: {entry.notice}", file=sys.stderr)
                    _NOTICES_SHOWN.add(entry.name)
                self._loaded[key] = Predictor(entry, dev, weights_path, backend, precision)
                predictor = self._loaded[key]
                gpus.say_if_idle(entry.name, str(device or "auto"), predictor.device_type, predictor.backend)
                unlicensed = cat.unlicensed_notice(entry, str(settings.config_path()))  # once it runs: not before an
                if unlicensed and settings.first_time(f"unlicensed-{entry.name}"):  # error; once per user
                    print(f"mattekit: {unlicensed}", file=sys.stderr)
            return self._loaded[key]

    def for_task(self, task, options, given: set[str] = frozenset(), loaded: dict | None = None) -> dict:
        """{model option: Predictor} for one run of ``task`` (a registry Task) with ``options``: the models
        ``task.models_needed(options, given)`` names, each from this cache (or from ``loaded``, models the
        caller already holds). A model whose weights are missing says what the user can do instead."""
        from .errors import WeightsError

        table = task.option_table()
        device = getattr(options, "device", "auto")
        models = {}
        for name, catalog_task in task.models_needed(options, given).items():
            if loaded and name in loaded:
                models[name] = loaded[name]
                continue
            weights_path = getattr(options, name.replace("model", "weights"), None)
            try:
                models[name] = self.get(getattr(options, name), catalog_task, device=device, weights_path=weights_path)
            except WeightsError as exc:
                raise _missing(exc, getattr(options, name), catalog_task, table[name]) from None
        return models

    def loaded(self) -> list[Predictor]:
        with self._lock:
            return list(self._loaded.values())

    def clear(self) -> None:
        """Drop every model (frees memory)."""
        with self._lock:
            self._loaded.clear()


def _missing(exc, model: str | None, catalog_task: str, option) -> MattekitError:
    """The error for a run whose ``model`` (None: the default) lacks its weights (``exc``): one short sentence, the
    fix first (register the mirror's converted copy, pick a model that is here with ``option``'s flag, or get the
    weights; each with ``option.missing``, what the user can do instead, where there is one), then the
    model it is about; the places tried are ``exc``'s detail, which the CLI prints with --debug."""
    from .errors import WeightsError
    from .weights.download import offline

    entry = catalog_mod.load().get(model, catalog_task) if model else catalog_mod.load().default(catalog_task)
    here = [e.name for e, _ in catalog_mod.load().available(catalog_task)]
    missing = f"the weights of {entry.name} cannot be had here"
    if exc.fix:
        fix = f"Register the mirror's converted copy with {exc.fix}"
    elif here:
        fix = f"Pick a {catalog_task} model that is here with {option.flag} NAME ({', '.join(here)})"
        fix += f", or {option.missing}" if option.missing else ""
    else:
        fix = ("Unset MATTEKIT_OFFLINE or set MATTEKIT_MIRROR to a folder holding them" if offline()
               else "Set MATTEKIT_MIRROR to a folder holding them or go online once")
        fix += f", or {option.missing}" if option.missing else ""
        fix += f" (no {catalog_task} model is on disk or in a mirror here)"
    return WeightsError(f"{fix}: {missing} (`mattekit models list --sources` shows where they are looked for).",
                        exc.fix, exc.detail or str(exc))


_NOTICES_SHOWN: set[str] = set()  # licence notices are printed once per process


def forget_notices() -> None:
    """Print licence notices, and the sentence on an idle GPU, again on the next load (tests start from a clean
    process state)."""
    _NOTICES_SHOWN.clear()
    gpus.forget()
