"""RFDN: residual feature distillation network for lightweight x4 super-resolution (njulj/RFDN)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import Family


def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=(k - 1) // 2)


class ESA(nn.Module):
    """Enhanced spatial attention: a coarse (stride 2 + 7/3 max-pool) mask gating the input.

    N x n_feats x H x W -> same shape.
    """

    def __init__(self, n_feats: int):
        super().__init__()
        f = n_feats // 4
        self.conv1 = _conv(n_feats, f, 1)
        self.conv_f = _conv(f, f, 1)
        self.conv_max = _conv(f, f, 3)
        self.conv2 = nn.Conv2d(f, f, 3, stride=2, padding=0)
        self.conv3 = _conv(f, f, 3)
        self.conv3_ = _conv(f, f, 3)
        self.conv4 = _conv(f, n_feats, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(x)
        c = F.max_pool2d(self.conv2(c1_), kernel_size=7, stride=3)
        c = F.relu(self.conv_max(c))
        c = self.conv3_(F.relu(self.conv3(c)))
        c = F.interpolate(c, x.shape[2:], mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.conv4(c + self.conv_f(c1_)))


class RFDB(nn.Module):
    """Residual feature distillation block. N x C x H x W -> same shape."""

    def __init__(self, in_channels: int):
        super().__init__()
        dc = in_channels // 2
        for i in (1, 2, 3):
            setattr(self, f"c{i}_d", _conv(in_channels, dc, 1))
            setattr(self, f"c{i}_r", _conv(in_channels, in_channels, 3))
        self.c4 = _conv(in_channels, dc, 3)
        self.act = nn.LeakyReLU(0.05, inplace=True)
        self.c5 = _conv(dc * 4, in_channels, 1)
        self.esa = ESA(in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        distilled = []
        r = x
        for conv_d, conv_r in ((self.c1_d, self.c1_r), (self.c2_d, self.c2_r), (self.c3_d, self.c3_r)):
            distilled.append(self.act(conv_d(r)))
            r = self.act(conv_r(r) + r)
        distilled.append(self.act(self.c4(r)))
        return self.esa(self.c5(torch.cat(distilled, 1)))


class RFDN(nn.Module):
    """RFDN x4 super-resolution.

    Input: N x in_nc x H x W, RGB on the 0..255 scale (not divided by 255).
    Output: N x out_nc x 4H x 4W on the 0..255 scale, not clamped.
    Like upstream, ``upscale`` is accepted but ignored: the upsampler is always x4.
    """

    def __init__(self, in_nc=3, nf=50, num_modules=4, out_nc=3, upscale=4):
        super().__init__()
        self.num_modules = num_modules
        self.fea_conv = _conv(in_nc, nf, 3)
        for i in range(1, num_modules + 1):
            setattr(self, f"B{i}", RFDB(nf))
        self.c = nn.Sequential(_conv(nf * num_modules, nf, 1), nn.LeakyReLU(0.05, inplace=True))
        self.LR_conv = _conv(nf, nf, 3)
        self.upsampler = nn.Sequential(_conv(nf, out_nc * 16, 3), nn.PixelShuffle(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.fea_conv(x)
        outs, out = [], fea
        for i in range(1, self.num_modules + 1):
            out = getattr(self, f"B{i}")(out)
            outs.append(out)
        out_lr = self.LR_conv(self.c(torch.cat(outs, 1))) + fea
        return self.upsampler(out_lr)


FAMILY = Family("rfdn", {"RFDN": RFDN})
