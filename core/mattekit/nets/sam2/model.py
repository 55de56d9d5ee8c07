"""The SAM 2.1 model: image encoder, prompt encoder, mask decoder, memory encoder and memory attention under the
official checkpoint's top-level keys. Tensor in, tensor out; the predictors in ``predictor.py`` drive it."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import MLP, sine_pe_1d
from .heads import MaskDecoder, PromptEncoder
from .hiera import HIERA_CONFIGS, ImageEncoder
from .memory import MemoryAttention, MemoryEncoder

IMAGE_SIZE = 1024
NO_OBJ_SCORE = -1024.0


class SAM2(nn.Module):
    """SAM 2.1 (``variant``: hiera_t, hiera_s, hiera_b+, hiera_l); keys match ``sam2.1_hiera_*.pt['model']``.

    Image size 1024, feature maps 256/128/64 (stride 4/8/16), hidden 256, memory 64 channels, 7 memory slots.
    ``image_size`` (upstream's ``SAM2Base.image_size``, a multiple of 32) changes the model's input size only, not
    its weights: the released checkpoints are trained at 1024; a smaller size makes tests of the plumbing cheap.
    """

    def __init__(self, variant: str = "hiera_t", num_maskmem: int = 7, image_size: int = IMAGE_SIZE):
        super().__init__()
        if variant not in HIERA_CONFIGS:
            raise ValueError(f"unknown SAM 2.1 variant {variant!r}; choose one of {', '.join(HIERA_CONFIGS)}")
        hidden, mem = 256, 64
        self.variant, self.num_maskmem, self.hidden_dim, self.mem_dim = variant, num_maskmem, hidden, mem
        if image_size <= 0 or image_size % 32:
            raise ValueError(f"SAM 2.1's image size must be a positive multiple of 32, not {image_size}")
        self.image_size = image_size
        self.image_encoder = ImageEncoder(variant)
        self.mask_downsample = nn.Conv2d(1, 1, 4, stride=4)
        self.memory_attention = MemoryAttention(hidden)
        self.memory_encoder = MemoryEncoder(hidden, mem)
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(num_maskmem, 1, 1, mem))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, hidden))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, hidden))
        self.no_obj_ptr = nn.Parameter(torch.zeros(1, hidden))
        self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, mem))
        self.sam_prompt_encoder = PromptEncoder(hidden, image_size // 16, image_size)
        self.sam_mask_decoder = MaskDecoder(hidden)
        self.obj_ptr_proj = MLP(hidden, hidden, hidden, 3)
        self.obj_ptr_tpos_proj = nn.Linear(hidden, mem)

    # -- image -------------------------------------------------------------------------------------------------
    def encode_image(self, x: torch.Tensor) -> dict:
        """Normalised N x 3 x 1024 x 1024 -> {"feat": level 2 N x 256 x 64², "pos": its sine PE,
        "high_res": [conv_s0(level 0) N x 32 x 256², conv_s1(level 1) N x 64 x 128²]} (no ``no_mem_embed`` yet)."""
        feats, pos = self.image_encoder(x)
        dec = self.sam_mask_decoder
        return {"feat": feats[-1], "pos": pos[-1], "high_res": [dec.conv_s0(feats[0]), dec.conv_s1(feats[1])]}

    def decode(self, image_embed, high_res, coords, labels, mask_input=None) -> dict:
        """Prompt + decode. coords B x N x 2 in model pixels (0..1024), labels B x N; optional mask logits
        B x 1 x 256². Returns the raw decoder output for all 4 tokens: "masks" B x 4 x 256², "iou" B x 4,
        "tokens" B x 4 x 256, "object_score" B x 1, and "sparse" B x (N+1) x 256."""
        sparse, dense = self.sam_prompt_encoder(coords, labels, mask_input)
        masks, iou, tokens, score = self.sam_mask_decoder(
            image_embed, self.sam_prompt_encoder.dense_pe(), sparse, dense, high_res
        )
        return {"masks": masks, "iou": iou, "tokens": tokens, "object_score": score, "sparse": sparse}

    # -- memory ------------------------------------------------------------------------------------------------
    def object_pointer(self, token: torch.Tensor, object_score: torch.Tensor) -> torch.Tensor:
        """Mask token B x 256 -> object pointer B x 256 (``no_obj_ptr`` where the object score is <= 0)."""
        appearing = (object_score > 0).float()
        return appearing * self.obj_ptr_proj(token) + (1 - appearing) * self.no_obj_ptr

    def encode_memory(
        self, feat: torch.Tensor, mask_logits: torch.Tensor, object_score: torch.Tensor, binarize: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Level-2 features B x 256 x 64², low-res logits B x 1 x 256² -> (memory B x 64 x 64², PE 1 x 64 x 64²).
        The logits are upsampled to 1024², then binarised (prompted frames) or passed through a sigmoid, x20 - 10."""
        high = F.interpolate(mask_logits, size=(self.image_size,) * 2, mode="bilinear", align_corners=False)
        mask = (high > 0).float() if binarize else torch.sigmoid(high)
        mem, pos = self.memory_encoder(feat, mask * 20.0 - 10.0)
        absent = 1.0 - (object_score > 0).float()
        mem = mem + absent[..., None, None] * self.no_obj_embed_spatial[..., None, None]
        return mem, pos

    def pointer_pe(self, dt: torch.Tensor, t_diff_max: int) -> torch.Tensor:
        """Signed frame distances (P,) -> pointer PE P x 64 (``obj_ptr_tpos_proj`` of a 256-d 1-D sine PE)."""
        return self.obj_ptr_tpos_proj(sine_pe_1d(dt / t_diff_max, self.hidden_dim))

    def attend_memory(self, feat, pos, memory, memory_pos, num_ptr_tokens: int) -> torch.Tensor:
        """Level-2 features B x 256 x h x w and their PE, memory B x M x 64 with PE -> conditioned B x 256 x h x w."""
        b, c, h, w = feat.shape
        out = self.memory_attention(
            feat.flatten(2).transpose(1, 2), pos.flatten(2).transpose(1, 2), memory, memory_pos, num_ptr_tokens
        )
        return out.transpose(1, 2).reshape(b, c, h, w)
