"""Predictors that own SAM 2.1's pre/post-processing (segment-anything's shape): set an image once and prompt it
many times, or follow one object through frames fed in order. No file I/O; they run on the model's device."""

from __future__ import annotations

import hashlib

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
    pixels = np.require(image, requirements=("C", "W"))  # copied when read-only (decoded file pixels): torch warns
    x = torch.from_numpy(pixels).permute(2, 0, 1).float().div(255)
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
    def predict(
        self,
        point_coords=None,
        point_labels=None,
        box=None,
        mask_input=None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ):
        """-> (masks M x H x W (bool, or logits with ``return_logits``), IoU predictions M, low-res logits M x 256²
        clamped to ±32), numpy; M = 3 with ``multimask_output`` else 1."""
        out = self.decode(box, point_coords, point_labels, mask_input)
        low, iou, _ = select_masks(out["masks"], out["iou"], multimask_output)
        masks = F.interpolate(low, size=self.hw, mode="bilinear", align_corners=False)
        if not return_logits:
            masks = masks > self.mask_threshold
        return masks[0].cpu().numpy(), iou[0].cpu().numpy(), low.clamp(-32.0, 32.0)[0].cpu().numpy()


class FrameFeatures:
    """The image encoder's output for video frames (``encode_image`` of :func:`video_frame_input`), computed once
    and handed out again while ``max_bytes`` allow: the objects tracked through one shot, and an object's runs (its
    first keyframe is fed backward and forward), feed the same frames. A frame is known by its pixels (a blake2b
    digest of its uint8 bytes and shape) and its model, so what is handed out is always that frame's own answer,
    the same bytes a fresh encoding gives. Once full it keeps what it holds and adds nothing: frames come in passes
    over the shot, and keeping the first ones serves every later pass, where dropping the oldest would serve none.
    What it keeps lives in host memory whatever the model's device (a GPU's memory stays the model's), and is
    moved to the model's device when handed out. ``hits`` and ``misses`` count the calls answered from memory and
    by the encoder."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.held: dict[tuple, dict] = {}
        self.bytes = self.hits = self.misses = 0

    @torch.no_grad()
    def __call__(self, model: SAM2, frame: np.ndarray) -> dict:
        """``model.encode_image`` of ``frame`` (uint8 H x W x 3 RGB) at the model's size, on its device."""
        key = (id(model), frame.shape, hashlib.blake2b(np.ascontiguousarray(frame).data, digest_size=16).digest())
        device = next(model.parameters()).device
        if key in self.held:
            self.hits += 1
            return _moved(self.held[key], device)
        self.misses += 1
        feats = model.encode_image(video_frame_input(frame, model.image_size).to(device))
        size = sum(t.numel() * t.element_size() for t in (feats["feat"], feats["pos"], *feats["high_res"]))
        if self.bytes + size <= self.max_bytes:
            self.held[key] = _moved(feats, torch.device("cpu"))  # (the same tensors on the CPU)
            self.bytes += size
        return feats


def _moved(feats: dict, device: torch.device) -> dict:
    """``encode_image``'s output on ``device`` (tensors already there are not copied)."""
    return {
        "feat": feats["feat"].to(device),
        "pos": feats["pos"].to(device),
        "high_res": [t.to(device) for t in feats["high_res"]],
    }


