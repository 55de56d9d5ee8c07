"""BiRefNet's decoder: deformable ASPP decoder blocks, lateral 1x1 convs, image patches fed at every level,
gradient attention. Every resize is bilinear with ``align_corners=True``."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .deform import DeformableConv2d

PATCH_ORDERS = ("patch_major", "channel_major")


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    """Bilinear resize with ``align_corners=True`` (every resize in BiRefNet is this one)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


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
        self.aspp_deforms = nn.ModuleList(
            [_ASPPModuleDeformable(in_channels, mid, k, padding=k // 2) for k in parallel_block_sizes]
        )
        self.global_avg_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Conv2d(in_channels, mid, 1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
        )
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
        ipt_in = [2**i * 3 for i in (10, 8, 6, 4, 0)]
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
            self.add_module(
                f"gdt_convs_{i}", nn.Sequential(nn.Conv2d(c, gdt, 3, 1, 1), nn.BatchNorm2d(gdt), nn.ReLU(inplace=True))
            )
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
