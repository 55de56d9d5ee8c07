"""RobustVideoMatting (MobileNetV3-Large variant): recurrent human video matting.

Written from the paper (Lin et al., "Robust High-Resolution Video Matting with Temporal
Guidance", WACV 2022) and the layout of its official release, so that the official weights
map onto it: a MobileNetV3-Large encoder (last stage dilated), an LR-ASPP head, a recurrent
decoder with ConvGRUs at four scales, a projection to foreground residual + alpha, and a
deep guided filter that brings the coarse result back to full resolution.

One frame per call; the caller carries the four recurrent states from frame to frame.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import Family

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

# MobileNetV3-Large blocks: (in, kernel, expanded, out, squeeze-excite, activation, stride, dilation).
_MBV3_LARGE = (
    (16, 3, 16, 16, False, "relu", 1, 1),
    (16, 3, 64, 24, False, "relu", 2, 1),
    (24, 3, 72, 24, False, "relu", 1, 1),
    (24, 5, 72, 40, True, "relu", 2, 1),
    (40, 5, 120, 40, True, "relu", 1, 1),
    (40, 5, 120, 40, True, "relu", 1, 1),
    (40, 3, 240, 80, False, "hardswish", 2, 1),
    (80, 3, 200, 80, False, "hardswish", 1, 1),
    (80, 3, 184, 80, False, "hardswish", 1, 1),
    (80, 3, 184, 80, False, "hardswish", 1, 1),
    (80, 3, 480, 112, True, "hardswish", 1, 1),
    (112, 3, 672, 112, True, "hardswish", 1, 1),
    (112, 5, 672, 160, True, "hardswish", 2, 2),
    (160, 5, 960, 160, True, "hardswish", 1, 2),
    (160, 5, 960, 160, True, "hardswish", 1, 2),
)


def _divisible_by_8(value: float) -> int:
    """Round ``value`` to a multiple of 8 (at least 8), never more than 10% below it."""
    rounded = max(8, int(value + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * value else rounded


def _activation(name: str) -> nn.Module:
    return nn.Hardswish() if name == "hardswish" else nn.ReLU(inplace=True)


def _conv_bn_act(
    cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1, groups: int = 1, act: str | None = "relu"
) -> nn.Sequential:
    """Conv (no bias, 'same' padding) -> BatchNorm -> optional activation."""
    layers = [
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2 * dilation, dilation, groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act is not None:
        layers.append(_activation(act))
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    """Channel gate: global mean -> 1x1 conv -> ReLU -> 1x1 conv -> hard sigmoid -> scale the input."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1))))
        return x * F.hardsigmoid(gate)


