"""MODNet: trimap-free portrait matting with a MobileNetV2 encoder and low/high-resolution/fusion branches.

State-dict keys follow the official checkpoints (after stripping DataParallel's ``module.``).
As upstream, the backbone is registered twice (``backbone.*`` and ``lr_branch.backbone.*``
are the same module), so a state dict holds both copies and the ``lr_branch`` one, loaded
last, is what takes effect.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import Family


def _conv_bn_relu6(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU6()]


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [1x1 expand] -> 3x3 depthwise -> 1x1 linear projection, residual if shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = round(cin * expansion)
        self.use_res = stride == 1 and cin == cout
        layers = _conv_bn_relu6(cin, hidden, 1) if expansion != 1 else []
        layers += _conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden)
        layers += [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (width 1.0) feature layers ``features[0..18]``, no classifier."""

    SETTING = (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )

    def __init__(self, in_channels: int = 3):
        super().__init__()
        layers, cin = [nn.Sequential(*_conv_bn_relu6(in_channels, 32, 3, 2))], 32
        for t, c, n, s in self.SETTING:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(nn.Sequential(*_conv_bn_relu6(cin, 1280, 1)))
        self.features = nn.Sequential(*layers)


class MobileNetV2Backbone(nn.Module):
    """Encoder: N x C x H x W -> [1/2 (16 ch), 1/4 (24), 1/8 (32), 1/16 (96), 1/32 (1280)] feature maps."""

    enc_channels = (16, 24, 32, 96, 1280)
    STAGE_ENDS = (2, 4, 7, 14, 19)

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.model = MobileNetV2(in_channels)

    def forward(self, x):
        feats, start = [], 0
        for end in self.STAGE_ENDS:
            for n in range(start, end):
                x = self.model.features[n](x)
            feats.append(x)
            start = end
        return feats


class IBNorm(nn.Module):
    """BatchNorm on the first C//2 channels, affine-free InstanceNorm on the rest (instance stats even in eval)."""

    def __init__(self, ch: int):
        super().__init__()
        self.bn_ch, self.in_ch = int(ch / 2), ch - int(ch / 2)
        self.bnorm = nn.BatchNorm2d(self.bn_ch)
        self.inorm = nn.InstanceNorm2d(self.in_ch, affine=False)

    def forward(self, x):
        # Upstream slices the instance-norm half from index in_ch (== bn_ch for even C).
        return torch.cat((self.bnorm(x[:, : self.bn_ch].contiguous()), self.inorm(x[:, self.in_ch :].contiguous())), 1)


class Conv2dIBNormRelu(nn.Module):
    """Conv2d (bias) [-> IBNorm] [-> ReLU]."""

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int,
        stride: int = 1,
        padding: int = 0,
        with_ibn: bool = True,
        with_relu: bool = True,
    ):
        super().__init__()
        layers = [nn.Conv2d(cin, cout, k, stride=stride, padding=padding)]
        if with_ibn:
            layers.append(IBNorm(cout))
        if with_relu:
            layers.append(nn.ReLU())
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


