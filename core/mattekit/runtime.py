"""Running networks: threads, preprocessing per catalog, a Predictor per loaded model (the engine its
:class:`~mattekit.engines.plan.Plan` names, built by ``mattekit.engines``), and ModelCache, the loaded models of
whoever owns it (a CLI run, the worker, the API), which makes each model's plan once and keys its models by plan.

A model whose plan is ONNX Runtime on the CPU in fp32 with a plain net family (:func:`mattekit.nets.plain`) and a
cached export is loaded and run without importing torch: its inputs and predictions are numpy arrays. Every other
model's are torch tensors."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import catalog as catalog_mod
from . import heap, nets, settings, weights
from .ops.resizing import prediction_array, resized_map
from .engines import gpus, threads
from .engines import build
from .engines.inputs import prepare_array
from .engines.plan import Plan, decide
from .catalog import ModelEntry
from .options import ModelChoice
from .errors import MattekitError

if TYPE_CHECKING:
    import torch


def set_threads(count: int | None) -> None:
    """Limit the calling thread's CPU threads for network calls (torch's too where loaded; None = leave as is)."""
    if count:
        threads.set_count(int(count))


class Predictor:
    """One loaded model on one device. ``__call__(x)`` runs the net and returns the prediction; calls
    from several threads at once are fine (the pipeline's workers do). ``lock`` is taken only by tiled
    super-resolution, which sizes its tiles from free memory and so runs one image at a time per model.

    The prediction is the catalog's chosen output after its activation: N x C x h x w
    probabilities in [0,1] for segmentation/matting, the image for SR (value scale undone),
    depth for depth models; a numpy array for a numpy input, else a torch tensor. :meth:`prepare` gives the
    input the engine takes as it is: numpy arrays for the ONNX engines, torch tensors for the others.
    ``device_type``: "cpu", "cuda" or "mps"; ``device`` / ``dtype``: the torch device and dtype (import torch).
    ``plan``: how it runs (:func:`mattekit.engines.plan.decide`, made by the caller: :class:`ModelCache` makes it once).
    """

    def __init__(self, entry: ModelEntry, plan: Plan):
        self.entry, self.plan = entry, plan
        self.lock = threading.Lock()
        self._provenance: dict | None = None
        self.engine, self.weights_path = build(entry, plan)
        self.backend = self.engine.name
        self.takes_arrays = bool(getattr(self.engine, "takes_arrays", False))

    device_type = property(lambda self: self.engine.device_type, doc='"cpu", "cuda" or "mps".')
    device = property(lambda self: self.engine.device, doc="The torch.device (imports torch).")
    dtype = property(lambda self: self.engine.dtype, doc="The torch dtype the net runs in (imports torch).")

    name = property(lambda self: self.entry.name, doc="The model's catalog name.")
    task = property(lambda self: self.entry.task, doc='What it does: "segment", "matte", "upscale", "depth", "prompt".')
    scale = property(lambda self: self.entry.scale, doc="Its upscaling factor (1 but for super-resolution).")
    overlap = property(lambda self: self.entry.overlap, doc="Pixels its tiles overlap by (None: the default).")
    pad_multiple = property(lambda self: self.entry.pad_multiple, doc="A side of its input is a multiple of this.")
    upsampling = property(
        lambda self: self.entry.output.upsample,
        doc="How its map is resized to the photo (a :func:`~mattekit.ops.resizing.resize` method).",
    )
    recurrent = property(lambda self: self.entry.recurrent, doc="A video net carrying state from frame to frame.")
    warmup = property(lambda self: self.entry.warmup, doc="Recurrent: frames run before a chunk's first frame.")
    edge_matting = property(
        lambda self: self.entry.edge_matting,
        doc="Segmentation: its mask's uncertain edge is matted by default (measured per model).",
    )

    def as_choice(self) -> ModelChoice:
        """This model as a model option's value (:class:`mattekit.options.ModelChoice`): the API's ``model=``."""
        return ModelChoice(self.entry.name, self.entry, self)

    def net_size(self, height: int, width: int) -> tuple[int, int]:
        """The (H, W) in pixels the net sees for a ``height`` x ``width`` photo."""
        return self.entry.input.net_size(height, width)

    def to_image(self, prediction, height: int, width: int) -> np.ndarray:
        """The prediction's first map (N x C x h x w array or tensor, or an h x w array; [0,1]) brought back to the
        photo: ``height`` x ``width`` float32 in [0,1], resized as the model's reference pipeline does
        (:attr:`upsampling`)."""
        return resized_map(prediction_array(prediction), height, width, self.upsampling)

    def as_net_input(self, tiles: torch.Tensor) -> torch.Tensor:
        """N x 3 x h x w RGB tensor in [0,1] (already at the net's size: super-resolution's tiles) -> the net's
        input values (colour order, mean, std and value scale as :func:`~mattekit.engines.inputs.prepare_array`)."""
        import torch

        spec = self.entry.input
        if spec.colour_order == "BGR":
            tiles = tiles.flip(1)
        mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1)
        return (tiles - mean) / std * (spec.extra_scale * spec.value_scale)

    def as_rgb(self, images: torch.Tensor) -> torch.Tensor:
        """An image prediction (N x 3 x h x w, super-resolution's) in RGB order (the net's colour order undone)."""
        return images.flip(1) if self.entry.input.colour_order == "BGR" else images

    @property
    def family(self):
        """The net family's descriptor (:class:`mattekit.nets.Family`; imports its module, and torch)."""
        return nets.family(self.entry.net)

    @property
    def net(self):
        """The torch module the engine runs (None for an .onnx release run as it is); an ONNX engine whose export
        was cached builds it only now."""
        return self.engine.net

    def provenance(self) -> dict:
        """:func:`mattekit.provenance.model_record` of this model (its weights file hashed once)."""
        if self._provenance is None:
            from .provenance import model_record

            self._provenance = model_record(
                self.entry,
                self.weights_path,
                weights.file_sha256(self.weights_path),
                weights.pinned_sha256s(self.entry.files),
            )
        return dict(self._provenance)

    def __call__(self, x):
        """N x 3 x h x w input (numpy array or torch tensor) -> the prediction, of the same kind."""
        if isinstance(x, np.ndarray) and self.takes_arrays and nets.plain(self.entry.net):
            return self._activate_array(self.engine(x))
        import torch

        if isinstance(x, np.ndarray):
            return self(torch.from_numpy(x)).cpu().numpy()
        with torch.inference_mode():
            if self.plan.simulated is not None:  # a GPU activates on the device: held there with the net
                return self.engine(x, self._activate)
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
        """sRGB H x W x 3|4 float32 [0,1] -> the 1 x 3 x h x w input this model wants (see :func:`~mattekit.engines.inputs.prepare_array`):
        a numpy array where the engine takes one (:attr:`takes_arrays`), else a torch tensor."""
        x = prepare_array(self.entry, image[..., :3])
        if self.takes_arrays:
            return x
        import torch

        return torch.from_numpy(x)

    def predict_map(self, image: np.ndarray) -> np.ndarray:
        """sRGB HxWx3 [0,1] -> the prediction's first channel at network resolution, float32 h x w."""
        return self(prepare_array(self.entry, image))[0, 0]


class ModelCache:
    """Loaded predictors, each loaded once, owned by whoever made the cache (a CLI run, the worker, the Python API).
    Each request (model, device, weights, backend, precision as asked) gets its plan once
    (:func:`mattekit.engines.plan.decide`); models are keyed by plan, so requests that plan alike share one. ``say``:
    how the owner tells its user things once a model loads (a licence, a GPU left idle: :func:`load_notices`); None
    says nothing. Thread-safe."""

    def __init__(self, say=None):
        self._plans: dict[tuple, Plan] = {}
        self._loaded: dict[tuple, Predictor] = {}
        self._lock = threading.Lock()
        self.say = say

    def plan(
        self,
        entry: ModelEntry,
        device: str | torch.device | None = "auto",
        weights_path: str | Path | None = None,
        backend: str | None = "auto",
        precision: str | None = "auto",
    ) -> Plan:
        """The plan of ``entry`` as asked, made once per request (the memory check first, before its weights are
        looked for)."""
        request = (entry.name, str(device or "auto"), str(weights_path or ""), backend or "auto", precision or "auto")
        with self._lock:
            if request not in self._plans:
                self._plans[request] = decide(entry, device, backend, precision, weights_path, loading=True)
            return self._plans[request]

    def get(
        self,
        model: ModelChoice | ModelEntry | str | None,
        task: str | None = None,
        device: str | torch.device | None = "auto",
        weights_path: str | Path | None = None,
        backend: str | None = "auto",
        precision: str | None = "auto",
    ) -> Predictor:
        """The Predictor for ``model`` (a checked model option's value, a catalog entry, a name, or None: the
        catalog's default ``task`` model), loaded on first use; a choice that holds a loaded model gives it."""
        if isinstance(model, ModelChoice) and model.predictor is not None:
            return model.predictor
        entry = _entry_of(model, task)
        plan = self.plan(entry, device, weights_path, backend, precision)
        with self._lock:
            if plan.key in self._loaded:
                return self._loaded[plan.key]
            predictor = self._loaded[plan.key] = Predictor(entry, plan)
        heap.resume_collection()  # a command's start-up ends with its models loaded
        if self.say is not None:
            for sentence in load_notices(entry, predictor, str(device or "auto")):
                self.say(sentence)
        return predictor

    def for_task(self, task, options, given: set[str] = frozenset()) -> dict:
        """{model option: Predictor} for one run of ``task`` (a registry Task) with ``options``: the models
        ``task.models_needed(options, given)`` names, each the one its option holds (a model the API was given) or
        from this cache. A model whose weights are missing says what the user can do instead."""
        from .errors import WeightsError

        table = task.option_table()
        device = getattr(options, "device", "auto")
        models = {}
        for name, catalog_task in task.models_needed(options, given).items():
            choice = getattr(options, name)
            entry = _entry_of(choice, catalog_task)
            weights_path = getattr(options, name.replace("model", "weights"), None)
            try:
                chosen = choice if isinstance(choice, ModelChoice) else entry  # (a choice may hold a loaded model)
                models[name] = self.get(chosen, catalog_task, device=device, weights_path=weights_path)
            except WeightsError as exc:
                raise _missing(exc, entry, catalog_task, table[name]) from None
        return models

    def loaded(self) -> list[Predictor]:
        with self._lock:
            return list(self._loaded.values())

    def clear(self) -> None:
        """Drop every model (frees memory)."""
        with self._lock:
            self._loaded.clear()


def _entry_of(model: ModelChoice | ModelEntry | str | None, task: str | None) -> ModelEntry:
    """The catalog row ``model`` stands for: a checked choice's or an entry as it is (no lookup), a name looked up,
    None the catalog's default ``task`` model."""
    if isinstance(model, ModelChoice):
        return model.entry
    if isinstance(model, ModelEntry):
        return model
    cat = catalog_mod.load()
    return cat.default(task) if model is None else cat.get(model, task)


def _missing(exc, entry: ModelEntry, catalog_task: str, option) -> MattekitError:
    """The error for a run whose model ``entry`` lacks its weights (``exc``): one short sentence, the
    fix first (register the mirror's converted copy, pick a model that is here with ``option``'s flag, or get the
    weights; each with ``option.missing``, what the user can do instead, where there is one), then the
    model it is about; the places tried are ``exc``'s detail, which the CLI prints with --debug."""
    from .errors import WeightsError
    from .weights.download import offline

    here = [e.name for e, _ in catalog_mod.load().available(catalog_task)]
    missing = f"the weights of {entry.name} cannot be had here"
    if exc.fix:
        fix = f"Register the mirror's converted copy with {exc.fix}"
    elif here:
        fix = f"Pick a {catalog_task} model that is here with {option.flag} NAME ({', '.join(here)})"
        fix += f", or {option.missing}" if option.missing else ""
    else:
        fix = (
            "Unset MATTEKIT_OFFLINE or set MATTEKIT_MIRROR to a folder holding them"
            if offline()
            else "Set MATTEKIT_MIRROR to a folder holding them or go online once"
        )
        fix += f", or {option.missing}" if option.missing else ""
        fix += f" (no {catalog_task} model is on disk or in a mirror here)"
    return WeightsError(
        f"{fix}: {missing} (`mattekit models list --sources` shows where they are looked for).",
        exc.fix,
        exc.detail or str(exc),
    )


_NOTICES_SHOWN: set[str] = set()  # licence notices are said once per process


def load_notices(entry: ModelEntry, predictor: Predictor, asked_device: str) -> list[str]:
    """What a front end tells its user once ``predictor`` of catalog ``entry`` has loaded ('mattekit: ...' sentences,
    each once per process, the unlicensed-weights one once per user): the catalog's notice, the weights' missing
    licence, and a GPU left idle while the model runs on the CPU (``asked_device``: the device as the user gave it)."""
    said = []
    if entry.notice and entry.name not in _NOTICES_SHOWN:
        said.append(f"mattekit: {entry.notice}")
        _NOTICES_SHOWN.add(entry.name)
    idle = gpus.idle_sentence(entry.name, asked_device, predictor.device_type, predictor.backend)
    if idle:
        said.append(idle)
    unlicensed = catalog_mod.load().unlicensed_notice(entry, str(settings.config_path()))
    if unlicensed and settings.first_time(f"unlicensed-{entry.name}"):
        said.append(f"mattekit: {unlicensed}")
    return said


def say_on_stderr(sentence: str) -> None:
    """A :class:`ModelCache` ``say`` for the command line and the Python API: the sentence on standard error."""
    print(sentence, file=sys.stderr)


def forget_notices() -> None:
    """Say licence notices, and the sentence on an idle GPU, again on the next load (tests start from a clean
    process state)."""
    _NOTICES_SHOWN.clear()
    gpus.forget()
