"""SAM 2.1 prompt encoder and mask decoder (``sam_prompt_encoder.*`` / ``sam_mask_decoder.*``)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .common import MLP, Attention, LayerNorm2d


class RandomFourierPE(nn.Module):
    """Random-Fourier position encoding: [0,1]² points -> [sin | cos] of 2pi (2p - 1) @ G (G: 2 x dim/2 buffer)."""

    def __init__(self, half_dim: int):
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, half_dim))

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        coords = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([coords.sin(), coords.cos()], dim=-1)

    def grid(self, h: int, w: int) -> torch.Tensor:
        """dim x h x w encoding of the cell centres ((i + 0.5) / n)."""
        ones = torch.ones((h, w), device=self.positional_encoding_gaussian_matrix.device)
        y = (ones.cumsum(0) - 0.5) / h
        x = (ones.cumsum(1) - 0.5) / w
        return self.encode(torch.stack([x, y], dim=-1)).permute(2, 0, 1)


class PromptEncoder(nn.Module):
    """Points (x, y in model-input pixels, 0..1024) and labels -> sparse tokens B x (N+1) x 256 (a padding
    point is appended); optional mask logits B x 1 x 256 x 256 -> dense B x 256 x 64 x 64 (else ``no_mask_embed``).
    Labels: -1 padding, 0 negative, 1 positive, 2/3 box corners."""

    def __init__(self, dim: int = 256, embed_size: int = 64, input_size: int = 1024, mask_chans: int = 16):
        super().__init__()
        self.dim, self.embed_size, self.input_size = dim, embed_size, input_size
        self.pe_layer = RandomFourierPE(dim // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_chans // 4, 2, stride=2),
            LayerNorm2d(mask_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_chans // 4, mask_chans, 2, stride=2),
            LayerNorm2d(mask_chans),
            nn.GELU(),
            nn.Conv2d(mask_chans, dim, 1),
        )
        self.no_mask_embed = nn.Embedding(1, dim)

    def dense_pe(self) -> torch.Tensor:
        """1 x 256 x 64 x 64 image position encoding."""
        return self.pe_layer.grid(self.embed_size, self.embed_size)[None]

    def embed_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """B x N x 2 coords, B x N labels -> B x (N+1) x dim (pixel centres: +0.5)."""
        coords = coords + 0.5
        b = coords.shape[0]
        coords = torch.cat([coords, torch.zeros((b, 1, 2), device=coords.device)], dim=1)
        labels = torch.cat([labels, -torch.ones((b, 1), device=labels.device, dtype=labels.dtype)], dim=1)
        emb = self.pe_layer.encode(coords / self.input_size)
        lab = labels.unsqueeze(-1)
        emb = torch.where(lab == -1, torch.zeros_like(emb) + self.not_a_point_embed.weight, emb)
        for i in range(4):
            emb = torch.where(lab == i, emb + self.point_embeddings[i].weight, emb)
        return emb

    def forward(self, coords, labels, masks=None):
        sparse = self.embed_points(coords, labels)
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
                sparse.shape[0], -1, self.embed_size, self.embed_size
            )
        return sparse, dense


class TwoWayBlock(nn.Module):
    """Post-norm block: token self-attn, token->image cross-attn, ReLU MLP, image->token cross-attn."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, skip_first_pe: bool):
        super().__init__()
        self.self_attn = Attention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, heads, downsample=2)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_dim, dim, 2, act=nn.ReLU)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, heads, downsample=2)
        self.skip_first_pe = skip_first_pe

    def forward(self, queries, keys, query_pe, key_pe):
        if self.skip_first_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """Tokens B x T x C and image B x C x H x W (with its PE) -> (tokens, image tokens B x HW x C)."""

    def __init__(self, depth: int = 2, dim: int = 256, heads: int = 8, mlp_dim: int = 2048):
        super().__init__()
        self.layers = nn.ModuleList(TwoWayBlock(dim, heads, mlp_dim, i == 0) for i in range(depth))
        self.final_attn_token_to_image = Attention(dim, heads, downsample=2)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(self, image, image_pe, tokens):
        keys = image.flatten(2).permute(0, 2, 1)
        key_pe = image_pe.flatten(2).permute(0, 2, 1)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, key_pe)
        out = self.final_attn_token_to_image(queries + tokens, keys + key_pe, keys)
        return self.norm_final_attn(queries + out), keys


