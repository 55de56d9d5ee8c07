"""Depth Anything V2: a DINOv2 ViT backbone (patch 14) with a DPT head predicting relative inverse depth.

State-dict keys follow the official checkpoints (``pretrained.*`` for the ViT,
``depth_head.*`` for the DPT head), e.g. ``depth_anything_v2_vits.pth``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import Family

# encoder -> (embed_dim, depth, num_heads, blocks fed to the head)
VIT_CONFIGS = {
    "vits": (384, 12, 6, (2, 5, 8, 11)),
    "vitb": (768, 12, 12, (2, 5, 8, 11)),
    "vitl": (1024, 24, 16, (4, 11, 17, 23)),
}


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection: N x C x H x W -> N x (H/p * W/p) x D."""

    def __init__(self, patch: int, dim: int, in_ch: int = 3):
        super().__init__()
        self.proj = nn.Conv2d(in_ch, dim, patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention on N x T x D tokens (fused qkv, scale head_dim^-0.5)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        n, t, c = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(n, t, c))


class Mlp(nn.Module):
    """Linear -> exact GELU -> Linear."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    """Per-channel learned scale ``gamma``."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale on both residual branches: N x T x D -> same."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.norm1, self.attn, self.ls1 = nn.LayerNorm(dim, eps=1e-6), Attention(dim, heads), LayerScale(dim)
        self.norm2, self.mlp, self.ls2 = nn.LayerNorm(dim, eps=1e-6), Mlp(dim, dim * mlp_ratio), LayerScale(dim)

    def forward(self, x):
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoViT(nn.Module):
    """DINOv2 ViT (patch 14, trained at 518 px, one cls token, no registers).

    Input N x 3 x H x W (H, W multiples of 14, ImageNet-normalised). Use
    ``get_intermediate_layers``; the backbone has no forward of its own here.
    """

    def __init__(self, dim: int, depth: int, heads: int, patch: int = 14, img_size: int = 518):
        super().__init__()
        self.patch = patch
        grid = img_size // patch
        self.patch_embed = PatchEmbed(patch, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # training-only, kept for strict loading
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def pos_encoding(self, n_patches: int, h: int, w: int) -> torch.Tensor:
        """Position embedding for an h x w input: bicubic resize of the patch grid by a scale factor."""
        n_ref = self.pos_embed.shape[1] - 1
        if n_patches == n_ref and h == w:
            return self.pos_embed
        pos = self.pos_embed.float()
        dim, side = pos.shape[-1], math.sqrt(n_ref)
        grid = pos[:, 1:].reshape(1, int(side), int(side), dim).permute(0, 3, 1, 2)
        # Upstream passes scale_factor (grid + 0.1) / 37, not a size; PyTorch then uses that
        # scale in the coordinate mapping, which gives different values from size=(gh, gw).
        scale = ((h // self.patch + 0.1) / side, (w // self.patch + 0.1) / side)
        grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=False)
        grid = grid.permute(0, 2, 3, 1).reshape(1, -1, dim)
        return torch.cat((pos[:, :1], grid), dim=1).to(self.pos_embed.dtype)

    def get_intermediate_layers(self, x: torch.Tensor, blocks, norm: bool = True):
        """Tokens after the given blocks: a tuple of (patch tokens N x T x D, cls token N x D) pairs.

        With ``norm`` the final LayerNorm is applied to each taken output (as upstream
        ``get_intermediate_layers(x, blocks, return_class_token=True)``).
        """
        h, w = x.shape[-2:]
        t = self.patch_embed(x)
        t = torch.cat((self.cls_token.expand(t.shape[0], -1, -1), t), dim=1)
        t = t + self.pos_encoding(t.shape[1] - 1, h, w)
        taken = []
        for i, blk in enumerate(self.blocks):
            t = blk(t)
            if i in blocks:
                taken.append(self.norm(t) if norm else t)
        return tuple((o[:, 1:], o[:, 0]) for o in taken)


class ResidualConvUnit(nn.Module):
    """x + conv(relu(conv(relu(x)))), 3x3 convs; shape preserved."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x


class FeatureFusionBlock(nn.Module):
    """Adds the refined skip, refines, resizes (bilinear, align_corners=True; x2 if no size), 1x1 conv."""

    def __init__(self, ch: int):
        super().__init__()
        self.out_conv = nn.Conv2d(ch, ch, 1)
        self.resConfUnit1 = ResidualConvUnit(ch)
        self.resConfUnit2 = ResidualConvUnit(ch)

    def forward(self, x, skip=None, size=None):
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        resize = {"scale_factor": 2} if size is None else {"size": size}
        x = F.interpolate(x, **resize, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class DPTHead(nn.Module):
    """DPT decoder: four token maps (1/14 scale) -> N x 1 x H x W non-negative depth."""

    def __init__(self, in_ch: int, features: int, out_channels):
        super().__init__()
        c = list(out_channels)
        self.projects = nn.ModuleList(nn.Conv2d(in_ch, oc, 1) for oc in c)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(c[0], c[0], 4, stride=4),
                nn.ConvTranspose2d(c[1], c[1], 2, stride=2),
                nn.Identity(),
                nn.Conv2d(c[3], c[3], 3, stride=2, padding=1),
            ]
        )
        s = self.scratch = nn.Module()
        for i, oc in enumerate(c, 1):
            setattr(s, f"layer{i}_rn", nn.Conv2d(oc, features, 3, padding=1, bias=False))
        for i in range(1, 5):
            setattr(s, f"refinenet{i}", FeatureFusionBlock(features))
        s.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        s.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 1, 1), nn.ReLU()
        )

    def forward(self, feats, ph: int, pw: int):
        s = self.scratch
        maps = []
        for i, (tokens, _cls) in enumerate(feats):
            x = tokens.permute(0, 2, 1).reshape(tokens.shape[0], tokens.shape[-1], ph, pw)
            maps.append(self.resize_layers[i](self.projects[i](x)))
        l1, l2, l3, l4 = (getattr(s, f"layer{i}_rn")(m) for i, m in enumerate(maps, 1))
        p = s.refinenet4(l4, size=l3.shape[2:])
        p = s.refinenet3(p, l3, size=l2.shape[2:])
        p = s.refinenet2(p, l2, size=l1.shape[2:])
        p = s.refinenet1(p, l1)
        out = F.interpolate(s.output_conv1(p), (ph * 14, pw * 14), mode="bilinear", align_corners=True)
        return s.output_conv2(out)


class DepthAnythingV2(nn.Module):
    """Depth Anything V2 relative depth.

    Input: N x 3 x H x W, RGB ImageNet-normalised, H and W multiples of 14 (518 short side upstream).
    Output: N x H x W relative inverse depth (disparity-like, >= 0, larger = nearer).
    """

    def __init__(self, encoder: str = "vits", features: int = 64, out_channels=(48, 96, 192, 384)):
        super().__init__()
        if encoder not in VIT_CONFIGS:
            raise ValueError(f"encoder {encoder!r} not supported; choose from {sorted(VIT_CONFIGS)}")
        dim, depth, heads, self.layer_idx = VIT_CONFIGS[encoder]
        self.encoder = encoder
        self.pretrained = DinoViT(dim, depth, heads)
        self.depth_head = DPTHead(dim, features, out_channels)

    def forward(self, x):
        ph, pw = x.shape[-2] // 14, x.shape[-1] // 14
        feats = self.pretrained.get_intermediate_layers(x, self.layer_idx)
        return F.relu(self.depth_head(feats, ph, pw)).squeeze(1)


def _as_maps(depth: torch.Tensor) -> torch.Tensor:
    """N x H x W depth -> N x 1 x H x W."""
    return depth.unsqueeze(1)


FAMILY = Family("depth_anything", {"DepthAnythingV2": DepthAnythingV2}, as_maps=_as_maps)
