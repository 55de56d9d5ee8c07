"""IS-Net (DIS) dichotomous image segmentation net.

Re-implementation of xuebinqin/DIS ``IS-Net/models/isnet.py`` ``ISNetDIS`` with the same
state-dict keys; the RSU blocks and nested U body come from :mod:`mattekit.nets.u2net`.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .u2net import U2Body, _upsample_like
from . import Family


class ISNetDIS(U2Body):
    """IS-Net: a stride-2 conv stem then the U2NET body (stage 1 runs at 1/2 resolution).

    Input: N x in_ch x H x W, RGB in [0, 1] minus 0.5 (std 1).
    Output: ([d1, ..., d6], [hx1d, hx2d, hx3d, hx4d, hx5d, hx6]): the d_i are
    N x out_ch x H x W in [0, 1] (sigmoid applied; d1 is the prediction); the hx are
    decoder feature maps (post-ReLU, >= 0) with 64, 64, 128, 256, 512, 512 channels at
    1/2 ... 1/64 of the input size (ceil-rounded).
    """

    def __init__(self, in_ch: int = 3, out_ch: int = 1):
        super().__init__(
            64,
            out_ch,
            (32, 32, 64, 128, 256, 256),
            (64, 128, 256, 512, 512, 512),
            (16, 32, 64, 128, 256),
            (64, 64, 128, 256, 512),
        )
        self.conv_in = nn.Conv2d(in_ch, 64, 3, stride=2, padding=1)  # no BN/ReLU; upstream's pool_in is unused

    def forward(self, x: torch.Tensor):
        feats = self.features(self.conv_in(x))
        return [torch.sigmoid(_upsample_like(d, x)) for d in self.sides(feats)], feats


FAMILY = Family("isnet", {"ISNetDIS": ISNetDIS})
