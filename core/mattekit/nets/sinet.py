"""SINet portrait segmentation (Park et al., clovaai/ext_portrait_segmentation).

Also holds the small conv/BN/PReLU blocks shared with ``extremec3``. Every upsampling is
bilinear with ``align_corners=True`` (upstream's ``nn.UpsamplingBilinear2d``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import Family

# Dnc_SINet's hard-coded encoder layout: per S2 module, [kernel, avg-pool size] of each branch.
# The first two entries feed level2 (p modules), the rest level3 (q modules).
SINET_CONFIG = (
    ((3, 1), (5, 1)),
    ((3, 1), (3, 1)),
    ((3, 1), (5, 1)),
    ((3, 1), (3, 1)),
    ((5, 1), (3, 2)),
    ((5, 2), (3, 4)),
    ((3, 1), (3, 1)),
    ((5, 1), (5, 1)),
    ((3, 2), (3, 4)),
    ((3, 1), (5, 2)),
)


def upsample(scale: int) -> nn.Module:
    """Bilinear upsampling with align_corners=True (same as nn.UpsamplingBilinear2d)."""
    return nn.Upsample(scale_factor=scale, mode="bilinear", align_corners=True)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class C(nn.Module):
    """Bias-free 'same' conv."""

    def __init__(self, cin, cout, k, stride=1, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False)

    def forward(self, x):
        return self.conv(x)


class BR(nn.Module):
    """BatchNorm (eps 1e-3) + per-channel PReLU."""

    def __init__(self, c):
        super().__init__()
        self.bn = nn.BatchNorm2d(c, eps=1e-3)
        self.act = nn.PReLU(c)

    def forward(self, x):
        return self.act(self.bn(x))


class CBR(BR):
    """Bias-free 'same' conv + BatchNorm (eps 1e-3) + PReLU."""

    def __init__(self, cin, cout, k, stride=1):
        super().__init__(cout)
        self.conv = nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, bias=False)

    def forward(self, x):
        return super().forward(self.conv(x))


class SqueezeBlock(nn.Module):
    """Channel re-weighting by a global-average-pooled MLP; note: no sigmoid (as upstream)."""

    def __init__(self, c, divide):
        super().__init__()
        hidden = int(c / divide)
        layers = [nn.Linear(c, hidden), nn.PReLU(hidden)]
        if divide > 1:
            layers += [nn.Linear(hidden, c), nn.PReLU(c)]
        self.dense = nn.Sequential(*layers)

    def forward(self, x):
        b, c, h, w = x.shape
        w_ = self.dense(F.avg_pool2d(x, (h, w)).view(b, c))
        return w_.view(b, c, 1, 1) * x


class SEseparableCBR(nn.Module):
    """Depthwise conv (strided) -> SqueezeBlock -> pointwise conv -> BN -> PReLU."""

    def __init__(self, cin, cout, k, stride, divide):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(cin, cin, k, stride, (k - 1) // 2, groups=cin, bias=False),
            SqueezeBlock(cin, divide),
            nn.Conv2d(cin, cout, 1, bias=False),
        )
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)
        self.act = nn.PReLU(cout)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class S2block(nn.Module):
    """[avg-pool] -> depthwise conv + BN -> PReLU + pointwise conv -> [bilinear up] -> BN."""

    def __init__(self, cin, cout, k, pool):
        super().__init__()
        self.pool = pool
        self.conv = nn.Sequential(
            nn.Conv2d(cin, cin, k, 1, (k - 1) // 2, groups=cin, bias=False), nn.BatchNorm2d(cin, eps=1e-3)
        )
        self.act_conv1x1 = nn.Sequential(nn.PReLU(cin), nn.Conv2d(cin, cout, 1, bias=False))
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x):
        if self.pool > 1:
            x = F.avg_pool2d(x, self.pool, self.pool)
        y = self.act_conv1x1(self.conv(x))
        if self.pool > 1:
            y = F.interpolate(y, scale_factor=self.pool, mode="bilinear", align_corners=True)
        return self.bn(y)


class S2module(nn.Module):
    """Grouped 1x1 reduce + channel shuffle, two S2 branches concatenated, optional residual, BR."""

    def __init__(self, cin, cout, config, add=True):
        super().__init__()
        self.groups = len(config)
        n = cout // self.groups
        self.c1 = C(cin, n, 1, groups=self.groups)
        for i, (k, pool) in enumerate(config):
            extra = cout - self.groups * n if i == 0 else 0
            self.add_module(f"d{i + 1}", S2block(n, n + extra, k, pool))
        self.BR = BR(cout)
        self.add = add

    def forward(self, x):
        y = channel_shuffle(self.c1(x), self.groups)
        y = torch.cat([getattr(self, f"d{i + 1}")(y) for i in range(self.groups)], 1)
        return self.BR(x + y if self.add else y)


class SINetEncoder(nn.Module):
    """SINet encoder; returns (level-2 features at 1/4, class logits at 1/8)."""

    def __init__(self, config, classes, p, q, chnn):
        super().__init__()
        dim1, dim2, dim3 = 16, 48 + 4 * (chnn - 1), 96 + 4 * (chnn - 1)
        self.level1 = CBR(3, 12, 3, 2)
        self.level2_0 = SEseparableCBR(12, dim1, 3, 2, divide=1)
        self.level2 = nn.ModuleList(S2module(dim1 if i == 0 else dim2, dim2, config[i], add=i > 0) for i in range(p))
        self.BR2 = BR(dim2 + dim1)
        self.level3_0 = SEseparableCBR(dim2 + dim1, dim2, 3, 2, divide=2)
        self.level3 = nn.ModuleList(
            S2module(dim2 if i == 0 else dim3, dim3, config[2 + i], add=i > 0) for i in range(q)
        )
        self.BR3 = BR(dim3 + dim2)
        self.classifier = C(dim3 + dim2, classes, 1)

    def forward(self, x):
        out2_0 = self.level2_0(self.level1(x))
        out2 = out2_0
        for layer in self.level2:
            out2 = layer(out2)
        out3_0 = self.level3_0(self.BR2(torch.cat([out2_0, out2], 1)))
        out3 = out3_0
        for layer in self.level3:
            out3 = layer(out3)
        return out2, self.classifier(self.BR3(torch.cat([out3_0, out3], 1)))


class SINet(nn.Module):
    """SINet (Dnc_SINet factory, encoder layout hard-coded).

    Input: N x 3 x H x W, BGR, ((pixel - mean) / std) / 255; H, W multiples of 8 (224 in the
    reference setup). Output: N x classes x H x W raw logits (argmax; class 1 = person).
    """

    def __init__(self, classes=2, p=2, q=8, chnn=1):
        super().__init__()
        dim2 = 48 + 4 * (chnn - 1)
        self.encoder = SINetEncoder(SINET_CONFIG, classes, p, q, chnn)
        self.up = upsample(2)
        self.bn_3 = nn.BatchNorm2d(classes, eps=1e-3)
        self.level2_C = CBR(dim2, classes, 1, 1)
        self.bn_2 = nn.BatchNorm2d(classes, eps=1e-3)
        self.classifier = nn.Sequential(upsample(2), nn.Conv2d(classes, classes, 3, 1, 1, bias=False))

    def forward(self, x):
        out2, enc = self.encoder(x)
        stage1 = self.bn_3(self.up(enc))
        gate = 1 - torch.softmax(stage1, dim=1).max(dim=1, keepdim=True)[0]
        stage2 = self.bn_2(self.up(self.level2_C(out2) * gate + stage1))
        return self.classifier(stage2)


FAMILY = Family("sinet", {"SINet": SINet})
