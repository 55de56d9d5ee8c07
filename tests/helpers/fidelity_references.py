"""The fidelity tests' other side (tests/conformance/test_fidelity.py): each model's reference pipeline, written from the
upstream inference facts (``shared/conformance`` manifests, rembg's sessions), independently of mattekit's
preprocessing code: its own resize, scaling, normalisation, output normalisation and upsampling, and ONNX Runtime on
the released file where the weights are an ONNX release (else the net run eagerly in fp32). Each takes the shared
data root and an H x W x 3 uint8 RGB photo and gives its H x W float32 map in [0, 1]."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mattekit import catalog, nets, weights


IMAGENET = (np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225]))


SINET_BGR = (np.array([107.304565, 115.69884, 132.35703]), np.array([63.97182, 65.1337, 68.29726]))


def _session(shared: Path, name: str):
    import onnxruntime as ort  # a dev extra: test_fidelity.py skips without it

    return ort.InferenceSession(str(shared / "weights" / name), providers=["CPUExecutionProvider"])


def _nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], np.float32)


def _torch_resize(x: np.ndarray, height: int, width: int, mode: str) -> np.ndarray:
    """H x W (x C) float -> resized by torch.nn.functional.interpolate (align_corners False), float64."""
    t = torch.from_numpy(np.ascontiguousarray(x, np.float64))
    t = t[None, None] if t.dim() == 2 else t.permute(2, 0, 1)[None]
    kwargs = {} if mode == "area" else {"align_corners": False}
    out = F.interpolate(t, size=(height, width), mode=mode, **kwargs)[0]
    return out.permute(1, 2, 0).numpy() if out.shape[0] > 1 else out[0].numpy()


# ------------------------------------------------------------------ the references, one per model


def rembg_u2net(shared: Path, photo: np.ndarray) -> np.ndarray:
    """rembg's U2netSession on its u2netp.onnx: PIL Lanczos to 320 x 320 of the 8-bit RGB image, / its
    max, ImageNet mean/std; first output min-max normalised, floored to 8 bits, PIL Lanczos back."""
    session = _session(shared, "u2netp.onnx")
    x = np.asarray(Image.fromarray(photo).resize((320, 320), Image.Resampling.LANCZOS), np.float64)
    x = x / max(x.max(), 1e-6)
    x = (x - IMAGENET[0]) / IMAGENET[1]
    pred = session.run(None, {session.get_inputs()[0].name: _nchw(x)})[0][0, 0]
    pred = (pred - pred.min()) / (pred.max() - pred.min())
    mask = Image.fromarray((pred * 255).astype(np.uint8), mode="L")
    return np.asarray(mask.resize(photo.shape[1::-1], Image.Resampling.LANCZOS), np.float32) / 255


def dis_isnet(shared: Path, photo: np.ndarray) -> np.ndarray:
    """DIS's own Inference.py on the fp16 IS-Net file: the image (0..255 floats) bilinearly to 1024 x 1024,
    truncated to uint8, / 255 - 0.5; the first output bilinearly back to the photo, min-max normalised."""
    session = _session(shared, "isnet-general-use.imgly-fp16.onnx")
    x = _torch_resize(photo.astype(np.float64), 1024, 1024, "bilinear").astype(np.float32)
    x = np.floor(x).astype(np.uint8) / 255.0 - 0.5
    pred = session.run(None, {"input": _nchw(x)})[0][0, 0]
    up = _torch_resize(pred, *photo.shape[:2], "bilinear")
    return ((up - up.min()) / (up.max() - up.min())).astype(np.float32)


def _eager(name: str) -> torch.nn.Module:
    """The catalog model's net built and loaded from its real weights, fp32, run eagerly (no engine)."""
    entry = catalog.load().get(name)
    net = nets.build(entry.net, **entry.kwargs)
    path = weights.model_file(entry.name, entry.files)
    net.load_state_dict(weights.load_state_dict_file(path, net, nets.family(entry.net).trace), strict=True)
    return net.eval()


