"""BiRefNet (Swin-T = BiRefNet_lite, Swin-L = general) against the upstream goldens (pseudo weights), and its
plain-torch deformable convolution against the DCNv2 definition and the golden's captured deform-conv call.

The goldens follow upstream's code of today, whose decoder stacks image patches in the "channel_major" order;
the net's default is the order the released weights were trained with ("patch_major", see nets/birefnet.py).
"""

from __future__ import annotations

import importlib.util
import math
import time

import pytest
import torch
from conformance_checks import assert_close, slow_params

from mattekit.nets import build
from mattekit.nets.birefnet import (
    PATCH_ORDERS,
    RELEASED_PATCH_ORDER,
    BasicLayer,
    BiRefNet,
    DeformableConv2d,
    deform_conv2d,
    image_to_patches,
)

ARCHS = {"birefnet_swin_t": "swin_v1_t", "birefnet_swin_l": "swin_v1_l"}
DCN_TAP = "squeeze_module.0.dec_att.aspp_deforms.2.atrous_conv"  # the call captured in aux_dcn_*


# ----------------------------------------------------------------------------- deformable convolution


def _deform_conv_loop(x, offset, weight, bias, stride, padding, dilation, mask):
    """DCNv2 straight from its definition, one output value, tap and channel at a time, in float64."""
    x, offset, weight = x.double(), offset.double(), weight.double()
    mask = mask.double() if mask is not None else None
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    N, C, H, W = x.shape
    cout, cin_g, kh, kw = weight.shape
    K, groups = kh * kw, C // cin_g
    G = offset.shape[1] // (2 * K)
    Ho, Wo = offset.shape[2:]

    def sample(n, c, y, xx):
        if y <= -1 or y >= H or xx <= -1 or xx >= W:
            return 0.0
        y0, x0 = math.floor(y), math.floor(xx)
        value = 0.0
        for yi, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
            for xi, wx in ((x0, 1 - (xx - x0)), (x0 + 1, xx - x0)):
                if 0 <= yi < H and 0 <= xi < W:
                    value += wy * wx * float(x[n, c, yi, xi])
        return value

    out = torch.zeros(N, cout, Ho, Wo, dtype=torch.float64)
    per_group = cout // groups
    for n in range(N):
        for oy in range(Ho):
            for ox in range(Wo):
                for c in range(C):
                    g, wg = c // (C // G), c // cin_g
                    for i in range(kh):
                        for j in range(kw):
                            t = g * K + i * kw + j
                            y = oy * sh - ph + i * dh + float(offset[n, 2 * t, oy, ox])
                            xx = ox * sw - pw + j * dw + float(offset[n, 2 * t + 1, oy, ox])
                            m = float(mask[n, t, oy, ox]) if mask is not None else 1.0
                            v = m * sample(n, c, y, xx)
                            out[n, wg * per_group : (wg + 1) * per_group, oy, ox] += (
                                weight[wg * per_group : (wg + 1) * per_group, c % cin_g, i, j] * v
                            )
    if bias is not None:
        out += bias.double().view(1, -1, 1, 1)
    return out


DCN_CASES = {
    # name: (N, C, H, W, cout, (kh, kw), stride, padding, dilation, offset groups, weight groups, mask, bias)
    "k3_mask_bias": (1, 4, 5, 6, 3, (3, 3), (1, 1), (1, 1), (1, 1), 1, 1, True, True),
    "k1_like_aspp1": (2, 3, 4, 5, 2, (1, 1), (1, 1), (0, 0), (1, 1), 1, 1, True, False),
    "k3_stride2_dil2_groups": (1, 4, 7, 6, 4, (3, 3), (2, 2), (2, 2), (2, 2), 2, 2, False, False),
    "k2x3_nonsquare": (1, 2, 5, 4, 3, (2, 3), (1, 2), (0, 1), (1, 1), 2, 1, True, True),
}