class MaskDecoder(nn.Module):
    """Image embedding B x 256 x 64 x 64 (+ high-res maps B x 32 x 256² and B x 64 x 128²) and prompt embeddings ->
    all 4 mask logits B x 4 x 256 x 256, IoU predictions B x 4 (sigmoid), mask tokens B x 4 x 256,
    object-score logits B x 1. Token 0 is the single-mask token, 1..3 the multimask tokens."""

    def __init__(self, dim: int = 256, num_multimask: int = 3):
        super().__init__()
        n = num_multimask + 1
        self.num_mask_tokens = n
        self.transformer = TwoWayTransformer(dim=dim)
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(n, dim)
        self.obj_score_token = nn.Embedding(1, dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, 2, stride=2),
            LayerNorm2d(dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, 2, stride=2),
            nn.GELU(),
        )
        self.conv_s0 = nn.Conv2d(dim, dim // 8, 1)
        self.conv_s1 = nn.Conv2d(dim, dim // 4, 1)
        self.output_hypernetworks_mlps = nn.ModuleList(MLP(dim, dim, dim // 8, 3) for _ in range(n))
        self.iou_prediction_head = MLP(dim, 256, n, 3, sigmoid=True)
        self.pred_obj_score_head = MLP(dim, dim, 1, 3)

    def forward(self, image_embed, image_pe, sparse, dense, high_res):
        b = sparse.shape[0]
        out_tokens = torch.cat([self.obj_score_token.weight, self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([out_tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)
        src = image_embed.expand(b, -1, -1, -1) + dense
        pos = image_pe.expand(b, -1, -1, -1)
        _, c, h, w = src.shape
        hs, src = self.transformer(src, pos, tokens)
        mask_tokens = hs[:, 2 : 2 + self.num_mask_tokens]
        src = src.transpose(1, 2).reshape(b, c, h, w)
        dc1, ln1, act1, dc2, act2 = self.output_upscaling
        feat_s0, feat_s1 = high_res
        up = act1(ln1(dc1(src) + feat_s1))
        up = act2(dc2(up) + feat_s0)
        hyper = torch.stack([mlp(mask_tokens[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1)
        _, c, h, w = up.shape
        masks = (hyper @ up.view(b, c, h * w)).view(b, -1, h, w)
        return masks, self.iou_prediction_head(hs[:, 1]), mask_tokens, self.pred_obj_score_head(hs[:, 0])


def stability_scores(logits: torch.Tensor, delta: float = 0.05) -> torch.Tensor:
    """area(logit > delta) / area(logit > -delta) over the last two dims (1 where the union is empty)."""
    flat = logits.flatten(-2)
    inter = (flat > delta).sum(-1).float()
    union = (flat > -delta).sum(-1).float()
    return torch.where(union > 0, inter / union, 1.0)


def select_masks(masks, ious, multimask: bool, thresh: float = 0.98):
    """Upstream token choice on B x 4 logits/IoUs -> (masks B x M x h x w, ious B x M, token index B x M).
    Multimask: tokens 1..3. Single: token 0 unless its stability score < ``thresh``, then the best of 1..3."""
    b = masks.shape[0]
    if multimask:
        idx = torch.arange(1, 4, device=masks.device).expand(b, 3)
    else:
        best = ious[:, 1:].argmax(-1) + 1
        stable = stability_scores(masks[:, 0]) >= thresh
        idx = torch.where(stable, torch.zeros_like(best), best)[:, None]
    rows = torch.arange(b, device=masks.device)[:, None]
    return masks[rows, idx], ious[rows, idx], idx
