"""SAM 2.1 memory attention (RoPE transformer, ``memory_attention.*``) and memory encoder (``memory_encoder.*``)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import Attention, LayerNorm2d, sine_pe_2d


def axial_rope(dim: int, side: int, theta: float = 10000.0) -> torch.Tensor:
    """Complex rotations side² x dim/2 for a square side x side token grid (row-major): x frequencies, then y."""
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 4)[: dim // 4].float() / dim))
    t = torch.arange(side * side, dtype=torch.float32)
    tx, ty = (t % side).float(), torch.div(t, side, rounding_mode="floor").float()
    fx, fy = torch.outer(tx, freqs), torch.outer(ty, freqs)
    return torch.cat([torch.polar(torch.ones_like(fx), fx), torch.polar(torch.ones_like(fy), fy)], dim=-1)


def _rotate(x: torch.Tensor, cis: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved channel pairs of B x heads x N x D by ``cis`` (N x D/2 complex)."""
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(xc * cis).flatten(3).type_as(x)


class RoPEAttention(Attention):
    """Attention with axial RoPE on q and k. Keys may hold several frames of the query grid (the rotations
    are repeated per frame) followed by ``num_k_exclude_rope`` tokens that get no rotation."""

    def __init__(self, dim: int = 256, heads: int = 1, kv_dim: int | None = None, theta: float = 10000.0):
        super().__init__(dim, heads, 1, kv_dim)
        self.theta = theta
        self._cis: dict = {}

    def _rope(self, n: int, device) -> torch.Tensor:
        key = (n, str(device))
        if key not in self._cis:
            self._cis[key] = axial_rope(self.internal // self.heads, int(round(n**0.5)), self.theta).to(device)
        return self._cis[key]

    def forward(self, q, k, v, num_k_exclude_rope: int = 0):
        q, k, v = self._split(self.q_proj(q)), self._split(self.k_proj(k)), self._split(self.v_proj(v))
        cis = self._rope(q.shape[-2], q.device)
        q = _rotate(q, cis)
        n_rope = k.shape[-2] - num_k_exclude_rope
        if n_rope > 0:
            reps = n_rope // q.shape[-2]
            k_rot = _rotate(k[:, :, :n_rope], cis.repeat(reps, 1))
            k = torch.cat([k_rot, k[:, :, n_rope:]], dim=2)
        return self._attend(q, k, v)


class MemoryAttentionLayer(nn.Module):
    """Pre-norm: RoPE self-attention, RoPE cross-attention to the memory (keys + memory PE), ReLU FFN."""

    def __init__(self, dim: int = 256, mem_dim: int = 64, ffn: int = 2048):
        super().__init__()
        self.self_attn = RoPEAttention(dim, 1)
        self.cross_attn_image = RoPEAttention(dim, 1, kv_dim=mem_dim)
        self.linear1 = nn.Linear(dim, ffn)
        self.linear2 = nn.Linear(ffn, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x, memory, memory_pos, num_ptr_tokens: int):
        y = self.norm1(x)
        x = x + self.self_attn(y, y, y)
        y = self.norm2(x)
        x = x + self.cross_attn_image(y, memory + memory_pos, memory, num_k_exclude_rope=num_ptr_tokens)
        return x + self.linear2(F.relu(self.linear1(self.norm3(x))))


class MemoryAttention(nn.Module):
    """Current-frame tokens B x HW x 256 (+ 0.1 x their PE) attend to the memory B x M x 64 (with its PE; the last
    ``num_ptr_tokens`` rows are object-pointer tokens). Returns B x HW x 256."""

    def __init__(self, dim: int = 256, num_layers: int = 4):
        super().__init__()
        self.layers = nn.ModuleList(MemoryAttentionLayer(dim) for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, curr, curr_pos, memory, memory_pos, num_ptr_tokens: int = 0):
        x = curr + 0.1 * curr_pos
        for layer in self.layers:
            x = layer(x, memory, memory_pos, num_ptr_tokens)
        return self.norm(x)


class MaskDownSampler(nn.Module):
    """B x 1 x 1024² mask -> B x 256 x 64²: 4x [conv3x3 s2, LayerNorm2d, GELU] (1->4->16->64->256), then 1x1 conv."""

    def __init__(self, dim: int = 256, layers: int = 4):
        super().__init__()
        self.encoder = nn.Sequential()
        cin = 1
        for _ in range(layers):
            cout = cin * 4
            self.encoder.extend([nn.Conv2d(cin, cout, 3, stride=2, padding=1), LayerNorm2d(cout), nn.GELU()])
            cin = cout
        self.encoder.append(nn.Conv2d(cin, dim, 1))

    def forward(self, x):
        return self.encoder(x)


class CXBlock(nn.Module):
    """ConvNeXt block: depthwise 7x7, LayerNorm2d, Linear x4, GELU, Linear, layer scale ``gamma``, residual."""

    def __init__(self, dim: int = 256):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = LayerNorm2d(dim)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim))

    def forward(self, x):
        y = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)
        y = self.gamma * self.pwconv2(F.gelu(self.pwconv1(y)))
        return x + y.permute(0, 3, 1, 2)


class Fuser(nn.Module):
    def __init__(self, dim: int = 256, num_layers: int = 2):
        super().__init__()
        self.layers = nn.ModuleList(CXBlock(dim) for _ in range(num_layers))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """Raw level-2 features B x 256 x 64² and the scaled mask B x 1 x 1024² (already sigmoid/binarised, x20 - 10)
    -> memory B x 64 x 64² and its sine PE 1 x 64 x 64²."""

    def __init__(self, dim: int = 256, out_dim: int = 64):
        super().__init__()
        self.mask_downsampler = MaskDownSampler(dim)
        self.pix_feat_proj = nn.Conv2d(dim, dim, 1)
        self.fuser = Fuser(dim)
        self.out_proj = nn.Conv2d(dim, out_dim, 1)
        self.out_dim = out_dim

    def forward(self, pix_feat, mask):
        x = self.pix_feat_proj(pix_feat) + self.mask_downsampler(mask)
        x = self.out_proj(self.fuser(x))
        return x, sine_pe_2d(self.out_dim, x.shape[-2], x.shape[-1], x.device).to(x.dtype)