class InvertedResidual(nn.Module):
    """MobileNetV3 block: [1x1 expand] -> kxk depthwise (strided or dilated) -> [SE] -> 1x1 projection."""

    def __init__(
        self, cin: int, kernel: int, expanded: int, cout: int, use_se: bool, act: str, stride: int, dilation: int
    ):
        super().__init__()
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expanded != cin:
            layers.append(_conv_bn_act(cin, expanded, 1, act=act))
        # A dilated stage keeps its resolution: the stride becomes 1.
        layers.append(
            _conv_bn_act(expanded, expanded, kernel, 1 if dilation > 1 else stride, dilation, groups=expanded, act=act)
        )
        if use_se:
            layers.append(SqueezeExcitation(expanded, _divisible_by_8(expanded / 4)))
        layers.append(_conv_bn_act(expanded, cout, 1, act=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_res else self.block(x)


class MobileNetV3LargeEncoder(nn.Module):
    """RGB N x 3 x H x W in [0,1] -> features at 1/2 (16 ch), 1/4 (24), 1/8 (40) and 1/16 (960)."""

    def __init__(self):
        super().__init__()
        layers = [_conv_bn_act(3, 16, 3, 2, act="hardswish")]
        layers += [InvertedResidual(*cfg) for cfg in _MBV3_LARGE]
        layers.append(_conv_bn_act(160, 960, 1, act="hardswish"))
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.mean) / self.std
        taps, out = (1, 3, 6, 16), []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in taps:
                out.append(x)
        return out


class LRASPP(nn.Module):
    """Lite R-ASPP: (1x1 conv-BN-ReLU) gated by (global mean -> 1x1 conv -> sigmoid)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.aspp1 = _conv_bn_act(cin, cout, 1)
        self.aspp2 = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.aspp1(x) * torch.sigmoid(self.aspp2(F.adaptive_avg_pool2d(x, 1)))


class ConvGRU(nn.Module):
    """Convolutional GRU cell on ``channels`` channels: (x, h) -> new h (N x channels x h x w).

    An h of another shape (the 1x1x1x1 zeros that start a clip) is broadcast to x's shape.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.ih = nn.Conv2d(2 * channels, 2 * channels, 3, padding=1)
        self.hh = nn.Conv2d(2 * channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        h = h.expand_as(x)
        r, z = torch.sigmoid(self.ih(torch.cat([x, h], 1))).split(self.channels, 1)
        c = torch.tanh(self.hh(torch.cat([x, r * h], 1)))
        return (1 - z) * h + z * c


def _half_gru(gru: ConvGRU, x: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``gru`` on the second half of x's channels; returns (x with that half replaced, new state)."""
    a, b = x.split(gru.channels, 1)
    state = gru(b, r)
    return torch.cat([a, state], 1), state


def _up2_like(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 (align_corners False), cropped to ``like``'s height and width."""
    x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
    return x[:, :, : like.shape[2], : like.shape[3]]


class UpsamplingBlock(nn.Module):
    """x2 up, concat skip features and the downscaled source, conv-BN-ReLU, ConvGRU on half the channels."""

    def __init__(self, cin: int, skip: int, src: int, cout: int):
        super().__init__()
        self.conv = _conv_bn_act(cin + skip + src, cout, 3)
        self.gru = ConvGRU(cout // 2)

    def forward(self, x, f, s, r):
        x = self.conv(torch.cat([_up2_like(x, s), f, s], 1))
        return _half_gru(self.gru, x, r)


class OutputBlock(nn.Module):
    """x2 up, concat the source, two conv-BN-ReLU."""

    def __init__(self, cin: int, src: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(_conv_bn_act(cin + src, cout, 3), _conv_bn_act(cout, cout, 3))

    def forward(self, x, s):
        return self.conv(torch.cat([_up2_like(x, s), s], 1))


class RecurrentDecoder(nn.Module):
    """Features + source pyramid + four states -> 16-channel hidden map at the source's size, new states."""

    def __init__(self, feature_channels=(16, 24, 40, 128), decoder_channels=(80, 40, 32, 16)):
        super().__init__()
        fc, dc = feature_channels, decoder_channels
        self.decode4 = ConvGRU(fc[3] // 2)
        self.decode3 = UpsamplingBlock(fc[3], fc[2], 3, dc[0])
        self.decode2 = UpsamplingBlock(dc[0], fc[1], 3, dc[1])
        self.decode1 = UpsamplingBlock(dc[1], fc[0], 3, dc[2])
        self.decode0 = OutputBlock(dc[2], 3, dc[3])

    def forward(self, s0, f1, f2, f3, f4, r1, r2, r3, r4):
        pool = lambda t: F.avg_pool2d(t, 2, 2, count_include_pad=False, ceil_mode=True)  # noqa: E731
        s1 = pool(s0)
        s2 = pool(s1)
        s3 = pool(s2)
        x4, r4 = _half_gru(self.decode4, f4, r4)
        x3, r3 = self.decode3(x4, f3, s3, r3)
        x2, r2 = self.decode2(x3, f2, s2, r2)
        x1, r1 = self.decode1(x2, f1, s1, r1)
        return self.decode0(x1, s0), r1, r2, r3, r4


class DeepGuidedFilterRefiner(nn.Module):
    """Guided filter with learned coefficients: coarse (fgr, pha) + hidden map -> full-resolution (fgr, pha).

    Per coarse pixel, A and b come from box-filtered local statistics of source vs prediction
    (3x3 box as a fixed depthwise conv) through three 1x1 convs; both are upsampled bilinearly
    and applied to the full-resolution source (RGB + its grey mean).
    """

    def __init__(self, hidden: int = 16):
        super().__init__()
        self.box_filter = nn.Conv2d(4, 4, 3, padding=1, bias=False, groups=4)
        nn.init.constant_(self.box_filter.weight, 1 / 9)
        self.conv = nn.Sequential(
            _conv_bn_act(4 * 2 + hidden, hidden, 1), _conv_bn_act(hidden, hidden, 1), nn.Conv2d(hidden, 4, 1)
        )

    def forward(self, fine_src, base_src, base_fgr, base_pha, base_hid):
        fine_x = torch.cat([fine_src, fine_src.mean(1, keepdim=True)], 1)
        base_x = torch.cat([base_src, base_src.mean(1, keepdim=True)], 1)
        base_y = torch.cat([base_fgr, base_pha], 1)
        mean_x, mean_y = self.box_filter(base_x), self.box_filter(base_y)
        cov_xy = self.box_filter(base_x * base_y) - mean_x * mean_y
        var_x = self.box_filter(base_x * base_x) - mean_x * mean_x
        a = self.conv(torch.cat([cov_xy, var_x, base_hid], 1))
        b = mean_y - a * mean_x
        size = fine_src.shape[2:]
        a = F.interpolate(a, size, mode="bilinear", align_corners=False)
        b = F.interpolate(b, size, mode="bilinear", align_corners=False)
        out = a * fine_x + b
        return out[:, :3], out[:, 3:]


class RobustVideoMatting(nn.Module):
    """RVM MattingNetwork (MobileNetV3-Large).

    ``forward(src, r1, r2, r3, r4, downsample_ratio)``: src N x 3 x H x W RGB in [0,1]; r1..r4 the
    recurrent states from the previous frame (None or ``zeros(1, 1, 1, 1)`` for a clip's first
    frame); downsample_ratio (a float or a 1-element tensor; None: :meth:`auto_downsample_ratio`)
    scales the frame for the encoder/decoder, the guided filter restores full resolution. Returns
    ``(fgr, pha, r1, r2, r3, r4)``: foreground N x 3 x H x W and alpha N x 1 x H x W in [0,1], and the
    new states (16, 20, 40, 64 channels at 1/2, 1/4, 1/8, 1/16 of the downscaled size).
    """

    def __init__(self, working_side: int = 512):
        super().__init__()
        self.working_side = working_side
        self.backbone = MobileNetV3LargeEncoder()
        self.aspp = LRASPP(960, 128)
        self.decoder = RecurrentDecoder()
        self.project_mat = nn.Conv2d(16, 4, 1)
        self.refiner = DeepGuidedFilterRefiner()

    @staticmethod
    def initial_state() -> tuple[torch.Tensor, ...]:
        """The four recurrent states of a clip's first frame."""
        return tuple(torch.zeros(1, 1, 1, 1) for _ in range(4))

    def auto_downsample_ratio(self, height: int, width: int) -> float:
        """The authors' table: frames up to 512 x 512 run as they are; larger ones are scaled so that the
        low-resolution pass is ``working_side`` px on its long side (their table gives about 480 px for
        portraits, e.g. 0.25 at 1920 x 1080, and 768 px for full bodies, e.g. 0.4 at 1920 x 1080)."""
        if max(height, width) <= 512:
            return 1.0
        return min(1.0, self.working_side / max(height, width))

    def forward(self, src, r1=None, r2=None, r3=None, r4=None, downsample_ratio: float | torch.Tensor | None = None):
        zero = src.new_zeros(1, 1, 1, 1)
        r1, r2, r3, r4 = (zero if r is None else r for r in (r1, r2, r3, r4))
        ratio = self.auto_downsample_ratio(*src.shape[2:]) if downsample_ratio is None else float(downsample_ratio)
        src_sm = (
            src
            if ratio == 1.0
            else F.interpolate(
                src, scale_factor=ratio, mode="bilinear", align_corners=False, recompute_scale_factor=False
            )
        )
        f1, f2, f3, f4 = self.backbone(src_sm)
        hid, r1, r2, r3, r4 = self.decoder(src_sm, f1, f2, f3, self.aspp(f4), r1, r2, r3, r4)
        fgr_residual, pha = self.project_mat(hid).split([3, 1], 1)
        # The refiner runs at every ratio, as in the official ONNX export (the PyTorch release skips it at 1).
        fgr_residual, pha = self.refiner(src, src_sm, fgr_residual, pha, hid)
        fgr = (fgr_residual + src).clamp(0.0, 1.0)
        return fgr, pha.clamp(0.0, 1.0), r1, r2, r3, r4


def _trace(net: RobustVideoMatting, x: torch.Tensor):
    """RVM's ONNX release was exported from a first frame with the refiner in the graph (downsample 0.5)."""
    return net(x, *net.initial_state(), 0.5)


def _step(net: RobustVideoMatting, x: torch.Tensor, state: tuple | None) -> tuple[tuple, tuple]:
    """One frame: (fgr, pha, r1..r4) and the four recurrent states r1..r4 for the next frame (None: a first frame)."""
    outputs = net(x, *(state or ()))
    return outputs, tuple(outputs[-4:])


FAMILY = Family("rvm", {"RobustVideoMatting": RobustVideoMatting}, trace=_trace, step=_step)