class SAM2VideoTracker:
    """One object followed through a video by SAM 2.1's memory bank, frames fed in order (upstream
    ``SAM2VideoPredictor`` for a single object, tracking forward).

    ``prompt(frame, box=..., point_coords=..., point_labels=...)`` makes the next frame a conditioning frame;
    ``track(frame)`` runs the next frame on memory alone. Both take uint8 H x W x 3 RGB frames of the video's
    size and return mask logits H x W (float32 numpy; the mask is logits > 0). ``outputs[t]`` keeps, for the
    prompted frame and the tracked frames the bank can still reach (the last 15), the low-res logits
    (1 x 1 x 256²), object pointer, object score and bfloat16 memory; ``last`` keeps the memory-attention inputs
    of the latest frame for inspection. Upstream's ``fill_hole_area=8`` (it needs the compiled ``sam2._C``) is
    not applied, like the goldens. ``features``: a :class:`FrameFeatures` the caller shares between trackers
    over the same frames (None: every frame is encoded).
    """

    MAX_PTRS = 16  # object pointers reach at most 15 frames back; memories 6

    def __init__(
        self,
        model: SAM2,
        video_hw: tuple[int, int],
        num_frames: int | None = None,
        features: FrameFeatures | None = None,
    ):
        self.model = model.eval()
        self.features = features
        self.hw = tuple(video_hw)
        self.num_frames = num_frames
        self.frame_idx = -1
        self.cond: dict[int, dict] = {}  # conditioning (prompted) frames
        self.non_cond: dict[int, dict] = {}  # tracked frames
        self.last: dict = {}

    @property
    def outputs(self) -> dict[int, dict]:
        return {**self.non_cond, **self.cond}

    @property
    def device(self):
        return next(self.model.parameters()).device

    def _features(self, frame: np.ndarray) -> dict:
        if frame.shape[:2] != self.hw or frame.dtype != np.uint8:
            raise ValueError(f"expected a uint8 {self.hw[0]} x {self.hw[1]} x 3 frame, got {frame.dtype} {frame.shape}")
        if self.features is not None:
            return self.features(self.model, frame)
        return self.model.encode_image(video_frame_input(frame, self.model.image_size).to(self.device))

    def _heads(self, pix_feat, high_res, coords, labels, multimask: bool) -> dict:
        """Decode, choose the mask (multimask: the best predicted IoU), gate it on the object score and make the
        object pointer from the chosen token (token 0 on the single-mask path, even after the stability fallback)."""
        raw = self.model.decode(pix_feat, high_res, coords, labels)
        masks, ious, idx = select_masks(raw["masks"], raw["iou"], multimask)
        if multimask:
            best = ious.argmax(-1)
            rows = torch.arange(masks.shape[0], device=masks.device)
            low, token = masks[rows, best][:, None], raw["tokens"][rows, idx[rows, best]]
        else:
            low, token = masks, raw["tokens"][:, 0]
        score = raw["object_score"]
        low = torch.where(score[:, :, None, None] > 0, low, torch.full_like(low, NO_OBJ_SCORE))
        return {
            "pred_masks": low.float(),
            "obj_ptr": self.model.object_pointer(token, score),
            "object_score": score,
            "decoder_iou": raw["iou"],
            "decoder_masks": raw["masks"],
        }

    def _memory(self, frame_idx: int):
        """The bank for ``frame_idx``: (memory B x M x 64, its PE, number of trailing pointer tokens)."""
        model, n_mem = self.model, self.model.num_maskmem
        mems, poss = [], []
        picks = [(0, out) for out in self.cond.values()]
        picks += [(t_pos, self.non_cond.get(frame_idx - (n_mem - t_pos))) for t_pos in range(1, n_mem)]
        for t_pos, out in picks:
            if out is None:
                continue
            mems.append(out["maskmem_features"].float().flatten(2).transpose(1, 2))
            pos = out["maskmem_pos_enc"].flatten(2).transpose(1, 2)
            poss.append(pos + model.maskmem_tpos_enc[n_mem - t_pos - 1])  # conditioning frames: index 6
        max_ptrs = min(self.num_frames or self.MAX_PTRS, self.MAX_PTRS)
        ptrs = [(frame_idx - t, out["obj_ptr"]) for t, out in self.cond.items() if t <= frame_idx]
        for dt in range(1, max_ptrs):
            t = frame_idx - dt
            if t < 0:
                break
            if t in self.non_cond:
                ptrs.append((dt, self.non_cond[t]["obj_ptr"]))
        n_ptr = 0
        if ptrs:
            dts = torch.tensor([d for d, _ in ptrs], device=self.device)
            ptr = torch.stack([p for _, p in ptrs], dim=1)  # B x P x 256
            b, p, c = ptr.shape
            split = c // model.mem_dim
            mems.append(ptr.reshape(b, p * split, model.mem_dim))
            pe = model.pointer_pe(dts, max(max_ptrs - 1, 1)).repeat_interleave(split, dim=0)
            poss.append(pe[None].expand(b, -1, -1))
            n_ptr = p * split
        return torch.cat(mems, dim=1), torch.cat(poss, dim=1), n_ptr

    def _finish(self, out: dict, feats: dict, binarize: bool) -> np.ndarray:
        mem, pos = self.model.encode_memory(feats["feat"], out["pred_masks"], out["object_score"], binarize)
        out["maskmem_features"] = mem.to(torch.bfloat16)  # upstream stores the memory in bfloat16
        out["maskmem_pos_enc"] = pos
        video = F.interpolate(out["pred_masks"], size=self.hw, mode="bilinear", align_corners=False)
        out["video_res_masks"] = video
        return video[0, 0].cpu().numpy()

    @torch.no_grad()
    def prompt(self, frame: np.ndarray, box=None, point_coords=None, point_labels=None) -> np.ndarray:
        """Prompt the next frame (box xyxy and/or clicks in video pixels); it becomes a conditioning frame."""
        if self.cond or self.non_cond:
            raise NotImplementedError("only the first frame can be prompted for now")
        coords, labels = box_and_points(self.hw, box, point_coords, point_labels, self.model.image_size)
        feats = self._features(frame)
        self.frame_idx += 1
        pix = feats["feat"] + self.model.no_mem_embed.permute(0, 2, 1)[..., None]
        multimask = labels.shape[1] <= 1  # one click: 3 masks, best IoU; a box or several clicks: one mask
        out = self._heads(pix, feats["high_res"], coords.to(self.device), labels.to(self.device), multimask)
        self.cond[self.frame_idx] = out
        self.last = {}
        return self._finish(out, feats, binarize=True)  # a prompted frame's memory sees the binarised mask

    @torch.no_grad()
    def track(self, frame: np.ndarray) -> np.ndarray:
        """Segment the next frame from the memory of the earlier ones."""
        if not self.cond:
            raise RuntimeError("prompt a frame before tracking")
        feats = self._features(frame)
        self.frame_idx += 1
        memory, memory_pos, n_ptr = self._memory(self.frame_idx)
        pix = self.model.attend_memory(feats["feat"], feats["pos"], memory, memory_pos, n_ptr)
        self.last = {"memory_pos": memory_pos, "num_ptr_tokens": n_ptr, "conditioned": pix}
        coords = torch.zeros(1, 1, 2, device=self.device)
        labels = -torch.ones(1, 1, dtype=torch.int32, device=self.device)
        out = self._heads(pix, feats["high_res"], coords, labels, multimask=True)
        self.non_cond[self.frame_idx] = out
        for t in [t for t in self.non_cond if t <= self.frame_idx - self.MAX_PTRS]:
            del self.non_cond[t]  # out of the bank's reach
        return self._finish(out, feats, binarize=False)