def _cbr(cin: int, cout: int, k: int, stride: int = 1, last: bool = False) -> Conv2dIBNormRelu:
    """Conv2dIBNormRelu with 'same' padding; ``last`` drops IBNorm and ReLU (a plain prediction conv)."""
    return Conv2dIBNormRelu(cin, cout, k, stride, k // 2, with_ibn=not last, with_relu=not last)


def _up(x, scale: float):
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


class SEBlock(nn.Module):
    """Squeeze-and-excitation channel gating (bias-free FCs, reduction 4)."""

    def __init__(self, ch: int, reduction: int = 4):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(ch, ch // reduction, bias=False),
            nn.ReLU(),
            nn.Linear(ch // reduction, ch, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x):
        n, c = x.shape[:2]
        return x * self.fc(F.adaptive_avg_pool2d(x, 1).view(n, c)).view(n, c, 1, 1)


class LRBranch(nn.Module):
    """Semantic branch: backbone -> SE -> 1/8 features (and a 1/16 semantic sigmoid map unless inference)."""

    def __init__(self, backbone: MobileNetV2Backbone):
        super().__init__()
        ec = backbone.enc_channels
        self.backbone = backbone
        self.se_block = SEBlock(ec[4])
        self.conv_lr16x = _cbr(ec[4], ec[3], 5)
        self.conv_lr8x = _cbr(ec[3], ec[2], 5)
        self.conv_lr = _cbr(ec[2], 1, 3, stride=2, last=True)

    def forward(self, img, inference: bool):
        enc2x, enc4x, _, _, enc32x = self.backbone(img)
        lr16x = self.conv_lr16x(_up(self.se_block(enc32x), 2))
        lr8x = self.conv_lr8x(_up(lr16x, 2))
        pred_semantic = None if inference else torch.sigmoid(self.conv_lr(lr8x))
        return pred_semantic, lr8x, [enc2x, enc4x]


class HRBranch(nn.Module):
    """Detail branch: image + early encoder features + lr8x -> 1/2 features (and a full-res detail map)."""

    def __init__(self, hr: int, ec):
        super().__init__()
        self.tohr_enc2x = _cbr(ec[0], hr, 1)
        self.conv_enc2x = _cbr(hr + 3, hr, 3, stride=2)
        self.tohr_enc4x = _cbr(ec[1], hr, 1)
        self.conv_enc4x = _cbr(2 * hr, 2 * hr, 3)
        self.conv_hr4x = nn.Sequential(_cbr(3 * hr + 3, 2 * hr, 3), _cbr(2 * hr, 2 * hr, 3), _cbr(2 * hr, hr, 3))
        self.conv_hr2x = nn.Sequential(_cbr(2 * hr, 2 * hr, 3), _cbr(2 * hr, hr, 3), _cbr(hr, hr, 3), _cbr(hr, hr, 3))
        self.conv_hr = nn.Sequential(_cbr(hr + 3, hr, 3), _cbr(hr, 1, 1, last=True))

    def forward(self, img, enc2x, enc4x, lr8x, inference: bool):
        img2x, img4x = _up(img, 1 / 2), _up(img, 1 / 4)
        enc2x = self.tohr_enc2x(enc2x)
        hr4x = self.conv_enc2x(torch.cat((img2x, enc2x), 1))
        hr4x = self.conv_enc4x(torch.cat((hr4x, self.tohr_enc4x(enc4x)), 1))
        hr4x = self.conv_hr4x(torch.cat((hr4x, _up(lr8x, 2), img4x), 1))
        hr2x = self.conv_hr2x(torch.cat((_up(hr4x, 2), enc2x), 1))
        pred_detail = None
        if not inference:
            pred_detail = torch.sigmoid(self.conv_hr(torch.cat((_up(hr2x, 2), img), 1)))
        return pred_detail, hr2x


class FusionBranch(nn.Module):
    """Fuses lr8x and hr2x with the image into the full-resolution matte."""

    def __init__(self, hr: int, ec):
        super().__init__()
        self.conv_lr4x = _cbr(ec[2], hr, 5)
        self.conv_f2x = _cbr(2 * hr, hr, 3)
        self.conv_f = nn.Sequential(_cbr(hr + 3, int(hr / 2), 3), _cbr(int(hr / 2), 1, 1, last=True))

    def forward(self, img, lr8x, hr2x):
        lr2x = _up(self.conv_lr4x(_up(lr8x, 2)), 2)
        f2x = self.conv_f2x(torch.cat((lr2x, hr2x), 1))
        return torch.sigmoid(self.conv_f(torch.cat((_up(f2x, 2), img), 1)))


class MODNet(nn.Module):
    """MODNet portrait matting.

    Input: N x 3 x H x W RGB in [-1, 1] (mean 0.5, std 0.5), H and W multiples of 32.
    ``forward(img, inference=False)`` returns ``(pred_semantic, pred_detail, pred_matte)``:
    N x 1 x H/16 x W/16, N x 1 x H x W and N x 1 x H x W, all in [0, 1] (sigmoid); with
    ``inference=True`` the first two are ``None``. ``backbone_pretrained`` is accepted for
    signature compatibility only: weights are always loaded by the caller.
    """

    def __init__(self, in_channels: int = 3, hr_channels: int = 32, backbone_pretrained: bool = False):
        super().__init__()
        # Registration order matters: backbone first, then lr_branch (holding the same module),
        # so lr_branch.backbone.* is loaded last and wins, exactly as upstream.
        self.backbone = MobileNetV2Backbone(in_channels)
        self.lr_branch = LRBranch(self.backbone)
        self.hr_branch = HRBranch(hr_channels, self.backbone.enc_channels)
        self.f_branch = FusionBranch(hr_channels, self.backbone.enc_channels)

    def forward(self, img, inference: bool = False):
        pred_semantic, lr8x, (enc2x, enc4x) = self.lr_branch(img, inference)
        pred_detail, hr2x = self.hr_branch(img, enc2x, enc4x, lr8x, inference)
        return pred_semantic, pred_detail, self.f_branch(img, lr8x, hr2x)


def _trace(net: MODNet, x: torch.Tensor):
    """MODNet's ONNX release was exported in inference mode: without the semantic and detail heads."""
    return net(x, inference=True)


FAMILY = Family("modnet", {"MODNet": MODNet}, trace=_trace)
