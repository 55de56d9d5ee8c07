"""Winograd 3x3 convolution kernels for the CPU engines (3x3, stride 1, padding 1, no groups).

- fp32: :func:`conv3x3` calls NNPACK's Winograd kernel (``torch._nnpack_spatial_convolution``, a private
  torch API) on single-threaded calls where it beats oneDNN's direct kernel, in bands of rows that bound
  NNPACK's per-thread workspace; anything else goes to ``F.conv2d`` with the same numbers (~1e-6).
- bf16: :func:`conv3x3_bf16` runs Winograd F(2x2, 3x3) written here in torch ops (kernels transformed
  once by :func:`winograd_f2_weights`) on deep, small layers, else oneDNN's direct bf16 kernel.

Which convolutions of a net are routed here is decided by ``mattekit.engines.cpu_graph``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

WINOGRAD_WORKSPACE = 24 << 20  # bytes of NNPACK workspace one band of rows may need (it is kept per thread)


# ----------------------------------------------------------------------------------- fp32 (NNPACK)

def conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 3x3, stride-1, padding-1 convolution of N x C x H x W fp32 ``x``: NNPACK's Winograd kernel when
    this call runs on one thread (NNPACK's own pool is then single-threaded too) and the layer is big
    enough to gain (measured per layer shape on AVX-512 and AVX2 CPUs), else torch's own kernel.

    NNPACK's transformed tiles take about 7 bytes x (in + out channels) per pixel, in a workspace
    each thread keeps; large layers therefore run in bands of rows, which bounds it.
    """
    n, c, h, w = x.shape
    if not (c >= 16 and x.dtype == torch.float32 and torch.get_num_threads() == 1
            and (h * w >= 1600 or (h * w >= 400 and c * weight.shape[0] >= 16384))):
        return F.conv2d(x, weight, bias, padding=1)
    try:
        return _nnpack_in_bands(x, weight, bias)
    except RuntimeError:  # NNPACK refused this shape: the direct kernel gives the same numbers
        return F.conv2d(x, weight, bias, padding=1)


def _nnpack_in_bands(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """NNPACK's convolution image by image, in bands of rows of at most WINOGRAD_WORKSPACE bytes each."""
    n, c, h, w = x.shape
    rows = max(6, WINOGRAD_WORKSPACE // (7 * (c + weight.shape[0]) * w) // 6 * 6)
    out = []
    for i in range(n):
        for top in range(0, h, rows):
            bottom = min(h, top + rows)
            if top == 0 and bottom == h:
                band = x[i : i + 1].contiguous()
                out.append(torch._nnpack_spatial_convolution(band, weight, bias, [1, 1]))
                continue
            # the band with one row of context on each side, zeros at the image's own top/bottom edge
            band = F.pad(x[i : i + 1, :, max(0, top - 1) : min(h, bottom + 1)], (0, 0, int(top == 0), int(bottom == h)))
            out.append(torch._nnpack_spatial_convolution(band, weight, bias, [0, 1]))
    if len(out) == 1:
        return out[0]
    if n == 1:
        return torch.cat(out, dim=2)
    per = len(out) // n
    return torch.cat([torch.cat(out[i * per : (i + 1) * per], dim=2) for i in range(n)])


# ----------------------------------------------------------------------------------- bf16 (F(2x2, 3x3))

# Winograd F(2x2, 3x3): an output tile y (2 x 2) = A^T [(G w G^T) * (B^T d B)] A for an input tile d (4 x 4).
_WINOGRAD_G = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
BF16_MIN_CHANNELS = 128  # input channels below which conv3x3_bf16 never takes the Winograd path


def winograd_f2_weights(weight: torch.Tensor) -> torch.Tensor:
    """K x C x 3 x 3 kernels -> their 16 Winograd F(2x2, 3x3) components, 16 x C x K bfloat16
    (component a * 4 + b of G w G^T), computed in fp32 (G's entries are 0, 1 and 1/2)."""
    g = _WINOGRAD_G.to(weight.device)
    u = torch.einsum("ai,kcij,bj->abck", g, weight.detach().float(), g)
    return u.reshape(16, weight.shape[1], weight.shape[0]).to(torch.bfloat16).contiguous()


def winograd_f2(x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """3x3/stride-1/padding-1 convolution of ``x`` (N x C x H x W bf16, channels-last) with kernels
    ``u`` (from :func:`winograd_f2_weights`): Winograd F(2x2, 3x3), the 16 products as one batched bf16
    matrix product (fp32 accumulation), the output transform in fp32. N x K x H x W bf16, channels-last;
    errors 1.3-2.5x those of oneDNN's direct bf16 convolution
    (the products are rounded to bf16 before the output transform sums them)."""
    n, c, h, w = x.shape
    th, tw = (h + 1) // 2, (w + 1) // 2
    p = F.pad(x, (1, 1 + w % 2, 1, 1 + h % 2)).permute(0, 2, 3, 1)  # N x (2th+2) x (2tw+2) x C, a view
    rows = [p[:, i : i + 2 * th : 2] for i in range(4)]  # row i of every tile
    rows = (rows[0] - rows[2], rows[1] + rows[2], rows[2] - rows[1], rows[1] - rows[3])  # B^T d
    v = x.new_empty((4, 4, n, th, tw, c))
    for a, r in enumerate(rows):  # (B^T d) B, column by column
        cols = [r[:, :, j : j + 2 * tw : 2] for j in range(4)]
        torch.sub(cols[0], cols[2], out=v[a, 0])
        torch.add(cols[1], cols[2], out=v[a, 1])
        torch.sub(cols[2], cols[1], out=v[a, 2])
        torch.sub(cols[1], cols[3], out=v[a, 3])
    m = torch.bmm(v.view(16, -1, c), u).view(4, 4, n, th, tw, -1).float()
    out = m.new_empty((n, th, 2, tw, 2, m.shape[-1]))
    for i, s in enumerate((m[0] + m[1] + m[2], m[1] - m[2] - m[3])):  # A^T m, then (A^T m) A
        torch.add(s[0] + s[1], s[2], out=out[:, :, i, :, 0])
        torch.sub(s[1] - s[2], s[3], out=out[:, :, i, :, 1])
    out = out.view(n, 2 * th, 2 * tw, -1)[:, :h, :w]
    if bias is not None:
        out = out + bias
    return out.to(torch.bfloat16).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


def conv3x3_bf16(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, u: torch.Tensor) -> torch.Tensor:
    """A 3x3/stride-1/padding-1 bf16 convolution: :func:`winograd_f2` on deep, small layers (at least
    BF16_MIN_CHANNELS channels and at most 12.5 pixels per channel: measured faster there on AVX-512
    BF16), else oneDNN's direct kernel."""
    c, h, w = x.shape[1:]
    if x.dtype is torch.bfloat16 and c >= BF16_MIN_CHANNELS and h * w * 8 <= c * 100:
        return winograd_f2(x, u, bias)
    return F.conv2d(x, weight, bias, padding=1)
