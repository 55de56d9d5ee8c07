"""BiRefNet (bilateral reference dichotomous segmentation) with its Swin v1 backbones.

Re-implementation of ZhengPeng7/BiRefNet ``models/birefnet.py`` (+ ``models/backbones/swin_v1.py``,
``models/modules/{decoder_blocks,aspp,deform_conv,lateral_blocks}.py``) in the configuration of the
released general-use checkpoints: ``mul_scl_ipt='cat'``, ``dec_att='ASPPDeformable'``,
``squeeze_block='BasicDecBlk_x1'``, ``dec_blk='BasicDecBlk'``, ``cxt_num=3``, split decoder input
patches, ``out_ref`` gradient attention, BatchNorm in the decoder. ``backbone='swin_v1_l'`` is the
general BiRefNet, ``backbone='swin_v1_t'`` is BiRefNet_lite. State-dict keys equal the official
checkpoints' (after stripping any ``module.`` / ``_orig_mod.`` prefix), so they load with ``strict=True``.

The deformable convolution (DCNv2) is written here in plain torch with the semantics of
``torchvision.ops.deform_conv2d`` (see :func:`deform_conv2d`); torchvision is not needed.

Patch order of the decoder's image patches
------------------------------------------
The decoder feeds the normalised image, cut into a g x g grid (g = 32, 16, 8, 4, 1), to its ``ipt_blk``
convs with the patches stacked on channels. Upstream commit 5198d3f (2024-11-05, "Upgrade patches merging
and split methods to einops version") changed that stacking:

* ``"patch_major"``: before it, ``Decoder.get_patches_batch`` split the image into columns of width
  ``w`` and each column into patches of height ``h``, and concatenated the 3-channel patches, so
  channel = (col * g + row) * 3 + colour;
* ``"channel_major"``: since then, ``einops.rearrange(x, 'b c (hg h) (wg w) -> b (c hg wg) h w')``,
  so channel = colour * g*g + row * g + col.

The conformance goldens follow today's code (``"channel_major"``). The released weights were trained with
``"patch_major"``, which is therefore the default:

* GitHub ZhengPeng7/BiRefNet: the general-use Swin-L weights were published on 2024-07-28 (commit 2ccc960,
  "Update the weights of BiRefNet for general use ...") and the Swin-T ones (BiRefNet_lite) on 2024-08-02
  (commit 1931af0); ``models/birefnet.py`` at both commits, and until 5198d3f, stacks with ``get_patches_batch``.
* Hugging Face ZhengPeng7/BiRefNet_lite-2K, whose git history (ZhengPeng7's commits from b762934 "initial
  commit", 2024-09-24) is carried inside github.com/wingerboy/video_matting: ``model.safetensors`` (LFS sha256
  aa2e4a5af5eb..., 177,634,392 bytes) was uploaded once, in 3007575 (2024-09-24), beside a ``birefnet.py``
  that uses ``get_patches_batch``. That HF ``birefnet.py`` switched to the einops order on 2025-02-02
  (94260e2, "Align lib_name as birefnet and add inference endpoint option") with no new weights, so the HF
  remote code has since run those weights with another order than they were trained with. (That repo was
  made from BiRefNet_lite's files: its config.json says ``_name_or_path: ZhengPeng7/BiRefNet_lite``. The HF
  histories of ZhengPeng7/BiRefNet and BiRefNet_lite themselves were not readable here.)
* Weights trained with upstream code newer than 2024-11-05 (e.g. BiRefNet_HR, 2025-02; BiRefNet_dynamic,
  2025-03) would need ``"channel_major"``: inferred from the dates, not checked.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

PATCH_ORDERS = ("patch_major", "channel_major")
RELEASED_PATCH_ORDER = "patch_major"

# name: (embed_dim, depths, num_heads, window_size)
SWIN_CONFIGS = {
    "swin_v1_t": (96, (2, 2, 6, 2), (3, 6, 12, 24), 7),  # BiRefNet_lite
    "swin_v1_l": (192, (2, 2, 18, 2), (6, 12, 24, 48), 12),  # general BiRefNet
}


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    """Bilinear resize with ``align_corners=True`` (every resize in BiRefNet is this one)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


# --------------------------------------------------------------------------- deformable convolution