def csnet_sod(shared: Path, photo: np.ndarray) -> np.ndarray:
    """CSNet's test.py: float RGB [0,1] bilinearly to 224 x 224 (skimage order 1, no antialias: the torch
    grid below), ImageNet mean/std; sigmoid of the logit, bilinearly back to the photo."""
    x = _torch_resize(photo / 255.0, 224, 224, "bilinear")
    x = (x - IMAGENET[0]) / IMAGENET[1]
    with torch.no_grad():
        logit = _eager("csnet-sod")(torch.from_numpy(_nchw(x)))[0, 0].numpy()
    return np.clip(_torch_resize(1 / (1 + np.exp(-logit)), *photo.shape[:2], "bilinear"), 0, 1).astype(np.float32)


def _clova_input(photo: np.ndarray) -> torch.Tensor:
    """ext_portrait_segmentation's training and validation pipeline (CVTransforms: Normalize, then Scale by
    cv2.resize, bilinear, on the float image; then / 255): BGR 0..255 minus the BGR mean over the BGR std,
    resized to 224 x 224, / 255. (Its demos resize the 8-bit image first: the same up to 8-bit rounding.)"""
    bgr = (photo[..., ::-1].astype(np.float32) - SINET_BGR[0].astype(np.float32)) / SINET_BGR[1].astype(np.float32)
    bgr = cv2.resize(np.ascontiguousarray(bgr), (224, 224), interpolation=cv2.INTER_LINEAR)
    return torch.from_numpy(_nchw(bgr / 255.0))


def sinet_portrait(shared: Path, photo: np.ndarray) -> np.ndarray:
    """SINet: class 1's softmax probability (its argmax is the upstream mask), bilinearly to the photo."""
    with torch.no_grad():
        person = torch.softmax(_eager("sinet-portrait")(_clova_input(photo)), dim=1)[0, 1].numpy()
    return np.clip(cv2.resize(person, photo.shape[1::-1], interpolation=cv2.INTER_LINEAR), 0, 1)


def extremec3_portrait(shared: Path, photo: np.ndarray) -> np.ndarray:
    """ExtremeC3Net: the upstream mask is logit > 0 (trained with the Lovasz hinge, no calibrated
    probability): the logit bilinearly to the photo, thresholded at 0 (a 0/1 map)."""
    with torch.no_grad():
        logit = _eager("extremec3-portrait")(_clova_input(photo))[0, 0].numpy()
    return (cv2.resize(logit, photo.shape[1::-1], interpolation=cv2.INTER_LINEAR) > 0).astype(np.float32)


def modnet_portrait(shared: Path, photo: np.ndarray) -> np.ndarray:
    """MODNet's demo (inference.py) on the official ONNX export: (x - 0.5) / 0.5; the short side to 512
    when the photo is outside [512, long side], sides floored to multiples of 32, area resize; the matte
    resized back with area."""
    session = _session(shared, "modnet_photographic_portrait_matting.onnx")
    h, w = photo.shape[:2]
    if max(h, w) < 512 or min(h, w) > 512:
        rh, rw = (512, int(w / h * 512)) if w >= h else (int(h / w * 512), 512)
    else:
        rh, rw = h, w
    rh, rw = rh - rh % 32, rw - rw % 32
    x = _torch_resize((photo / 255.0 - 0.5) / 0.5, rh, rw, "area")
    matte_ = session.run(None, {"input": _nchw(x)})[0][0, 0]
    return np.clip(_torch_resize(matte_, h, w, "area"), 0, 1).astype(np.float32)


def rvm_people(shared: Path, photo: np.ndarray) -> np.ndarray:
    """RobustVideoMatting's official ONNX export on one frame: RGB [0,1], zero recurrent states, the
    authors' downsample ratio (frames up to 512 px as they are, else about 512 px on the long side)."""
    session = _session(shared, "rvm_mobilenetv3_fp32.onnx")
    h, w = photo.shape[:2]
    ratio = 1.0 if max(h, w) <= 512 else 512 / max(h, w)
    zero = np.zeros((1, 1, 1, 1), np.float32)
    feed = {
        "src": _nchw(photo / 255.0),
        "r1i": zero,
        "r2i": zero,
        "r3i": zero,
        "r4i": zero,
        "downsample_ratio": np.array([ratio], np.float32),
    }
    return session.run(["pha"], feed)[0][0, 0].astype(np.float32)
