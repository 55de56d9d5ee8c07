"""BiRefNet (bilateral reference dichotomous segmentation) with its Swin v1 backbones.

Re-implementation of ZhengPeng7/BiRefNet ``models/birefnet.py`` (+ ``models/backbones/swin_v1.py``,
``models/modules/{decoder_blocks,aspp,deform_conv,lateral_blocks}.py``) in the configuration of the
released general-use checkpoints: ``mul_scl_ipt='cat'``, ``dec_att='ASPPDeformable'``,
``squeeze_block='BasicDecBlk_x1'``, ``dec_blk='BasicDecBlk'``, ``cxt_num=3``, split decoder input
patches, ``out_ref`` gradient attention, BatchNorm in the decoder. ``backbone='swin_v1_l'`` is the
general BiRefNet, ``backbone='swin_v1_t'`` is BiRefNet_lite. State-dict keys equal the official
checkpoints' (after stripping any ``module.`` / ``_orig_mod.`` prefix), so they load with ``strict=True``.

The deformable convolution (DCNv2) is written here in plain torch with the semantics of
``torchvision.ops.deform_conv2d`` (see :func:`deform_conv2d`); torchvision is not needed.

Modules: ``deform`` (the deformable convolution), ``swin`` (the backbone), ``decoder`` (ASPP, decoder
blocks, image patches), ``model`` (:class:`BiRefNet`, the backbone configurations).

Patch order (``BiRefNet(patch_order=...)``, one of ``PATCH_ORDERS``): the decoder feeds the normalised image,
cut into a g x g grid (g = 32, 16, 8, 4, 1), to its ``ipt_blk`` convs with the patches stacked on channels:

* ``"patch_major"``, the default (``RELEASED_PATCH_ORDER``, the order the released weights were trained with):
  channel = (col * g + row) * 3 + colour, as upstream's ``Decoder.get_patches_batch`` before commit 5198d3f;
* ``"channel_major"``: channel = colour * g*g + row * g + col, upstream's einops order since 5198d3f
  (2024-11-05); the conformance goldens follow it.
"""

from __future__ import annotations

from .. import Family
from .decoder import PATCH_ORDERS, ASPPDeformable, BasicDecBlk, Decoder, image_to_patches
from .deform import DeformableConv2d, deform_conv2d
from .model import RELEASED_PATCH_ORDER, SWIN_CONFIGS, BiRefNet
from .swin import BasicLayer, SwinTransformer

__all__ = [
    "ASPPDeformable",
    "BasicDecBlk",
    "BasicLayer",
    "BiRefNet",
    "Decoder",
    "DeformableConv2d",
    "PATCH_ORDERS",
    "RELEASED_PATCH_ORDER",
    "SWIN_CONFIGS",
    "SwinTransformer",
    "deform_conv2d",
    "image_to_patches",
]


FAMILY = Family("birefnet", {"BiRefNet": BiRefNet})
