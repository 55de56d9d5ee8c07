"""Predictors that own SAM 2.1's pre/post-processing (segment-anything's shape): set an image once and prompt it
many times, or follow one object through frames fed in order. No file I/O; they run on the model's device."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .heads import select_masks
from .model import NO_OBJ_SCORE, SAM2

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _normalise(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN, device=x.device).view(-1, 1, 1)
    std = torch.tensor(STD, device=x.device).view(-1, 1, 1)
    return (x - mean) / std


def image_input(image: np.ndarray, size: int = 1024) -> torch.Tensor:
    """SAM2ImagePredictor's input: uint8 H x W x 3 RGB -> /255 -> bilinear antialiased resize to size x size
    (aspect ratio not kept) -> ImageNet mean/std. Returns 1 x 3 x size x size float32."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255)
    x = F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return _normalise(x[0])[None]


def video_frame_input(frame: np.ndarray, size: int = 1024) -> torch.Tensor:
    """SAM2VideoPredictor's input: uint8 H x W x 3 RGB -> PIL bicubic resize to size x size (uint8) -> /255 ->
    ImageNet mean/std. Returns 1 x 3 x size x size float32."""
    from PIL import Image

    x = np.asarray(Image.fromarray(np.ascontiguousarray(frame)).resize((size, size), Image.BICUBIC)) / 255.0
    x = torch.from_numpy(x).permute(2, 0, 1).float()
    return _normalise(x)[None]


def to_model_coords(coords, hw, size: int = 1024) -> torch.Tensor:
    """(x, y) pixel coordinates of an H x W photo (..., 2) -> model-input pixels: / (W, H) * size."""
    coords = torch.as_tensor(np.asarray(coords, dtype=np.float32)).clone()
    coords[..., 0] = coords[..., 0] / hw[1]
    coords[..., 1] = coords[..., 1] / hw[0]
    return coords * size


def box_and_points(hw, box=None, point_coords=None, point_labels=None, size: int = 1024):
    """Prompts in photo pixels -> (coords 1 x N x 2 in model pixels, labels 1 x N int32): a box xyxy becomes two
    points labelled 2 and 3, placed before the clicks (labels 1 positive, 0 negative)."""
    coords, labels = [], []
    if box is not None:
        coords.append(to_model_coords(np.asarray(box, dtype=np.float32).reshape(2, 2), hw, size))
        labels.append(torch.tensor([2, 3], dtype=torch.int32))
    if point_coords is not None:
        if point_labels is None:
            raise ValueError("point_labels must come with point_coords")
        coords.append(to_model_coords(np.asarray(point_coords, dtype=np.float32).reshape(-1, 2), hw, size))
        labels.append(torch.as_tensor(np.asarray(point_labels), dtype=torch.int32).reshape(-1))
    if not coords:
        raise ValueError("give a box or points")
    return torch.cat(coords)[None], torch.cat(labels)[None]


class SAM2ImagePredictor:
    """Set an image once (``set_image``), then ``predict`` boxes/points given in the photo's pixel coordinates."""

    def __init__(self, model: SAM2, mask_threshold: float = 0.0):
        self.model = model.eval()
        self.mask_threshold = mask_threshold
        self.features = None
        self.hw = None

    @property
    def device(self):
        return next(self.model.parameters()).device

    @torch.no_grad()
    def set_image(self, image: np.ndarray) -> None:
        """image: uint8 H x W x 3 RGB."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected a uint8 H x W x 3 RGB image, got {image.dtype} {image.shape}")
        self.hw = image.shape[:2]
        feats = self.model.encode_image(image_input(image, self.model.image_size).to(self.device))
        feats["embed"] = feats["feat"] + self.model.no_mem_embed.permute(0, 2, 1)[..., None]
        self.features = feats

    @torch.no_grad()
    def decode(self, box=None, point_coords=None, point_labels=None, mask_input=None) -> dict:
        """The model's raw decoder output for these prompts (see ``SAM2.decode``)."""
        if self.features is None:
            raise RuntimeError("call set_image first")
        coords, labels = box_and_points(self.hw, box, point_coords, point_labels, self.model.image_size)
        if mask_input is not None:
            mask_input = torch.as_tensor(mask_input, dtype=torch.float32, device=self.device).reshape(1, 1, 256, 256)
        f = self.features
        return self.model.decode(f["embed"], f["high_res"], coords.to(self.device), labels.to(self.device), mask_input)

    @torch.no_grad()
    def predict(self, point_coords=None, point_labels=None, box=None, mask_input=None, multimask_output: bool = True,
                return_logits: bool = False):
        """-> (masks M x H x W (bool, or logits with ``return_logits``), IoU predictions M, low-res logits M x 256²
        clamped to ±32), numpy; M = 3 with ``multimask_output`` else 1."""
        out = self.decode(box, point_coords, point_labels, mask_input)
        low, iou, _ = select_masks(out["masks"], out["iou"], multimask_output)
        masks = F.interpolate(low, size=self.hw, mode="bilinear", align_corners=False)
        if not return_logits:
            masks = masks > self.mask_threshold
        return masks[0].cpu().numpy(), iou[0].cpu().numpy(), low.clamp(-32.0, 32.0)[0].cpu().numpy()
