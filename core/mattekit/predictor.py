"""Predictor: one loaded model on one device, the engine its :class:`~mattekit.engines.plan.Plan` names (built by
``mattekit.engines``), with the catalog's preprocessing and activation around it.

A model whose plan is ONNX Runtime on the CPU in fp32 with a plain net family (:func:`mattekit.nets.plain`) and a
cached export runs without importing torch: its inputs and predictions are numpy arrays. Every other model's are
torch tensors."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from . import nets, weights
from .ops.resizing import prediction_array, resized_map
from .engines import build
from .engines.inputs import prepare_array
from .engines.plan import Plan
from .catalog import ModelEntry
from .options import ModelChoice
from .errors import MattekitError

if TYPE_CHECKING:
    import torch


class Predictor:
    """One loaded model on one device. ``__call__(x)`` runs the net and returns the prediction; calls
    from several threads at once are fine (the pipeline's workers do). ``lock`` is taken only by tiled
    super-resolution, which sizes its tiles from free memory and so runs one image at a time per model.

    The prediction is the catalog's chosen output after its activation: N x C x h x w
    probabilities in [0,1] for segmentation/matting, the image for SR (value scale undone),
    depth for depth models; a numpy array for a numpy input, else a torch tensor. :meth:`prepare` gives the
    input the engine takes as it is: numpy arrays for the ONNX engines, torch tensors for the others.
    ``device_type``: "cpu", "cuda" or "mps"; ``device`` / ``dtype``: the torch device and dtype (import torch).
    ``plan``: how it runs, a load's plan (:func:`mattekit.engines.plan.decide` with ``loading``, made by the caller:
    :class:`ModelCache` makes it once), with the model's files. ``built``: (engine, weights file) made by the caller
    (a bench's double); None: :func:`mattekit.engines.build` makes what ``plan`` names from its files.
    """

    def __init__(self, entry: ModelEntry, plan: Plan, built: tuple | None = None):
        self.entry, self.plan = entry, plan
        self.lock = threading.Lock()
        self._provenance: dict | None = None
        self.engine, self.weights_path = built or (build(plan), plan.recipe.weights)
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
