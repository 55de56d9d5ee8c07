"""SAM 2.1 image encoder: the Hiera trunk and the FPN neck (``image_encoder.trunk.*`` / ``image_encoder.neck.*``)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import MLP, sine_pe_2d

# variant -> Hiera kwargs (the sam2.1_hiera_*.yaml trunks)
HIERA_CONFIGS = {
    "hiera_t": dict(embed_dim=96, num_heads=1, stages=(1, 2, 7, 2), global_att_blocks=(5, 7, 9), pos_embed_size=(7, 7)),
    "hiera_s": dict(
        embed_dim=96, num_heads=1, stages=(1, 2, 11, 2), global_att_blocks=(7, 10, 13), pos_embed_size=(7, 7)
    ),
    "hiera_b+": dict(
        embed_dim=112, num_heads=2, stages=(2, 3, 16, 3), global_att_blocks=(12, 16, 20), pos_embed_size=(14, 14)
    ),
    "hiera_l": dict(
        embed_dim=144,
        num_heads=2,
        stages=(2, 6, 36, 4),
        global_att_blocks=(23, 33, 43),
        pos_embed_size=(7, 7),
        window_spec=(8, 4, 16, 8),
    ),
}


def _partition(x: torch.Tensor, ws: int):
    """B x H x W x C -> (B*nw) x ws x ws x C windows, zero-padding bottom/right; also the padded (Hp, Wp)."""
    b, h, w, c = x.shape
    ph, pw = (ws - h % ws) % ws, (ws - w % ws) % ws
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    hp, wp = h + ph, w + pw
    x = x.view(b, hp // ws, ws, wp // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws, ws, c), (hp, wp)


def _unpartition(x: torch.Tensor, ws: int, padded, hw) -> torch.Tensor:
    """Inverse of ``_partition``: windows back to B x H x W x C, padding cropped."""
    hp, wp = padded
    b = x.shape[0] // ((hp // ws) * (wp // ws))
    x = x.reshape(b, hp // ws, wp // ws, ws, ws, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    return x[:, : hw[0], : hw[1]]


def _pool(x: torch.Tensor) -> torch.Tensor:
    """2x2 max-pool of channels-last B x H x W x C (floor)."""
    return F.max_pool2d(x.permute(0, 3, 1, 2), 2, 2).permute(0, 2, 3, 1)


class MultiScaleAttention(nn.Module):
    """Self-attention on B x H x W x C (fused qkv); with ``q_pool`` the queries are 2x2 max-pooled,
    so the output is B x H/2 x W/2 x dim_out."""

    def __init__(self, dim: int, dim_out: int, heads: int, q_pool: bool):
        super().__init__()
        self.heads, self.q_pool = heads, q_pool
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x):
        b, h, w, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, h * w, 3, self.heads, -1).unbind(2)
        if self.q_pool:
            q = _pool(q.reshape(b, h, w, -1))
            h, w = q.shape[1:3]
            q = q.reshape(b, h * w, self.heads, -1)
        x = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(x.transpose(1, 2).reshape(b, h, w, -1))


class MultiScaleBlock(nn.Module):
    """Pre-norm Hiera block on B x H x W x C (window attention when ``window`` > 0, global otherwise).
    A stage-transition block (``q_pool``) halves H and W and projects the normed input for the shortcut."""

    def __init__(self, dim: int, dim_out: int, heads: int, window: int, q_pool: bool):
        super().__init__()
        self.dim, self.dim_out, self.window, self.q_pool = dim, dim_out, window, q_pool
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiScaleAttention(dim, dim_out, heads, q_pool)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = MLP(dim_out, dim_out * 4, dim_out, 2, act=nn.GELU)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x):
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = self.proj(x)
            if self.q_pool:
                shortcut = _pool(shortcut)
        ws = self.window
        if ws > 0:
            h, w = x.shape[1:3]
            x, padded = _partition(x, ws)
        x = self.attn(x)
        if ws > 0:
            if self.q_pool:
                ws //= 2
                h, w = shortcut.shape[1:3]
                padded = (h + (ws - h % ws) % ws, w + (ws - w % ws) % ws)
            x = _unpartition(x, ws, padded, (h, w))
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Conv 7x7 stride 4 pad 3: N x 3 x H x W -> N x H/4 x W/4 x C (channels last)."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, 7, stride=4, padding=3)

    def forward(self, x):
        return self.proj(x).permute(0, 2, 3, 1)


class Hiera(nn.Module):
    """Hiera trunk: N x 3 x H x W -> four maps N x C_i x H/4/2^i x W/4/2^i, i = 0..3 (C doubles each stage)."""

    def __init__(
        self,
        embed_dim=96,
        num_heads=1,
        stages=(2, 3, 16, 3),
        global_att_blocks=(12, 16, 20),
        pos_embed_size=(14, 14),
        window_spec=(8, 4, 14, 7),
        q_pool=3,
    ):
        super().__init__()
        self.stage_ends = [sum(stages[: i + 1]) - 1 for i in range(len(stages))]
        pool_blocks = [e + 1 for e in self.stage_ends[:-1]][:q_pool]
        self.patch_embed = PatchEmbed(embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_dim, *pos_embed_size))
        self.pos_embed_window = nn.Parameter(torch.zeros(1, embed_dim, window_spec[0], window_spec[0]))
        self.blocks = nn.ModuleList()
        dim, heads, stage = embed_dim, num_heads, 0
        for i in range(sum(stages)):
            window = 0 if i in global_att_blocks else window_spec[stage]  # a transition block keeps the old window
            dim_out = dim
            if i - 1 in self.stage_ends:
                dim_out, heads, stage = dim * 2, heads * 2, stage + 1
            self.blocks.append(MultiScaleBlock(dim, dim_out, heads, window, i in pool_blocks))
            dim = dim_out
        self.channel_list = [self.blocks[e].dim_out for e in self.stage_ends[::-1]]

    def _pos_embed(self, h: int, w: int) -> torch.Tensor:
        pe = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic")
        win = self.pos_embed_window
        pe = pe + win.tile([1, 1, h // win.shape[2], w // win.shape[3]])
        return pe.permute(0, 2, 3, 1)

    def forward(self, x):
        x = self.patch_embed(x)
        x = x + self._pos_embed(*x.shape[1:3])
        outs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                outs.append(x.permute(0, 3, 1, 2))
        return outs


class FpnNeck(nn.Module):
    """1x1 lateral convs to ``d_model`` (``convs[0]`` for the deepest map); nearest x2 top-down sums only into
    the levels in ``top_down_levels``. Returns the maps high-res first and their sine encodings."""

    def __init__(self, d_model: int, channel_list, top_down_levels=(2, 3)):
        super().__init__()
        self.d_model, self.top_down_levels = d_model, tuple(top_down_levels)
        self.convs = nn.ModuleList()
        for c in channel_list:
            seq = nn.Sequential()
            seq.add_module("conv", nn.Conv2d(c, d_model, 1))
            self.convs.append(seq)

    def forward(self, xs):
        n = len(self.convs) - 1
        out, prev = [None] * (n + 1), None
        for i in range(n, -1, -1):
            lateral = self.convs[n - i](xs[i])
            if i in self.top_down_levels and prev is not None:
                prev = lateral + F.interpolate(prev, scale_factor=2.0, mode="nearest")
            else:
                prev = lateral
            out[i] = prev
        pos = [
            sine_pe_2d(self.d_model, o.shape[-2], o.shape[-1], o.device).to(o.dtype).expand(o.shape[0], -1, -1, -1)
            for o in out
        ]
        return out, pos


class ImageEncoder(nn.Module):
    """Trunk + neck; ``scalp`` drops the lowest-resolution levels. N x 3 x 1024 x 1024 ->
    (features [N x 256 x 256², 128², 64²], their sine PEs)."""

    def __init__(self, variant: str = "hiera_t", scalp: int = 1):
        super().__init__()
        self.trunk = Hiera(**HIERA_CONFIGS[variant])
        self.neck = FpnNeck(256, self.trunk.channel_list)
        self.scalp = scalp

    def forward(self, x):
        feats, pos = self.neck(self.trunk(x))
        if self.scalp:
            feats, pos = feats[: -self.scalp], pos[: -self.scalp]
        return feats, pos
