"""Modulated deformable convolution (DCNv2) in plain torch, with ``torchvision.ops.deform_conv2d``'s
semantics; the sampling is one ``F.grid_sample`` per chunk of taps (torchvision is not needed)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


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


def _check_shapes(x, offset, weight, mask, G: int, out_size: tuple[int, int]) -> None:
    """ValueError where :func:`deform_conv2d`'s tensors disagree (``G`` offset groups, an Ho x Wo output)."""
    N, cin = x.shape[:2]
    cout, cin_g, kh, kw = weight.shape
    K, groups, (Ho, Wo) = kh * kw, cin // cin_g, out_size
    if G < 1 or offset.shape != (N, 2 * G * K, Ho, Wo) or cin % G or groups * cin_g != cin or cout % groups:
        raise ValueError(
            f"deform_conv2d: inconsistent shapes x {tuple(x.shape)}, offset {tuple(offset.shape)}, "
            f"weight {tuple(weight.shape)}"
        )
    if mask is not None and mask.shape != (N, G * K, Ho, Wo):
        raise ValueError(f"deform_conv2d: mask {tuple(mask.shape)} != {(N, G * K, Ho, Wo)}")


def _tap_positions(out_size, kernel, stride, padding, dilation, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each tap t = i*kw + j of each output pixel reads before its offset: (y, x), each kh*kw x Ho*Wo."""
    (Ho, Wo), (kh, kw), (sh, sw), (ph, pw), (dh, dw) = out_size, kernel, stride, padding, dilation
    K, P = kh * kw, Ho * Wo
    oy = torch.arange(Ho, device=device, dtype=dtype) * sh - ph
    ox = torch.arange(Wo, device=device, dtype=dtype) * sw - pw
    ty = torch.arange(kh, device=device, dtype=dtype).repeat_interleave(kw) * dh  # tap t = i*kw + j
    tx = torch.arange(kw, device=device, dtype=dtype).repeat(kh) * dw
    base_y = (ty.view(K, 1, 1) + oy.view(1, Ho, 1)).expand(K, Ho, Wo).reshape(K, P)
    base_x = (tx.view(K, 1, 1) + ox.view(1, 1, Wo)).expand(K, Ho, Wo).reshape(K, P)
    return base_y, base_x


def deform_conv2d(
    x: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride=1,
    padding=0,
    dilation=1,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
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
    _check_shapes(x, offset, weight, mask, G, (Ho, Wo))
    P = Ho * Wo
    # sampling positions in at least float32: in float16 a position near 256 would be off by up to 1/8 pixel
    pos = torch.promote_types(offset.dtype, torch.float32)
    offset = offset.reshape(N * G, K, 2, P).to(pos)
    mask = mask.reshape(N * G, K, P).to(pos) if mask is not None else offset.new_ones(N * G, K, P)
    xg = x.reshape(N * G, cin // G, H, W)
    base_y, base_x = _tap_positions((Ho, Wo), (kh, kw), (sh, sw), (ph, pw), (dh, dw), x.device, pos)
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

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        bias: bool = False,
    ):
        super().__init__()
        k = kernel_size
        self.stride, self.padding = stride, padding
        self.offset_conv = nn.Conv2d(in_channels, 2 * k * k, k, stride, padding, bias=True)
        self.modulator_conv = nn.Conv2d(in_channels, k * k, k, stride, padding, bias=True)
        self.regular_conv = nn.Conv2d(in_channels, out_channels, k, stride, padding, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset = self.offset_conv(x)
        mask = 2.0 * torch.sigmoid(self.modulator_conv(x))
        return deform_conv2d(
            x,
            offset,
            self.regular_conv.weight,
            self.regular_conv.bias,
            stride=self.stride,
            padding=self.padding,
            mask=mask,
        )
