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

Patch order of the decoder's image patches
------------------------------------------
The decoder feeds the normalised image, cut into a g x g grid (g = 32, 16, 8, 4, 1), to its ``ipt_blk``
convs with the patches stacked on channels. Upstream commit 5198d3f (2024-11-05, "Upgrade patches merging
and split methods to einops version") changed that stacking:

* ``"patch_major"``: before it, ``Decoder.get_patches_batch`` split the image into columns of width
  ``w`` and each column into patches of height ``h``, and concatenated the 3-channel patches, so
  channel = (col * g + row) * 3 + colour;
* ``"channel_major"``: since then, ``einops.rearrange(x, 'b c (hg h) (wg w) -> b (c hg wg) h w')``,
  so channel = colour * g*g + row * g + col.

The conformance goldens follow today's code (``"channel_major"``). The released weights were trained with
``"patch_major"``, which is therefore the default:

* GitHub ZhengPeng7/BiRefNet: the general-use Swin-L weights were published on 2024-07-28 (commit 2ccc960,
  "Update the weights of BiRefNet for general use ...") and the Swin-T ones (BiRefNet_lite) on 2024-08-02
  (commit 1931af0); ``models/birefnet.py`` at both commits, and until 5198d3f, stacks with ``get_patches_batch``.
* Hugging Face ZhengPeng7/BiRefNet_lite-2K, whose git history (ZhengPeng7's commits from b762934 "initial
  commit", 2024-09-24) is carried inside github.com/wingerboy/video_matting: ``model.safetensors`` (LFS sha256
  aa2e4a5af5eb..., 177,634,392 bytes) was uploaded once, in 3007575 (2024-09-24), beside a ``birefnet.py``
  that uses ``get_patches_batch``. That HF ``birefnet.py`` switched to the einops order on 2025-02-02
  (94260e2, "Align lib_name as birefnet and add inference endpoint option") with no new weights, so the HF
  remote code has since run those weights with another order than they were trained with. (That repo was
  made from BiRefNet_lite's files: its config.json says ``_name_or_path: ZhengPeng7/BiRefNet_lite``. The HF
  histories of ZhengPeng7/BiRefNet and BiRefNet_lite themselves were not readable here.)
* Weights trained with upstream code newer than 2024-11-05 (e.g. BiRefNet_HR, 2025-02; BiRefNet_dynamic,
  2025-03) would need ``"channel_major"``: inferred from the dates, not checked.
"""
from __future__ import annotations

from ..descriptor import Family
from .decoder import PATCH_ORDERS, ASPPDeformable, BasicDecBlk, Decoder, image_to_patches
from .deform import DeformableConv2d, deform_conv2d
from .model import RELEASED_PATCH_ORDER, SWIN_CONFIGS, BiRefNet
from .swin import BasicLayer, SwinTransformer

__all__ = ["ASPPDeformable", "BasicDecBlk", "BasicLayer", "BiRefNet", "Decoder", "DeformableConv2d",
           "PATCH_ORDERS", "RELEASED_PATCH_ORDER", "SWIN_CONFIGS", "SwinTransformer", "deform_conv2d",
           "image_to_patches"]


FAMILY = Family("birefnet", {"BiRefNet": BiRefNet})
