"""ExtremeC3Net portrait segmentation (Park et al., clovaai/ext_portrait_segmentation).

BatchNorm eps is mixed as upstream: 1e-3 in CBR/BR and the C3 module output, the torch default
1e-5 inside the dilated C3 branches and in the coarse-path ``upsample``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .sinet import BR, C, CBR, upsample
from . import Family


class C3block(nn.Module):
    """Depthwise 3x3 conv with dilation d, then pointwise conv.

    For d > 1 the dilated conv is preceded by a separable (2d-1)x1 / 1x(2d-1) depthwise pair
    (BN 1e-5 + PReLU between, BN 1e-5 after).
    """

    def __init__(self, cin, cout, d):
        super().__init__()
        layers = []
        if d > 1:
            k = 2 * d - 1
            layers = [
                nn.Conv2d(cin, cin, (k, 1), padding=(d - 1, 0), groups=cin, bias=False),
                nn.BatchNorm2d(cin),
                nn.PReLU(cin),
                nn.Conv2d(cin, cin, (1, k), padding=(0, d - 1), groups=cin, bias=False),
                nn.BatchNorm2d(cin),
            ]
        layers += [
            nn.Conv2d(cin, cin, 3, padding=d, dilation=d, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return self.conv(x)


class AdvancedC3(nn.Module):
    """Reduce (1x1, or 3x3 stride 2 when ``down``), three C3 branches (dilations ``ratio``)
    concatenated, optional residual, then BN + PReLU.

    The down variant (upstream Down_advancedC3) keeps its BN/PReLU as ``bn``/``act``; the
    plain one wraps them in a BR named ``bn``.
    """

    def __init__(self, cin, cout, ratio=(2, 4, 8), add=True, down=False):
        super().__init__()
        n = cout // 3
        self.c1 = C(cin, n, 3, 2) if down else C(cin, n, 1)
        self.d1 = C3block(n, cout - 2 * n, ratio[0])
        self.d2 = C3block(n, n, ratio[1])
        self.d3 = C3block(n, n, ratio[2])
        if down:
            self.bn, self.act = nn.BatchNorm2d(cout, eps=1e-3), nn.PReLU(cout)
        else:
            self.bn, self.act = BR(cout), nn.Identity()
        self.add = add and not down

    def forward(self, x):
        y = self.c1(x)
        y = torch.cat([self.d1(y), self.d2(y), self.d3(y)], 1)
        return self.act(self.bn(x + y if self.add else y))


class ExtremeC3Encoder(nn.Module):
    """Coarse encoder (upstream ExtremeC3NetCoarse without its classifier); 112 ch at 1/4."""

    def __init__(self, p, q):
        super().__init__()
        self.level1 = CBR(3, 24, 3, 2)
        self.b1 = BR(24 + 3)
        self.level2_0 = AdvancedC3(27, 48, ratio=(1, 2, 3), down=True)
        self.level2 = nn.ModuleList(AdvancedC3(48, 48, ratio=(1, 3, 4)) for _ in range(p))
        self.b2 = BR(48 * 2 + 3)
        self.level3_0 = AdvancedC3(99, 56, ratio=(1, 3, 5), add=False)
        self.level3 = nn.ModuleList(AdvancedC3(56, 56) for _ in range(q))
        self.b3 = BR(56 * 2)

    def forward(self, x):
        inp1 = F.avg_pool2d(x, 2, 2)
        inp2 = F.avg_pool2d(inp1, 2, 2)
        out1_0 = self.level2_0(self.b1(torch.cat([self.level1(x), inp1], 1)))
        out1 = out1_0
        for layer in self.level2:
            out1 = layer(out1)
        out2_0 = self.level3_0(self.b2(torch.cat([out1, out1_0, inp2], 1)))
        out2 = out2_0
        for layer in self.level3:
            out2 = layer(out2)
        return self.b3(torch.cat([out2_0, out2], 1))


class ExtremeC3Net(nn.Module):
    """ExtremeC3Net (Stage2_ExtremeC3Net): coarse encoder + fine 1/2-resolution branch.

    Input: N x 3 x H x W, BGR, ((pixel - mean) / std) / 255; H, W multiples of 4 (224 in the
    reference setup). Output: N x classes x H x W raw logits (mask = logit > 0).
    """

    def __init__(self, classes=1, p=1, q=5):
        super().__init__()
        self.encoder = ExtremeC3Encoder(p, q)
        self.upsample = nn.Sequential(nn.Conv2d(112, 24, 1, bias=False), nn.BatchNorm2d(24), upsample(2))
        self.Fine = nn.Sequential(C(3, 24, 3, 2), AdvancedC3(24, 24))
        self.classifier = nn.Sequential(BR(24), upsample(2), nn.Conv2d(24, classes, 1, bias=False))

    def forward(self, x):
        return self.classifier(self.upsample(self.encoder(x)) + self.Fine(x))


FAMILY = Family("extremec3", {"ExtremeC3Net": ExtremeC3Net})
