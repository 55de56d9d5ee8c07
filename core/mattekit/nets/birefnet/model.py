"""BiRefNet: the Swin backbone run at full and half size, the squeeze block and the decoder."""

from __future__ import annotations

import torch
import torch.nn as nn

from .decoder import PATCH_ORDERS, BasicDecBlk, Decoder, _resize
from .swin import SwinTransformer

RELEASED_PATCH_ORDER = "patch_major"  # the order the released weights were trained with (docs/design.md)

# name: (embed_dim, depths, num_heads, window_size)
SWIN_CONFIGS = {
    "swin_v1_t": (96, (2, 2, 6, 2), (3, 6, 12, 24), 7),  # BiRefNet_lite
    "swin_v1_l": (192, (2, 2, 18, 2), (6, 12, 24, 48), 12),  # general BiRefNet
}


WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel, torch.compile; the authors' loader drops both


def _strip_wrapper_prefixes(module, state_dict, prefix, *args) -> None:
    """Load hook: keys saved from a wrapped net (``module.``, ``_orig_mod.``, either order) lose those prefixes,
    as upstream's ``utils.check_state_dict`` does before loading."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        rest = key[len(prefix) :]
        for wrapper in WRAPPER_PREFIXES:
            rest = rest.removeprefix(wrapper)
        rest = rest.removeprefix(WRAPPER_PREFIXES[0])
        if prefix + rest != key:
            state_dict[prefix + rest] = state_dict.pop(key)


class BiRefNet(nn.Module):
    """BiRefNet: N x 3 x H x W ImageNet-normalised RGB (H, W multiples of 32) -> ``[logits]``.

    Like upstream in eval mode, returns a list holding one N x 1 x H x W tensor of logits;
    ``sigmoid`` gives the mask. ``backbone``: ``"swin_v1_l"`` (general BiRefNet) or ``"swin_v1_t"``
    (BiRefNet_lite). ``patch_order``: how the decoder stacks image patches on channels (see the package
    docstring); the default is the order the released weights were trained with.
    """

    def __init__(self, backbone: str = "swin_v1_l", patch_order: str = RELEASED_PATCH_ORDER):
        super().__init__()
        if backbone not in SWIN_CONFIGS:
            raise ValueError(f"backbone {backbone!r} is not one of {sorted(SWIN_CONFIGS)}")
        if patch_order not in PATCH_ORDERS:
            raise ValueError(f"patch_order {patch_order!r} is not one of {PATCH_ORDERS}")
        embed_dim, depths, heads, window = SWIN_CONFIGS[backbone]
        self.bb = SwinTransformer(embed_dim, depths, heads, window)
        lateral = [2 * c for c in self.bb.num_features[::-1]]  # doubled by the half-resolution pass
        self.squeeze_module = nn.Sequential(BasicDecBlk(sum(lateral), lateral[0]))
        self.decoder = Decoder(lateral, patch_order)
        self.register_load_state_dict_pre_hook(_strip_wrapper_prefixes)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The backbone on x and on x at half size, stage outputs concatenated: [x1, x2, x3, x4 with context]."""
        H, W = x.shape[2:]
        full = self.bb(x)
        half = self.bb(_resize(x, (H // 2, W // 2)))
        x1, x2, x3, x4 = (torch.cat([f, _resize(h, f.shape[2:])], 1) for f, h in zip(full, half))
        x4 = torch.cat([_resize(x1, x4.shape[2:]), _resize(x2, x4.shape[2:]), _resize(x3, x4.shape[2:]), x4], 1)
        return [x1, x2, x3, x4]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[-2] % 32 or x.shape[-1] % 32:
            raise ValueError(f"BiRefNet needs H and W multiples of 32, got {tuple(x.shape[-2:])}")
        x1, x2, x3, x4 = self.encode(x)
        return [self.decoder(x, x1, x2, x3, self.squeeze_module(x4))]
