"""U^2-Net salient-object / matting nets (U2NET, U2NETP) and their shared RSU blocks.

Re-implementation of xuebinqin/U-2-Net ``model/u2net.py`` with the same state-dict keys.
The RSU blocks and the nested U body are reused by :mod:`mattekit.nets.isnet`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import Family


def _pool(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 2, stride=2, ceil_mode=True)


def _upsample_like(src: torch.Tensor, tar: torch.Tensor) -> torch.Tensor:
    return F.interpolate(src, size=tar.shape[2:], mode="bilinear", align_corners=False)


class REBNCONV(nn.Module):
    """Conv3x3 (dilation ``dirate``) -> BatchNorm -> ReLU; keeps the spatial size."""

    def __init__(self, in_ch: int, out_ch: int, dirate: int = 1):
        super().__init__()
        self.conv_s1 = nn.Conv2d(in_ch, out_ch, 3, padding=dirate, dilation=dirate)
        self.bn_s1 = nn.BatchNorm2d(out_ch)
        self.relu_s1 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu_s1(self.bn_s1(self.conv_s1(x)))


class RSU(nn.Module):
    """Residual U-block of ``height`` levels: N x in_ch x H x W -> N x out_ch x H x W.

    ``height`` 4..7 gives RSU4..RSU7 (max-pool down, bilinear up, dilation 2 at the bottom);
    ``dilated=True`` gives RSU4F (no resampling, dilations 1, 2, 4, 8).
    Returns the decoder output plus the input conv's output.
    """

    def __init__(self, height: int, in_ch: int, mid_ch: int, out_ch: int, dilated: bool = False):
        super().__init__()
        self.height, self.dilated = height, dilated
        rates = [2**i for i in range(height)] if dilated else [1] * (height - 1) + [2]
        self.rebnconvin = REBNCONV(in_ch, out_ch)
        for i in range(1, height + 1):
            setattr(self, f"rebnconv{i}", REBNCONV(out_ch if i == 1 else mid_ch, mid_ch, rates[i - 1]))
        for i in range(height - 1, 0, -1):
            setattr(self, f"rebnconv{i}d", REBNCONV(2 * mid_ch, out_ch if i == 1 else mid_ch, rates[i - 1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hxin = self.rebnconvin(x)
        enc, hx = [], hxin
        for i in range(1, self.height + 1):
            if not self.dilated and 2 <= i < self.height:
                hx = _pool(hx)  # the bottom (dilated) level keeps its input's size
            hx = getattr(self, f"rebnconv{i}")(hx)
            enc.append(hx)
        hx = enc.pop()
        for i in range(self.height - 1, 0, -1):
            skip = enc[i - 1]
            if not self.dilated and i < self.height - 1:
                hx = _upsample_like(hx, skip)
            hx = getattr(self, f"rebnconv{i}d")(torch.cat((hx, skip), 1))
        return hx + hxin


# Upstream block names, as used in the stage tables below.
def RSU7(in_ch: int, mid_ch: int, out_ch: int) -> RSU:
    return RSU(7, in_ch, mid_ch, out_ch)


def RSU6(in_ch: int, mid_ch: int, out_ch: int) -> RSU:
    return RSU(6, in_ch, mid_ch, out_ch)


def RSU5(in_ch: int, mid_ch: int, out_ch: int) -> RSU:
    return RSU(5, in_ch, mid_ch, out_ch)


def RSU4(in_ch: int, mid_ch: int, out_ch: int) -> RSU:
    return RSU(4, in_ch, mid_ch, out_ch)


def RSU4F(in_ch: int, mid_ch: int, out_ch: int) -> RSU:
    return RSU(4, in_ch, mid_ch, out_ch, dilated=True)


class U2Body(nn.Module):
    """Six-stage nested U (stage1..stage6, stage5d..stage1d) plus side convs side1..side6.

    ``features(x)`` maps N x in_ch x H x W to [hx1d, hx2d, hx3d, hx4d, hx5d, hx6]
    (stage k at 1/2^(k-1) of the input size, ceil-rounded); ``sides(feats)`` gives the
    six raw (pre-sigmoid) single-scale logits, each at its feature map's size.
    """

    _blocks = (RSU7, RSU6, RSU5, RSU4, RSU4F, RSU4F)

    def __init__(self, in_ch, out_ch, enc_mid, enc_out, dec_mid, dec_out):
        super().__init__()
        ch = in_ch
        for k in range(6):
            setattr(self, f"stage{k + 1}", self._blocks[k](ch, enc_mid[k], enc_out[k]))
            ch = enc_out[k]
        for k in range(5, 0, -1):
            setattr(self, f"stage{k}d", self._blocks[k - 1](ch + enc_out[k - 1], dec_mid[k - 1], dec_out[k - 1]))
            ch = dec_out[k - 1]
        for k, c in enumerate(list(dec_out) + [enc_out[5]], start=1):
            setattr(self, f"side{k}", nn.Conv2d(c, out_ch, 3, padding=1))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        enc, hx = [], x
        for k in range(1, 7):
            hx = getattr(self, f"stage{k}")(hx if k == 1 else _pool(hx))
            enc.append(hx)
        feats = [enc[5]]
        for k in range(5, 0, -1):
            skip = enc[k - 1]
            feats.insert(0, getattr(self, f"stage{k}d")(torch.cat((_upsample_like(feats[0], skip), skip), 1)))
        return feats

    def sides(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [getattr(self, f"side{k}")(f) for k, f in enumerate(feats, start=1)]


class U2NET(U2Body):
    """U^2-Net (44.0M params).

    Input: N x in_ch x H x W, ImageNet-normalised RGB (any H, W).
    Output: tuple (d0, d1, ..., d6), each N x out_ch x H x W in [0, 1] (sigmoid applied);
    d0 is the fused prediction.
    """

    def __init__(self, in_ch: int = 3, out_ch: int = 1, widths=None):
        enc_mid, enc_out, dec_mid, dec_out = widths or (
            (32, 32, 64, 128, 256, 256),
            (64, 128, 256, 512, 512, 512),
            (16, 32, 64, 128, 256),
            (64, 64, 128, 256, 512),
        )
        super().__init__(in_ch, out_ch, enc_mid, enc_out, dec_mid, dec_out)
        self.outconv = nn.Conv2d(6 * out_ch, out_ch, 1)

    def forward(self, x: torch.Tensor):
        d = self.sides(self.features(x))
        d = d[:1] + [_upsample_like(s, d[0]) for s in d[1:]]
        d0 = self.outconv(torch.cat(d, 1))
        return tuple(torch.sigmoid(t) for t in [d0] + d)


class U2NETP(U2NET):
    """U^2-Net small (1.13M params): same I/O as :class:`U2NET`, all stages mid 16 / out 64."""

    def __init__(self, in_ch: int = 3, out_ch: int = 1):
        super().__init__(in_ch, out_ch, widths=((16,) * 6, (64,) * 6, (16,) * 5, (64,) * 5))


FAMILY = Family("u2net", {"U2NET": U2NET, "U2NETP": U2NETP})
