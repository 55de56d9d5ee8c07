"""Running networks: device choice, threads, preprocessing per catalog, one cached Predictor per model."""
from __future__ import annotations

import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import torch

from . import catalog as catalog_mod
from . import backends, nets, weights
from .catalog import InputSpec, ModelEntry
from .errors import MattekitError

_RESIZE = {"bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "cubic": cv2.INTER_CUBIC}


def select_device(name: str | None = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; an explicit device that is missing is an error."""
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise MattekitError(f"'{name}' is not a device; use auto, cpu, cuda, cuda:N or mps.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise MattekitError(f"Device '{name}' was asked for but this machine has no usable CUDA GPU; use --device cpu or auto.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise MattekitError(f"Device '{name}' was asked for but only {torch.cuda.device_count()} CUDA GPU(s) exist.")
    elif device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise MattekitError(f"Device '{name}' was asked for but Apple MPS is not available here; use --device cpu or auto.")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise MattekitError(f"Device '{name}' is not supported; use auto, cpu, cuda, cuda:N or mps.")
    return device


def set_threads(count: int | None) -> None:
    """Limit torch's intra-op CPU threads (None = torch's default)."""
    if count:
        torch.set_num_threads(int(count))


def input_size(spec: InputSpec, height: int, width: int) -> tuple[int, int]:
    """The (H, W) the network sees for an image of ``height`` x ``width`` pixels."""
    if spec.size is not None:
        return spec.size
    m = spec.multiple
    if spec.ref_size is not None:  # MODNet: shrink/grow only when outside ref_size, floor to multiple
        ref = spec.ref_size
        if max(height, width) < ref or min(height, width) > ref:
            if width >= height:
                h, w = ref, int(width / height * ref)
            else:
                h, w = int(height / width * ref), ref
        else:
            h, w = height, width
        return max(m, h - h % m), max(m, w - w % m)
    if spec.short_side is not None:  # Depth Anything: keep aspect, short side >= target, nearest multiple
        scale = spec.short_side / min(height, width)

        def fit(x: float) -> int:
            y = int(round(x / m) * m)
            return y if y >= spec.short_side or x < spec.short_side else int(np.ceil(x / m) * m)

        return fit(height * scale), fit(width * scale)
    return height - height % m or m, width - width % m or m


def prepare(spec: InputSpec, image: np.ndarray) -> torch.Tensor:
    """sRGB float32 HxWx3 in [0,1] -> 1x3xhxw float32 tensor as the catalog entry wants it."""
    image = np.ascontiguousarray(image[..., :3], dtype=np.float32)
    h, w = input_size(spec, *image.shape[:2])
    if (h, w) != image.shape[:2]:
        shrinking = h * w < image.shape[0] * image.shape[1]
        flag = cv2.INTER_AREA if spec.resize == "area" and shrinking else _RESIZE[spec.resize]
        image = cv2.resize(image, (w, h), interpolation=flag)
    if spec.quantize_uint8:
        image = np.floor(np.clip(image, 0, 1) * 255.0) / 255.0
    if spec.divide_by_max:
        image = image / max(float(image.max()), 1e-6)
    if spec.colour_order == "BGR":
        image = image[..., ::-1]
    image = (image - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    image = image * np.float32(spec.extra_scale * spec.value_scale)
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).unsqueeze(0)


class Predictor:
    """One loaded model on one device. ``__call__(x)`` runs the net and returns the prediction.

    The prediction is the catalog's chosen output after its activation: N x C x h x w
    probabilities in [0,1] for segmentation/matting, the image for SR (value scale undone),
    depth for depth models.
    """

    def __init__(self, entry: ModelEntry, device: torch.device, weights_path: str | Path | None = None,
                 backend: str | None = "auto", precision: str | None = "auto"):
        self.entry = entry
        self.device = device
        path = Path(weights_path) if weights_path else weights.fetch(entry.weights)
        if not path.is_file():
            raise MattekitError(f"Weights file {path} does not exist.")
        self.weights_path = path
        net = nets.build(entry.net, **entry.kwargs)
        try:
            state = weights.load_state_dict_file(path)
            # fp32 checkpoints become the parameters themselves (no second copy while loading); others are cast
            fp32 = all(t.dtype is torch.float32 for t in state.values() if t.is_floating_point())
            net.load_state_dict(state, strict=True, assign=fp32)
            del state
        except (RuntimeError, ValueError, OSError, EOFError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MattekitError(f"Weights file {path.name} does not fit model '{entry.name}' ({first[:160]}).") from None
        example = input_size(entry.input, 64, 64)
        # The engine runs the net (see mattekit.backends): backend "torch" | "onnx" | "auto", precision auto/fp32/fp16/bf16.
        self.engine = backends.create(net.eval(), device, backend=backend, precision=precision, index=entry.output.index,
                                      half_ok=entry.half, cpu_bf16_ok=entry.cpu_bf16, weights_path=path,
                                      recipe={"net": entry.net, "kwargs": entry.kwargs},
                                      example=tuple(-(-v // entry.pad_multiple) * entry.pad_multiple for v in example),
                                      dynamic_size=entry.input.size is None)
        self.backend, self.dtype, self.net = self.engine.name, self.engine.dtype, self.engine.net
        self.lock = threading.Lock()

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.engine(x)
        if out.dim() == 3:  # N x H x W maps (Depth Anything) -> N x 1 x H x W
            out = out.unsqueeze(1)
        spec = self.entry.output
        out = out.float()
        if spec.activation == "sigmoid":
            out = torch.sigmoid(out * spec.logit_scale)
        elif spec.activation.startswith("softmax:"):
            k = int(spec.activation.split(":")[1])
            out = torch.softmax(out * spec.logit_scale, dim=1)[:, k : k + 1]
        if spec.normalize == "minmax":
            lo = out.amin(dim=(1, 2, 3), keepdim=True)
            hi = out.amax(dim=(1, 2, 3), keepdim=True)
            out = (out - lo) / (hi - lo).clamp_min(1e-8)
        if spec.value_scale != 1.0:
            out = out / spec.value_scale
        return out

    def predict_map(self, image: np.ndarray) -> np.ndarray:
        """sRGB HxWx3 [0,1] -> the prediction's first channel at network resolution, float32 h x w."""
        return self(prepare(self.entry.input, image))[0, 0].cpu().numpy()


_PREDICTORS: dict[tuple, Predictor] = {}
_PREDICTORS_LOCK = threading.Lock()
_NOTICES_SHOWN: set[str] = set()


def get_predictor(model: str | ModelEntry, task: str | None = None, device: str | torch.device | None = "auto",
                  weights_path: str | Path | None = None, backend: str | None = "auto",
                  precision: str | None = "auto") -> Predictor:
    """The cached Predictor for ``model`` on ``device`` with ``backend``/``precision`` (loaded once per process)."""
    entry = model if isinstance(model, ModelEntry) else catalog_mod.load().get(model, task)
    dev = device if isinstance(device, torch.device) else select_device(device)
    backend = backends.resolve_backend(backend, dev)
    key = (entry.name, str(dev), str(weights_path or ""), backend,
           backends.engine_precision(backend, precision, dev, entry.half, entry.cpu_bf16))
    with _PREDICTORS_LOCK:
        if key not in _PREDICTORS:
            if entry.notice and entry.name not in _NOTICES_SHOWN:
                print(f"mattekit: {entry.notice}", file=sys.stderr)
                _NOTICES_SHOWN.add(entry.name)
            _PREDICTORS[key] = Predictor(entry, dev, weights_path, backend, precision)
        return _PREDICTORS[key]


def clear_predictors() -> None:
    """Drop every cached model (frees memory); a model loaded again prints its licence notice again."""
    with _PREDICTORS_LOCK:
        _PREDICTORS.clear()
        _NOTICES_SHOWN.clear()
