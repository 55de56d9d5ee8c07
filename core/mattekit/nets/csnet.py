"""CSNet (SOD100K): light-weight salient object detection built from generalized octave convolutions.

Feature maps are "octave sets": a list of tensors, branch ``i`` at 1/2**i of the block's base resolution
(a branch may be ``None`` when it has no channels). All channel widths come from a pruned layer config,
given as nested lists of numbers (see ``CSNET_L_X2``).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import Family

# Layer config of csnet-L-x2 (upstream checkpoints/csnet-L-x2/csnet-L-x2.bin): one [in_split, out_split]
# entry per ILBlock (stage0, then stages 1-4), three CSF-head entries (the middle one adds the per-branch
# dilation widths for dilations 1, 2, 4, 8, 16), and finally the block count of each stage.
CSNET_L_X2 = [
    [3, [13, 10]],
    [[13, 10], [13, 12]],
    [[13, 12], [18, 11]],
    [[18, 11], [18, 12]],
    [[18, 12], [28, 21]],
    [[28, 21], [34, 22]],
    [[34, 22], [31, 29]],
    [[31, 29], [51]],
    [[51], [23, 26]],
    [[23, 26], [27, 26]],
    [[27, 26], [25, 20]],
    [[25, 20], [17, 21]],
    [[17, 21], [19, 25]],
    [[19, 25], [38]],
    [[38], [18, 31]],
    [[18, 31], [31, 27]],
    [[31, 27], [26, 44]],
    [[26, 44], [64]],
    [[51, 38, 64], [17, 38, 32]],
    [[17, 38, 32], [8, 24, 18], [[2, 1, 2, 2, 1], [0, 6, 6, 7, 5], [0, 1, 3, 7, 7]]],
    [[8, 24, 18], [79]],
    [3, 4, 6, 4],
]

_DILATIONS = (1, 2, 4, 8, 16)


def _widths(split) -> list[int]:
    """A split entry (number or list of numbers) as a list of integer channel counts."""
    if isinstance(split, (int, float)):
        split = [split]
    return [int(round(float(c))) for c in split]


def _bounds(widths: list[int]) -> list[tuple[int, int]]:
    """Channel [begin, end) of each branch inside the concatenated width."""
    out, start = [], 0
    for w in widths:
        out.append((start, start + w))
        start += w
    return out


def _init_conv_weight(weight: torch.Tensor, scale: float = 1.0) -> nn.Parameter:
    """``weight`` (C_out x C_in x kH x kW) filled as ``nn.Conv2d`` initialises its own, times ``scale``."""
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    with torch.no_grad():
        weight.mul_(scale)
    return nn.Parameter(weight)


class Conv2dX100(nn.Module):
    """Bias-free conv whose stored weight is multiplied by 100 at forward time (upstream trick)."""

    def __init__(self, cin, cout, kernel_size, stride=1, padding=0, dilation=1, groups=1):
        super().__init__()
        k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
        self.weight = _init_conv_weight(torch.empty(cout, cin // groups, *k), 0.01)  # x100 at forward time
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def forward(self, x):
        return F.conv2d(x, 100.0 * self.weight, None, self.stride, self.padding, self.dilation, self.groups)


class GOctaveConv(nn.Module):
    """Generalized octave conv (no x100 scaling): every in-branch i feeds every out-branch j.

    Stride 2 avg-pools each input first; i < j max-pools by 2**(j-i) before the conv, i > j upsamples the
    conv output bilinearly by 2**(i-j). Contributions to one output are summed in input-branch order.
    """

    def __init__(self, in_widths, out_widths, kernel_size, stride=1, padding=0):
        super().__init__()
        self.weight = _init_conv_weight(torch.empty(sum(out_widths), sum(in_widths), *kernel_size))
        self.in_bounds, self.out_bounds = _bounds(in_widths), _bounds(out_widths)
        self.stride, self.padding = stride, padding

    def forward(self, xs):
        ys = [[] for _ in self.out_bounds]
        for i, ((bx, ex), x) in enumerate(zip(self.in_bounds, xs)):
            if x is None or bx == ex:
                continue
            if self.stride == 2:
                x = F.avg_pool2d(x, (2, 2), stride=2)
            for j, (by, ey) in enumerate(self.out_bounds):
                if by == ey:
                    continue
                w = self.weight[by:ey, bx:ex]
                if i > j:
                    y = F.interpolate(F.conv2d(x, w, None, 1, self.padding), scale_factor=2 ** (i - j), mode="bilinear")
                else:
                    xi = F.max_pool2d(x, 2 ** (j - i), stride=2 ** (j - i)) if i < j else x
                    y = F.conv2d(xi, w, None, 1, self.padding)
                ys[j].append(y)
        return [sum(y) if y else None for y in ys]


def _bn_prelu(widths):
    """Per-branch BatchNorm2d and PReLU lists (None for empty branches)."""
    bns = nn.ModuleList([nn.BatchNorm2d(w) if w else None for w in widths])
    prelus = nn.ModuleList([nn.PReLU(w) if w else None for w in widths])
    return bns, prelus


class GOctaveCBR(nn.Module):
    """Octave conv (plain Conv2dX100 when both sides have one branch) + per-branch BN + PReLU -> octave set."""

    def __init__(self, in_widths, out_widths, kernel_size=(1, 1), stride=1, padding=0):
        super().__init__()
        self.std_conv = len(in_widths) == 1 and len(out_widths) == 1
        if self.std_conv:
            self.conv = Conv2dX100(in_widths[0], out_widths[0], kernel_size, stride, padding)
        else:
            self.conv = GOctaveConv(in_widths, out_widths, kernel_size, stride, padding)
        self.bns, self.prelus = _bn_prelu(out_widths)

    def forward(self, xs):
        ys = [self.conv(xs[0])] if self.std_conv else self.conv(xs)
        return [None if y is None else self.prelus[i](self.bns[i](y)) for i, y in enumerate(ys)]


class DepthwiseOctaveBR(nn.Module):
    """Per-branch depthwise 3x3 Conv2dX100 + BN + PReLU (upstream SimplifiedGOctConvBR)."""

    def __init__(self, widths):
        super().__init__()
        self.convs = nn.ModuleList([Conv2dX100(w, w, 3, padding=1, groups=w) if w else None for w in widths])
        self.bns, self.prelus = _bn_prelu(widths)

    def forward(self, xs):
        return [None if x is None else self.prelus[i](self.bns[i](self.convs[i](x))) for i, x in enumerate(xs)]


class ILBlock(nn.Module):
    """Octave 1x1 conv (3x3 when first or strided) followed by two depthwise octave 3x3 convs."""

    def __init__(self, in_widths, out_widths, stride=1, first=False):
        super().__init__()
        k, p = ((3, 3), 1) if first or stride == 2 else ((1, 1), 0)
        self.conv1x1 = GOctaveCBR(in_widths, out_widths, k, stride, p)
        self.conv3x3_1 = DepthwiseOctaveBR(out_widths)
        self.conv3x3_2 = DepthwiseOctaveBR(out_widths)

    def forward(self, xs):
        return self.conv3x3_2(self.conv3x3_1(self.conv1x1(xs)))


class MSBlock(nn.Module):
    """Parallel dilated 3x3 Conv2dX100 (dilations 1..16, some pruned away), concatenated, BN + PReLU."""

    def __init__(self, cin, cout, dil_widths):
        super().__init__()
        self.msconv = nn.ModuleList(
            [Conv2dX100(cin, w, 3, padding=d, dilation=d) if w else None for d, w in zip(_DILATIONS, dil_widths)]
        )
        self.bn = nn.BatchNorm2d(cout)
        self.prelu = nn.PReLU(cout)

    def forward(self, x):
        return self.prelu(self.bn(torch.cat([conv(x) for conv in self.msconv if conv is not None], dim=1)))


class PallMSBlock(nn.Module):
    """One MSBlock per octave branch (None where every dilation width was pruned)."""

    def __init__(self, in_widths, out_widths, dil_widths):
        super().__init__()
        self.convs = nn.ModuleList(
            [MSBlock(ci, co, dw) if max(dw) else None for ci, co, dw in zip(in_widths, out_widths, dil_widths)]
        )

    def forward(self, xs):
        return [None if conv is None else conv(x) for conv, x in zip(self.convs, xs)]


class CSFHead(nn.Module):
    """Cross-stage fusion: octave 1x1 over [stage2, stage3, stage4], multi-scale dilations, fuse to one branch."""

    def __init__(self, config):
        super().__init__()
        fuse_in, mid_in = _widths(config[0][0]), _widths(config[1][0])
        mid_out = _widths(config[1][1])
        dils = [_widths(d) for d in config[1][2]]
        self.fuse = GOctaveCBR(fuse_in, mid_in)
        self.ms = PallMSBlock(mid_in, mid_out, dils)
        self.fuse1x1 = GOctaveCBR(mid_out, [sum(_widths(config[2][1]))])

    def forward(self, xs):
        return self.fuse1x1(self.ms(self.fuse(xs)))


class CSNet(nn.Module):
    """CSNet saliency net; widths from ``layer_config`` (nested lists of numbers, e.g. ``CSNET_L_X2``).

    Input: N x 3 x H x W, RGB in [0, 1] normalised with ImageNet mean/std (H, W multiples of 16).
    Output: N x num_classes x H x W raw saliency logits (sigmoid gives saliency in [0, 1]).
    """

    def __init__(self, layer_config=CSNET_L_X2, num_classes=1):
        super().__init__()
        self.stages = [int(s) for s in layer_config[-1]]
        self.stage0 = nn.ModuleList([ILBlock(_widths(layer_config[0][0]), _widths(layer_config[0][1]), first=True)])
        index = 1
        for s, n in enumerate(self.stages, start=1):
            blocks = [
                ILBlock(
                    _widths(layer_config[index + b][0]),
                    _widths(layer_config[index + b][1]),
                    stride=2 if s > 1 and b == 0 else 1,
                )
                for b in range(n)
            ]
            setattr(self, f"stage{s}", nn.ModuleList(blocks))
            index += n
        self.oct_fuse = CSFHead(layer_config[index : index + 3])
        self.cls_layer = nn.Conv2d(sum(_widths(layer_config[-2][1])), num_classes, kernel_size=1)

    def forward(self, x):
        feats, xs = [], [x]
        for s in range(5):
            for block in getattr(self, f"stage{s}"):
                xs = block(xs)
            feats.append(xs[0])
        out = self.cls_layer(self.oct_fuse(feats[2:])[0])
        return F.interpolate(out, x.shape[2:], mode="bilinear", align_corners=False)


FAMILY = Family("csnet", {"CSNet": CSNet})
