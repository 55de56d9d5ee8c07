"""SRVGGNetCompact: Real-ESRGAN's compact VGG-style x4 super-resolution net (realesr-*-v3)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import Family


def _act(act_type: str, num_feat: int) -> nn.Module:
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    if act_type == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.1, inplace=True)
    raise ValueError(f"unknown act_type {act_type!r}")


class SRVGGNetCompact(nn.Module):
    """Plain conv/activation stack on the LR grid, then PixelShuffle, plus a nearest-upsampled skip.

    Input: N x num_in_ch x H x W, RGB in [0, 1].
    Output: N x num_out_ch x (H*upscale) x (W*upscale), nominally [0, 1] but not clamped.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4, act_type="prelu"):
        super().__init__()
        self.upscale = upscale
        # One flat ModuleList (conv, act, conv, act, ..., conv) so keys read body.{i}.*
        layers = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), _act(act_type, num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), _act(act_type, num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        return self.upsampler(out) + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


FAMILY = Family("srvgg", {"SRVGGNetCompact": SRVGGNetCompact})