@pytest.mark.parametrize("case", list(DCN_CASES))
def test_deform_conv2d_matches_definition(case):
    N, C, H, W, cout, (kh, kw), stride, padding, dilation, G, groups, with_mask, with_bias = DCN_CASES[case]
    g = torch.Generator().manual_seed(len(case))
    Ho = (H + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    Wo = (W + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    x = torch.randn(N, C, H, W, generator=g)
    weight = torch.randn(cout, C // groups, kh, kw, generator=g)
    bias = torch.randn(cout, generator=g) if with_bias else None
    # offsets of a few pixels reach past every border; some are whole numbers, some land exactly on -1 or H
    offset = 2.5 * torch.randn(N, 2 * G * kh * kw, Ho, Wo, generator=g)
    offset[:, ::3] = offset[:, ::3].round()
    offset[0, 0, 0, 0] = -1.0 - (0 * stride[0] - padding[0])  # tap (0, 0) of output (0, 0): y == -1 exactly
    offset[0, 0, -1, -1] = H - ((Ho - 1) * stride[0] - padding[0])  # y == H exactly
    mask = 2 * torch.rand(N, G * kh * kw, Ho, Wo, generator=g) if with_mask else None

    got = deform_conv2d(x, offset, weight, bias, stride=stride, padding=padding, dilation=dilation, mask=mask)
    want = _deform_conv_loop(x, offset, weight, bias, stride, padding, dilation, mask)
    err = assert_close(got, want, 1e-5, f"deform_conv2d {case}")
    print(case, f"{err:.2e}")


def test_deform_conv2d_zero_offsets_is_a_convolution():
    """With zero offsets and no mask it is F.conv2d (padding, stride, dilation, groups alike)."""
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(2, 4, 9, 7, generator=g), torch.randn(6, 2, 3, 3, generator=g), torch.randn(6, generator=g)
    want = torch.nn.functional.conv2d(x, w, b, stride=2, padding=1, dilation=2, groups=2)
    offset = torch.zeros(2, 2 * 9, *want.shape[2:])
    got = deform_conv2d(x, offset, w, b, stride=2, padding=1, dilation=2)
    assert_close(got, want, 1e-5, "zero offsets")


def test_deform_conv2d_low_precision_keeps_positions():
    """In bfloat16 the sampling positions stay float32: far from the origin they would otherwise snap to
    whole (even) pixels. The result must follow the float32 one up to bfloat16 rounding of values."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, 3, 300, generator=g)
    w = torch.randn(2, 2, 1, 3, generator=g)
    offset = torch.full((1, 6, 3, 298), 0.37)
    mask = torch.rand(1, 3, 3, 298, generator=g) + 0.5
    x16 = x.bfloat16()
    want = deform_conv2d(x16.float(), offset, w.bfloat16().float(), mask=mask)
    got = deform_conv2d(x16, offset.bfloat16(), w.bfloat16(), mask=mask.bfloat16())
    assert got.dtype == torch.bfloat16
    assert_close(got.float(), want, 0.1, "bfloat16 deform_conv2d")


def _pseudo_tensors(g, prefix: str) -> dict:
    """The golden's stand-in weights of the entries under ``prefix``, keyed relative to it."""
    spec = importlib.util.spec_from_file_location("pseudo_weights", g.folder.parent / "pseudo_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {
        key[len(prefix) :]: module.pseudo_tensor(key, shape, dtype)
        for key, shape, dtype, _ in g.manifest["state_dict"]
        if key.startswith(prefix)
    }


@pytest.mark.parametrize("arch", list(ARCHS))
def test_deform_conv_golden_tap(arch, golden):
    """The deform-conv call captured inside upstream (torchvision's kernel): the op alone, then the whole module."""
    g = golden(arch)
    module = DeformableConv2d(64, 256, kernel_size=7, stride=1, padding=3, bias=False)
    module.load_state_dict(_pseudo_tensors(g, DCN_TAP + "."), strict=True)

    x, offset, mask = g.tensor("aux_dcn_in"), g.tensor("aux_dcn_offset"), g.tensor("aux_dcn_mask")
    errors = {
        "op": assert_close(
            deform_conv2d(x, offset, module.regular_conv.weight, None, padding=3, mask=mask),
            g.arrays["aux_dcn_out"],
            1e-5,
            f"{arch} deform_conv2d",
        )
    }
    with torch.no_grad():
        errors["offset"] = assert_close(module.offset_conv(x), offset, 1e-5, f"{arch} offset_conv")
        errors["mask"] = assert_close(2 * torch.sigmoid(module.modulator_conv(x)), mask, 1e-5, f"{arch} mask")
        errors["module"] = assert_close(module(x), g.arrays["aux_dcn_out"], 1e-5, f"{arch} DeformableConv2d")
    print(arch, {k: f"{v:.2e}" for k, v in errors.items()})


# ----------------------------------------------------------------------------- patch order


def _patches_split_loop(image: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The pre-2024-11-05 stacking, restated: split into columns of width w, each column into patches of
    height h, and concatenate the patches (all colour channels each) on channels, column by column."""
    patches = []
    for column in torch.split(image, w, dim=-1):
        patches += list(torch.split(column, h, dim=-2))
    return torch.cat(patches, dim=1)


def test_image_to_patches_orders():
    image = torch.randn(2, 3, 4 * 5, 4 * 3)  # a 4 x 4 grid of 5 x 3 patches
    g, h, w = 4, 5, 3
    patch_major = image_to_patches(image, g, "patch_major")
    assert torch.equal(patch_major, _patches_split_loop(image, h, w))
    channel_major = image_to_patches(image, g, "channel_major")
    for c in range(3):
        for row in range(g):
            for col in range(g):
                want = image[:, c, row * h : (row + 1) * h, col * w : (col + 1) * w]
                assert torch.equal(channel_major[:, c * g * g + row * g + col], want)
                assert torch.equal(patch_major[:, (col * g + row) * 3 + c], want)
    assert torch.equal(image_to_patches(image, 1, "patch_major"), image)
    assert torch.equal(image_to_patches(image, 1, "channel_major"), image)
    with pytest.raises(ValueError):
        image_to_patches(image, g, "row_major")


def test_default_patch_order_is_the_released_weights_order():
    assert RELEASED_PATCH_ORDER == "patch_major" and set(PATCH_ORDERS) == {"patch_major", "channel_major"}
    with torch.device("meta"):
        assert build("birefnet:BiRefNet", backbone="swin_v1_t").decoder.patch_order == "patch_major"
        assert BiRefNet("swin_v1_t", patch_order="channel_major").decoder.patch_order == "channel_major"
        with pytest.raises(ValueError):
            BiRefNet("swin_v1_t", patch_order="einops")
        with pytest.raises(ValueError):
            BiRefNet("resnet50")


# ----------------------------------------------------------------------------- the whole net


@pytest.mark.parametrize("arch", list(ARCHS))
def test_state_dict_matches_checkpoint_keys(arch, golden):
    """Key set, shapes and dtypes of a strict load, and the parameter count (built on the meta device: no memory)."""
    man = golden(arch).manifest
    with torch.device("meta"):
        model = build("birefnet:BiRefNet", backbone=ARCHS[arch])
    own = {k: (list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()}
    want = {key: (shape, dtype) for key, shape, dtype, _ in man["state_dict"]}
    assert own.keys() == want.keys(), (sorted(own.keys() - want.keys())[:5], sorted(want.keys() - own.keys())[:5])
    assert own == want
    assert sum(p.numel() for p in model.parameters()) == man["n_params"]


def test_swin_stage_treats_batch_items_alone():
    """A shifted-window stage (map padded to the window, shift mask, merging of odd sizes) on a batch of two
    gives what it gives on each item alone."""
    torch.manual_seed(0)
    layer = BasicLayer(dim=8, depth=2, num_heads=2, window_size=3, downsample=True).eval()
    x = torch.randn(2, 5 * 4, 8)
    with torch.no_grad():
        both = layer(x, 5, 4)
        alone = [layer(x[i : i + 1], 5, 4) for i in range(2)]
    assert both[2:] == (3, 2)
    for part in (0, 1):
        assert_close(both[part], torch.cat([a[part] for a in alone]), 1e-6, f"stage output {part}")


def test_input_size_must_be_a_multiple_of_32():
    with torch.device("meta"):
        model = BiRefNet("swin_v1_t")
        with pytest.raises(ValueError, match="multiples of 32"):
            model(torch.zeros(1, 3, 256, 240))


@pytest.mark.parametrize("arch", slow_params(ARCHS, ARCHS))  # swin_t 57-90 s, swin_l 41-226 s (2 cores, load 12-17)
def test_conformance(arch, golden):
    """Logits (main and odd-size input) and the backbone/squeeze taps at 1e-4 with the goldens' (today's) patch
    order; then the decoder rerun with the released weights' order must move the logits exactly as much as the
    same switch did upstream (manifest ``sensitivity.old_patch_order``)."""
    g = golden(arch)
    man = g.manifest
    model = build("birefnet:BiRefNet", backbone=ARCHS[arch], patch_order="channel_major")
    model.load_state_dict(g.pseudo_state_dict(model), strict=True)
    model.eval()

    taps = {}
    model.bb.register_forward_hook(lambda m, i, out: taps.setdefault("bb", []).append(out[3]))
    model.squeeze_module.register_forward_hook(lambda m, i, out: taps.__setitem__("squeeze", out))
    model.decoder.register_forward_pre_hook(lambda m, args: taps.__setitem__("decoder_in", args))

    start, errors = time.perf_counter(), {}
    runs = [("", man["outputs"]["order"])] + [(e["prefix"], e["outputs"]) for e in man["extra_inputs"]]
    with torch.no_grad():
        for prefix, outputs in runs:
            taps.clear()
            out = model(g.tensor(prefix + "input"))
            assert isinstance(out, list) and len(out) == 1
            got = {
                prefix + "logits": out[0],
                prefix + "aux_bb_full_x4": taps["bb"][0],
                prefix + "aux_bb_half_x4": taps["bb"][1],
                prefix + "aux_squeeze_out": taps["squeeze"],
            }
            for key, _ in outputs:
                if key in got:
                    errors[key] = assert_close(got[key], g.arrays[key], 1e-4, f"{arch}.{key}")
            model.decoder.patch_order = "patch_major"
            old = model.decoder(*taps["decoder_in"])
            model.decoder.patch_order = "channel_major"
            moved = (old - g.tensor(prefix + "logits")).abs().max().item()
            upstream = man["sensitivity"]["results"]["old_patch_order"][prefix + "logits"]["max_abs_diff"]
            assert abs(moved - upstream) <= 1e-4, (
                f"{arch}: patch_major moves {prefix}logits {moved}, upstream {upstream}"
            )
            errors[prefix + "patch_major_shift"] = abs(moved - upstream)
    print(arch, f"{time.perf_counter() - start:.0f} s", {k: f"{v:.2e}" for k, v in errors.items()})


def test_window_attention_is_the_written_out_softmax():
    """Swin's window attention (``F.scaled_dot_product_attention``, which CUDA runs with its fused kernels) equals
    softmax(Q K^T / sqrt(d) + relative-position bias + shift mask) V written out, within 1e-5, on the seeded
    initialisation of a Swin-L stage-1 block (random bias table) with and without the shift mask."""
    from mattekit.nets.birefnet.swin import _window_partition

    torch.manual_seed(0)
    layer = BasicLayer(192, 2, 6, 12, downsample=False).eval()
    attn = layer.blocks[1].attn
    torch.nn.init.normal_(attn.relative_position_bias_table, std=0.5)
    H, W, B = 30, 20, 2
    mask = layer._shift_mask(H, W, torch.device("cpu"))
    tokens = _window_partition(torch.randn(B, 36, 24, 192), 12)  # (padded map) B*nW x 144 x 192
    N, heads = 144, 6
    q, k, v = attn.qkv(tokens).reshape(-1, N, 3, heads, 32).permute(2, 0, 3, 1, 4)
    bias = attn.relative_position_bias_table[attn.relative_position_index.view(-1)].view(N, N, heads).permute(2, 0, 1)
    nW = mask.shape[0]
    for shifted in (False, True):
        scores = q @ k.transpose(-2, -1) / math.sqrt(32) + bias
        if shifted:
            scores = (scores.view(B, nW, heads, N, N) + mask[None, :, None]).view(-1, heads, N, N)
        written = (scores.softmax(-1) @ v).transpose(1, 2).reshape(-1, N, 192)
        with torch.no_grad():
            got = attn(tokens, mask if shifted else None)
            assert (got - attn.proj(written)).abs().max() <= 1e-5, shifted
