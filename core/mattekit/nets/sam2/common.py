"""Small pieces shared by the SAM 2.1 modules: MLP, channel LayerNorm, position encodings, attention."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class MLP(nn.Module):
    """``num_layers`` Linear layers (``layers.i``) with ``act`` between them; optional sigmoid on the output."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_layers: int, act=nn.ReLU, sigmoid: bool = False):
        super().__init__()
        dims = [in_dim] + [hidden] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.act = act()
        self.sigmoid = sigmoid

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.act(x)
        return torch.sigmoid(x) if self.sigmoid else x


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of N x C x H x W (eps 1e-6), computed by hand as upstream does."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


def sine_pe_2d(channels: int, h: int, w: int, device=None) -> torch.Tensor:
    """DETR-style normalised sine encoding, 1 x channels x h x w: positions 1..n / (n + 1e-6) * 2pi,
    sin/cos interleaved per frequency pair, the y half first, then x (temperature 1e4)."""
    half = channels // 2
    y = torch.arange(1, h + 1, dtype=torch.float32, device=device).view(h, 1).expand(h, w)
    x = torch.arange(1, w + 1, dtype=torch.float32, device=device).view(1, w).expand(h, w)
    y = y / (y[-1:, :] + 1e-6) * (2 * math.pi)
    x = x / (x[:, -1:] + 1e-6) * (2 * math.pi)
    dim_t = torch.arange(half, dtype=torch.float32, device=device)
    dim_t = 10000 ** (2 * (dim_t // 2) / half)

    def enc(p):
        p = p[..., None] / dim_t
        return torch.stack((p[..., 0::2].sin(), p[..., 1::2].cos()), dim=-1).flatten(-2)

    return torch.cat((enc(y), enc(x)), dim=-1).permute(2, 0, 1)[None]


def sine_pe_1d(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer sine encoding of positions ``pos`` (any shape): ``[sin block | cos block]``, dim channels."""
    half = dim // 2
    dim_t = torch.arange(half, dtype=torch.float32, device=pos.device)
    dim_t = 10000 ** (2 * (dim_t // 2) / half)
    p = pos.unsqueeze(-1) / dim_t
    return torch.cat([p.sin(), p.cos()], dim=-1)


class Attention(nn.Module):
    """Multi-head attention with q/k/v/out projections at ``dim // downsample`` internal width;
    keys and values may come in with ``kv_dim`` channels. q: B x Nq x dim, k/v: B x Nk x kv_dim."""

    def __init__(self, dim: int, heads: int, downsample: int = 1, kv_dim: int | None = None):
        super().__init__()
        kv_dim = kv_dim or dim
        self.heads, self.internal = heads, dim // downsample
        self.q_proj = nn.Linear(dim, self.internal)
        self.k_proj = nn.Linear(kv_dim, self.internal)
        self.v_proj = nn.Linear(kv_dim, self.internal)
        self.out_proj = nn.Linear(self.internal, dim)

    def _split(self, x):
        b, n, c = x.shape
        return x.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    def _attend(self, q, k, v):
        out = F.scaled_dot_product_attention(q, k, v)
        b, h, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * c))

    def forward(self, q, k, v):
        return self._attend(self._split(self.q_proj(q)), self._split(self.k_proj(k)), self._split(self.v_proj(v)))
