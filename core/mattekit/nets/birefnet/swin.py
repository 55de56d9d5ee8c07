"""Swin Transformer v1 backbone (mmseg-style, as BiRefNet's ``models/backbones/swin_v1.py``): windowed
attention with shifted windows, four stages, one LayerNorm per returned stage."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """B x H x W x C (H, W multiples of ws) -> B*nW x ws*ws x C, windows in row-major order."""
    B, H, W, C = x.shape
    x = x.view(B, H // ws, ws, W // ws, ws, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, C)


def _window_reverse(windows: torch.Tensor, ws: int, H: int, W: int) -> torch.Tensor:
    """B*nW x ws*ws x C -> B x H x W x C (inverse of :func:`_window_partition`)."""
    C = windows.shape[-1]
    x = windows.view(-1, H // ws, W // ws, ws, ws, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, H, W, C)


class Mlp(nn.Module):
    """Linear -> exact GELU -> Linear on tokens (... x C)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside ws x ws windows with a learnt relative-position bias.

    x: B*nW x ws*ws x C; mask: nW x ws*ws x ws*ws additive (0 / -inf) or None.
    """

    def __init__(self, dim: int, window_size: int, num_heads: int):
        super().__init__()
        self.window_size, self.num_heads = window_size, num_heads
        ws = window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, num_heads))
        # computed on the CPU, then put beside the table (cheap also when built on the meta device)
        steps = torch.arange(ws, device="cpu")
        coords = torch.stack(torch.meshgrid(steps, steps, indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)  # N x N x (dy, dx), >= 0
        index = rel[..., 0] * (2 * ws - 1) + rel[..., 1]
        self.register_buffer("relative_position_index", index.to(self.relative_position_bias_table.device))
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        Bw, N, C = x.shape
        q, k, v = self.qkv(x).reshape(Bw, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(N, N, -1).permute(2, 0, 1).to(q.dtype)  # heads x N x N
        if mask is None:
            attn_mask = bias.unsqueeze(0)
        else:
            nW = mask.shape[0]
            q, k, v = (t.reshape(Bw // nW, nW, self.num_heads, N, -1) for t in (q, k, v))
            attn_mask = bias.unsqueeze(0).unsqueeze(0) + mask.to(q.dtype).unsqueeze(1).unsqueeze(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # scale head_dim ** -0.5
        return self.proj(out.reshape(Bw, self.num_heads, N, -1).transpose(1, 2).reshape(Bw, N, C))


class SwinTransformerBlock(nn.Module):
    """(Shifted-)window attention + MLP, each pre-LayerNorm and residual, on B x H*W x C tokens.

    The map is zero-padded right/bottom to multiples of the window after ``norm1`` (padded tokens take
    part as keys and values); the window is never shrunk for small maps.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.window_size, self.shift_size = window_size, shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, H: int, W: int, mask: torch.Tensor | None) -> torch.Tensor:
        B, L, C = x.shape
        ws, s = self.window_size, self.shift_size
        y = self.norm1(x).view(B, H, W, C)
        pad_r, pad_b = (ws - W % ws) % ws, (ws - H % ws) % ws
        y = F.pad(y, (0, 0, 0, pad_r, 0, pad_b))
        Hp, Wp = H + pad_b, W + pad_r
        if s:
            y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
        y = self.attn(_window_partition(y, ws), mask if s else None)
        y = _window_reverse(y, ws, Hp, Wp)
        if s:
            y = torch.roll(y, shifts=(s, s), dims=(1, 2))
        x = x + y[:, :H, :W, :].reshape(B, H * W, C)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """B x H*W x C -> B x ceil(H/2)*ceil(W/2) x 2C: 2x2 neighbours concatenated, LayerNorm(4C), Linear(4C->2C)."""

    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        B, L, C = x.shape
        x = F.pad(x.view(B, H, W, C), (0, 0, 0, W % 2, 0, H % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.reshape(B, -1, 4 * C)))


class BasicLayer(nn.Module):
    """One Swin stage: ``depth`` blocks (odd ones shifted by ws//2), then optional PatchMerging."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, downsample: bool):
        super().__init__()
        self.window_size, self.shift_size = window_size, window_size // 2
        self.blocks = nn.ModuleList(
            [
                SwinTransformerBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2)
                for i in range(depth)
            ]
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def _shift_mask(self, H: int, W: int, device) -> torch.Tensor:
        """nW x ws*ws x ws*ws: 0 within a region of the rolled padded grid, -inf across regions."""
        ws, s = self.window_size, self.shift_size
        Hp, Wp = math.ceil(H / ws) * ws, math.ceil(W / ws) * ws
        regions = torch.zeros(1, Hp, Wp, 1, device=device)
        cuts = (slice(0, -ws), slice(-ws, -s), slice(-s, None))
        for n, (hs, wsl) in enumerate((hs, wsl) for hs in cuts for wsl in cuts):
            regions[:, hs, wsl, :] = n
        ids = _window_partition(regions, ws).squeeze(-1)
        diff = ids.unsqueeze(1) - ids.unsqueeze(2)
        return torch.zeros_like(diff).masked_fill(diff != 0, float("-inf"))

    def forward(self, x: torch.Tensor, H: int, W: int):
        """Returns (stage output B x H*W x C, downsampled tokens, their H, W)."""
        mask = self._shift_mask(H, W, x.device)
        for blk in self.blocks:
            x = blk(x, H, W, mask)
        if self.downsample is None:
            return x, x, H, W
        return x, self.downsample(x, H, W), (H + 1) // 2, (W + 1) // 2


class PatchEmbed(nn.Module):
    """N x 3 x H x W -> N x C x ceil(H/4) x ceil(W/4): 4x4 stride-4 conv (input zero-padded right/bottom), LayerNorm."""

    def __init__(self, embed_dim: int, patch_size: int = 4, in_channels: int = 3):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, patch_size, patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        x = F.pad(x, (0, (p - x.shape[-1] % p) % p, 0, (p - x.shape[-2] % p) % p))
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SwinTransformer(nn.Module):
    """Swin v1 backbone (mmseg-style): N x 3 x H x W -> 4 maps N x C_i x H/2^(i+2) x W/2^(i+2), C_i = embed_dim * 2^i.

    Each returned stage output goes through its own LayerNorm (``norm0``..``norm3``); no absolute
    position embedding.
    """

    def __init__(self, embed_dim: int = 96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size: int = 7):
        super().__init__()
        self.num_features = [embed_dim * 2**i for i in range(len(depths))]
        self.patch_embed = PatchEmbed(embed_dim)
        self.layers = nn.ModuleList(
            [
                BasicLayer(self.num_features[i], depths[i], num_heads[i], window_size, downsample=i < len(depths) - 1)
                for i in range(len(depths))
            ]
        )
        for i, c in enumerate(self.num_features):
            self.add_module(f"norm{i}", nn.LayerNorm(c))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_embed(x)
        B, _, H, W = x.shape
        x = x.flatten(2).transpose(1, 2)
        outs = []
        for i, layer in enumerate(self.layers):
            out, x, h, w = layer(x, H, W)
            out = getattr(self, f"norm{i}")(out)
            outs.append(out.view(B, H, W, -1).permute(0, 3, 1, 2).contiguous())
            H, W = h, w
        return outs