def _bilinear_sample(x: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Sample ``x`` (B x C x H x W) bilinearly at real pixel positions ``ys``, ``xs`` (B x k x P) -> B x C x k x P.

    Corners outside the map read 0, so every point with y <= -1, y >= H, x <= -1 or x >= W reads 0, as in
    torchvision's deform_conv2d. Done by ``grid_sample`` (zeros padding, ``align_corners=False``, which also
    serves 1-pixel-wide maps); positions are normalised in float32 or wider, and float16/bfloat16 maps are
    sampled in float32.
    """
    H, W = x.shape[-2:]
    pos = torch.promote_types(ys.dtype, torch.float32)
    grid = torch.stack(((2 * xs.to(pos) + 1) / W - 1, (2 * ys.to(pos) + 1) / H - 1), dim=-1)
    src = x if x.dtype == pos else x.to(pos)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.to(x.dtype)


_DCN_CHUNK_ELEMENTS = 1 << 24  # sampled values held at once (64 MiB of float32)


def deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  stride=1, padding=0, dilation=1, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Deformable convolution (DCNv1, or modulated DCNv2 with ``mask``), as ``torchvision.ops.deform_conv2d``.

    x: N x Cin x H x W. weight: Cout x Cin/groups x kh x kw. offset: N x 2*G*kh*kw x Ho x Wo; for offset
    group g and tap t = i*kw + j, channel (g*kh*kw + t)*2 is the y shift and the next one the x shift.
    mask: N x G*kh*kw x Ho x Wo (None: all 1). The input channels are split into G offset groups.
    Tap (i, j) of output (oy, ox) reads x bilinearly at (oy*sh - ph + i*dh + dy, ox*sw - pw + j*dw + dx),
    zero outside the map, times the mask; the taps are then summed with ``weight`` as in a convolution.
    Returns N x Cout x Ho x Wo.
    """
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    N, cin, H, W = x.shape
    cout, cin_g, kh, kw = weight.shape
    K = kh * kw
    groups = cin // cin_g
    G = offset.shape[1] // (2 * K)
    Ho = (H + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    Wo = (W + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    if (G < 1 or offset.shape != (N, 2 * G * K, Ho, Wo) or cin % G or groups * cin_g != cin or cout % groups):
        raise ValueError(f"deform_conv2d: inconsistent shapes x {tuple(x.shape)}, offset {tuple(offset.shape)}, "
                         f"weight {tuple(weight.shape)}")
    if mask is not None and mask.shape != (N, G * K, Ho, Wo):
        raise ValueError(f"deform_conv2d: mask {tuple(mask.shape)} != {(N, G * K, Ho, Wo)}")
    P = Ho * Wo
    # sampling positions in at least float32: in float16 a position near 256 would be off by up to 1/8 pixel
    pos = torch.promote_types(offset.dtype, torch.float32)
    offset = offset.reshape(N * G, K, 2, P).to(pos)
    mask = mask.reshape(N * G, K, P).to(pos) if mask is not None else offset.new_ones(N * G, K, P)
    xg = x.reshape(N * G, cin // G, H, W)
    oy = torch.arange(Ho, device=x.device, dtype=pos) * sh - ph
    ox = torch.arange(Wo, device=x.device, dtype=pos) * sw - pw
    ty = torch.arange(kh, device=x.device, dtype=pos).repeat_interleave(kw) * dh  # tap t = i*kw + j
    tx = torch.arange(kw, device=x.device, dtype=pos).repeat(kh) * dw
    base_y = (ty.view(K, 1, 1) + oy.view(1, Ho, 1)).expand(K, Ho, Wo).reshape(K, P)
    base_x = (tx.view(K, 1, 1) + ox.view(1, 1, Wo)).expand(K, Ho, Wo).reshape(K, P)
    w = weight.reshape(groups, cout // groups, cin_g, K)
    step = max(1, _DCN_CHUNK_ELEMENTS // max(1, N * cin * P))  # taps per chunk
    out = None
    for t0 in range(0, K, step):
        t1 = min(K, t0 + step)
        k = t1 - t0
        ys = base_y[t0:t1] + offset[:, t0:t1, 0]  # N*G x k x P
        xs = base_x[t0:t1] + offset[:, t0:t1, 1]
        cols = _bilinear_sample(xg, ys, xs) * mask[:, None, t0:t1].to(x.dtype)  # N*G x C/G x k x P
        cols = cols.reshape(N, groups, cin_g * k, P)  # channel c, tap t at row c*k + t
        part = torch.matmul(w[..., t0:t1].reshape(groups, cout // groups, cin_g * k), cols)
        out = part if out is None else out + part
    out = out.reshape(N, cout, Ho, Wo)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


class DeformableConv2d(nn.Module):
    """Modulated deformable k x k conv (stride 1): N x in x H x W -> N x out x H x W.

    Offsets come from ``offset_conv`` (2*k*k channels, y then x per tap), the modulation mask is
    ``2 * sigmoid(modulator_conv(x))`` (k*k channels, values in (0, 2)).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, bias: bool = False):
        super().__init__()
        k = kernel_size
        self.stride, self.padding = stride, padding
        self.offset_conv = nn.Conv2d(in_channels, 2 * k * k, k, stride, padding, bias=True)
        self.modulator_conv = nn.Conv2d(in_channels, k * k, k, stride, padding, bias=True)
        self.regular_conv = nn.Conv2d(in_channels, out_channels, k, stride, padding, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset = self.offset_conv(x)
        mask = 2.0 * torch.sigmoid(self.modulator_conv(x))
        return deform_conv2d(x, offset, self.regular_conv.weight, self.regular_conv.bias,
                             stride=self.stride, padding=self.padding, mask=mask)


# --------------------------------------------------------------------------- Swin v1 backbone


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
        self.blocks = nn.ModuleList([
            SwinTransformerBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2)
            for i in range(depth)])
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
        self.num_features = [embed_dim * 2 ** i for i in range(len(depths))]
        self.patch_embed = PatchEmbed(embed_dim)
        self.layers = nn.ModuleList([
            BasicLayer(self.num_features[i], depths[i], num_heads[i], window_size, downsample=i < len(depths) - 1)
            for i in range(len(depths))])
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


# --------------------------------------------------------------------------- decoder


class _ASPPModuleDeformable(nn.Module):
    """DeformableConv2d (no bias) -> BN -> ReLU."""

    def __init__(self, in_channels: int, planes: int, kernel_size: int, padding: int):
        super().__init__()
        self.atrous_conv = DeformableConv2d(in_channels, planes, kernel_size, 1, padding, bias=False)
        self.bn = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.atrous_conv(x)))


class ASPPDeformable(nn.Module):
    """Deformable ASPP: N x C x H x W -> N x C x H x W.

    Branches (256 channels each): deformable 1x1 (``aspp1``), deformable 1x1/3x3/7x7 (``aspp_deforms``),
    global average pool -> 1x1 conv -> BN -> ReLU broadcast; concat -> 1x1 conv -> BN -> ReLU.
    """

    def __init__(self, in_channels: int, out_channels: int | None = None, parallel_block_sizes=(1, 3, 7)):
        super().__init__()
        out_channels = out_channels or in_channels
        mid = 256
        self.aspp1 = _ASPPModuleDeformable(in_channels, mid, 1, padding=0)
        self.aspp_deforms = nn.ModuleList([
            _ASPPModuleDeformable(in_channels, mid, k, padding=k // 2) for k in parallel_block_sizes])
        self.global_avg_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)), nn.Conv2d(in_channels, mid, 1, bias=False), nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True))
        self.conv1 = nn.Conv2d(mid * (2 + len(parallel_block_sizes)), out_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.aspp1(x)] + [aspp(x) for aspp in self.aspp_deforms]
        pooled = self.global_avg_pool(x).expand(-1, -1, *x.shape[2:])
        return self.relu(self.bn1(self.conv1(torch.cat(branches + [pooled], 1))))


class BasicDecBlk(nn.Module):
    """conv3x3 (-> 64) -> BN -> ReLU -> ASPPDeformable -> conv3x3 (-> out) -> BN; N x in x H x W -> N x out x H x W."""

    def __init__(self, in_channels: int, out_channels: int, inter_channels: int = 64):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, inter_channels, 3, 1, padding=1)
        self.relu_in = nn.ReLU(inplace=True)
        self.dec_att = ASPPDeformable(inter_channels)
        self.conv_out = nn.Conv2d(inter_channels, out_channels, 3, 1, padding=1)
        self.bn_in = nn.BatchNorm2d(inter_channels)
        self.bn_out = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu_in(self.bn_in(self.conv_in(x)))
        return self.bn_out(self.conv_out(self.dec_att(x)))


class SimpleConvs(nn.Module):
    """conv3x3 (-> 64) then conv3x3 (-> out), no activation between."""

    def __init__(self, in_channels: int, out_channels: int, inter_channels: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, inter_channels, 3, 1, 1)
        self.conv_out = nn.Conv2d(inter_channels, out_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv1(x))


class BasicLatBlk(nn.Module):
    """1x1 conv with bias."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def image_to_patches(image: torch.Tensor, grid: int, order: str) -> torch.Tensor:
    """N x C x (g*h) x (g*w) -> N x (C*g*g) x h x w: the g x g grid of patches stacked on channels.

    ``order="channel_major"``: channel = c*g*g + row*g + col (today's upstream, einops
    ``b c (hg h) (wg w) -> b (c hg wg) h w``); ``order="patch_major"``: channel = (col*g + row)*C + c
    (upstream before 2024-11-05, ``Decoder.get_patches_batch``).
    """
    N, C, H, W = image.shape
    h, w = H // grid, W // grid
    x = image.reshape(N, C, grid, h, grid, w)  # N, c, row, h, col, w
    if order == "channel_major":
        x = x.permute(0, 1, 2, 4, 3, 5)  # N, c, row, col, h, w
    elif order == "patch_major":
        x = x.permute(0, 4, 2, 1, 3, 5)  # N, col, row, c, h, w
    else:
        raise ValueError(f"patch order {order!r} is not one of {PATCH_ORDERS}")
    return x.reshape(N, C * grid * grid, h, w)


class Decoder(nn.Module):
    """BiRefNet decoder: (image, x1, x2, x3, x4) -> N x 1 x H x W logits.

    ``channels`` are the lateral widths [x4, x3, x2, x1] (x4 after the squeeze module). At each level the
    image, cut into patches the size of that level's map, goes through an ``ipt_blk`` and is concatenated
    before the decoder block; gradient attention ``p * sigmoid(attn(gdt_convs(p)))`` follows blocks 4..2.
    """

    def __init__(self, channels, patch_order: str):
        super().__init__()
        if patch_order not in PATCH_ORDERS:
            raise ValueError(f"patch_order {patch_order!r} is not one of {PATCH_ORDERS}")
        self.patch_order = patch_order
        ipt_in = [2 ** i * 3 for i in (10, 8, 6, 4, 0)]
        ipt_out = [c // 8 for c in channels]
        self.ipt_blk5 = SimpleConvs(ipt_in[0], ipt_out[0])
        self.ipt_blk4 = SimpleConvs(ipt_in[1], ipt_out[0])
        self.ipt_blk3 = SimpleConvs(ipt_in[2], ipt_out[1])
        self.ipt_blk2 = SimpleConvs(ipt_in[3], ipt_out[2])
        self.ipt_blk1 = SimpleConvs(ipt_in[4], ipt_out[3])
        self.decoder_block4 = BasicDecBlk(channels[0] + ipt_out[0], channels[1])
        self.decoder_block3 = BasicDecBlk(channels[1] + ipt_out[0], channels[2])
        self.decoder_block2 = BasicDecBlk(channels[2] + ipt_out[1], channels[3])
        self.decoder_block1 = BasicDecBlk(channels[3] + ipt_out[2], channels[3] // 2)
        self.conv_out1 = nn.Sequential(nn.Conv2d(channels[3] // 2 + ipt_out[3], 1, 1, 1, 0))
        self.lateral_block4 = BasicLatBlk(channels[1], channels[1])
        self.lateral_block3 = BasicLatBlk(channels[2], channels[2])
        self.lateral_block2 = BasicLatBlk(channels[3], channels[3])
        # multi-scale supervision and gradient-label heads: in the checkpoints, used only in training
        for i, c in zip((4, 3, 2), channels[1:]):
            self.add_module(f"conv_ms_spvn_{i}", nn.Conv2d(c, 1, 1, 1, 0))
        gdt = 16
        for i, c in zip((4, 3, 2), channels[1:]):
            self.add_module(f"gdt_convs_{i}", nn.Sequential(
                nn.Conv2d(c, gdt, 3, 1, 1), nn.BatchNorm2d(gdt), nn.ReLU(inplace=True)))
        for i in (4, 3, 2):
            self.add_module(f"gdt_convs_pred_{i}", nn.Sequential(nn.Conv2d(gdt, 1, 1, 1, 0)))
        for i in (4, 3, 2):
            self.add_module(f"gdt_convs_attn_{i}", nn.Sequential(nn.Conv2d(gdt, 1, 1, 1, 0)))

    def _with_patches(self, p: torch.Tensor, image: torch.Tensor, ipt_blk: nn.Module) -> torch.Tensor:
        """cat(p, ipt_blk(image cut into patches of p's size)) on channels."""
        grid = image.shape[-2] // p.shape[-2]
        if image.shape[-1] // p.shape[-1] != grid:
            raise ValueError(f"image {tuple(image.shape[-2:])} is not a whole grid of {tuple(p.shape[-2:])} patches")
        patches = _resize(image_to_patches(image, grid, self.patch_order), p.shape[2:])
        return torch.cat((p, ipt_blk(patches)), 1)

    def _attend(self, p: torch.Tensor, level: int) -> torch.Tensor:
        gdt = getattr(self, f"gdt_convs_{level}")(p)
        return p * torch.sigmoid(getattr(self, f"gdt_convs_attn_{level}")(gdt))

    def forward(self, image, x1, x2, x3, x4) -> torch.Tensor:
        p4 = self._attend(self.decoder_block4(self._with_patches(x4, image, self.ipt_blk5)), 4)
        p3 = _resize(p4, x3.shape[2:]) + self.lateral_block4(x3)
        p3 = self._attend(self.decoder_block3(self._with_patches(p3, image, self.ipt_blk4)), 3)
        p2 = _resize(p3, x2.shape[2:]) + self.lateral_block3(x2)
        p2 = self._attend(self.decoder_block2(self._with_patches(p2, image, self.ipt_blk3)), 2)
        p1 = _resize(p2, x1.shape[2:]) + self.lateral_block2(x1)
        p1 = self.decoder_block1(self._with_patches(p1, image, self.ipt_blk2))
        p1 = _resize(p1, image.shape[2:])
        return self.conv_out1(self._with_patches(p1, image, self.ipt_blk1))


# --------------------------------------------------------------------------- the net


class BiRefNet(nn.Module):
    """BiRefNet: N x 3 x H x W ImageNet-normalised RGB (H, W multiples of 32) -> ``[logits]``.

    Like upstream in eval mode, returns a list holding one N x 1 x H x W tensor of logits;
    ``sigmoid`` gives the mask. ``backbone``: ``"swin_v1_l"`` (general BiRefNet) or ``"swin_v1_t"``
    (BiRefNet_lite). ``patch_order``: how the decoder stacks image patches on channels (see the module
    docstring); the default is the order the released weights were trained with.
    """

    def __init__(self, backbone: str = "swin_v1_l", patch_order: str = RELEASED_PATCH_ORDER):
        super().__init__()
        if backbone not in SWIN_CONFIGS:
            raise ValueError(f"backbone {backbone!r} is not one of {sorted(SWIN_CONFIGS)}")
        if patch_order not in PATCH_ORDERS:
            raise ValueError(f"patch_order {patch_order!r} is not one of {PATCH_ORDERS}")
        embed_dim, depths, heads, window = SWIN_CONFIGS[backbone]
        self.bb = SwinTransformer(embed_dim, depths, heads, window)
        lateral = [2 * c for c in self.bb.num_features[::-1]]  # doubled by the half-resolution pass
        self.squeeze_module = nn.Sequential(BasicDecBlk(sum(lateral), lateral[0]))
        self.decoder = Decoder(lateral, patch_order)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The backbone on x and on x at half size, stage outputs concatenated: [x1, x2, x3, x4 with context]."""
        H, W = x.shape[2:]
        full = self.bb(x)
        half = self.bb(_resize(x, (H // 2, W // 2)))
        x1, x2, x3, x4 = (torch.cat([f, _resize(h, f.shape[2:])], 1) for f, h in zip(full, half))
        x4 = torch.cat([_resize(x1, x4.shape[2:]), _resize(x2, x4.shape[2:]), _resize(x3, x4.shape[2:]), x4], 1)
        return [x1, x2, x3, x4]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[-2] % 32 or x.shape[-1] % 32:
            raise ValueError(f"BiRefNet needs H and W multiples of 32, got {tuple(x.shape[-2:])}")
        x1, x2, x3, x4 = self.encode(x)
        return [self.decoder(x, x1, x2, x3, self.squeeze_module(x4))]
