"""Nets with conformance weights and inputs for the engine tests (test_engines.py, test_engines_onnx.py)."""

from __future__ import annotations

import torch

from mattekit.engines import select_output
from mattekit.nets import build
from mattekit.nets.csnet import CSNET_L_X2
from mattekit.weights import load_state_dict_file

# name: (net spec, kwargs, prediction index, conformance folder, inputs from its golden, fixed input size or None).
# Pseudo-weight folders give stand-in weights with random BatchNorm statistics; the *_real folders name
# the real checkpoint (in shared/weights) and hold real, properly scaled inputs.
NETS = {
    "u2net": ("u2net:U2NET", dict(in_ch=3, out_ch=1), (0,), "u2net", ["input", "odd_input"], (128, 128)),
    "u2netp": ("u2net:U2NETP", dict(in_ch=3, out_ch=1), (0,), "u2netp", ["input", "odd_input"], (128, 128)),
    "isnet": ("isnet:ISNetDIS", dict(in_ch=3, out_ch=1), (0, 0), "isnetdis", ["input", "odd_input"], (128, 128)),
    "csnet": (
        "csnet:CSNet",
        dict(layer_config=CSNET_L_X2, num_classes=1),
        (),
        "csnet_real",
        ["input_0", "input_1"],
        (224, 224),
    ),
    "sinet": ("sinet:SINet", dict(classes=2, p=2, q=8, chnn=1), (), "sinet_real", ["input_0", "input_1"], (224, 224)),
    "extremec3": (
        "extremec3:ExtremeC3Net",
        dict(classes=1, p=1, q=5),
        (),
        "extremec3_real",
        ["input_0", "input_1"],
        (224, 224),
    ),
    "srvgg": (
        "srvgg:SRVGGNetCompact",
        dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4, act_type="prelu"),
        (),
        "animevideov3_real",
        ["input_0", "input_1"],
        None,
    ),
    # RRDBNet x2 (pixel-unshuffle path) with 2 of its 23 blocks: the same code, a tenth of the export time.
    "rrdbnet": (
        "rrdbnet:RRDBNet",
        dict(num_in_ch=3, num_out_ch=3, scale=2, num_feat=64, num_block=2, num_grow_ch=32),
        (),
        "rrdbnet_x2plus",
        ["input", "input[:, :, 4:, 10:]"],
        None,
    ),
    "rfdn": (
        "rfdn:RFDN",
        dict(in_nc=3, nf=50, num_modules=4, out_nc=3, upscale=4),
        (),
        "rfdn_real",
        ["input_0", "input_1"],
        None,
    ),
}


def load_net(name, golden, shared):
    """(eval net with weights, prediction index, its inputs, fixed input size or None)."""
    spec, kwargs, index, folder, inputs, size = NETS[name]
    g = golden(folder)
    net = build(spec, **kwargs).eval()
    if "checkpoint" in g.manifest:
        net.load_state_dict(load_state_dict_file(shared / "weights" / g.manifest["checkpoint"]["file"]), strict=True)
    elif name == "rrdbnet":  # fewer blocks than the golden's net: stand-in weights for the keys it has
        net.load_state_dict(
            {
                k: v
                for k, v in g.pseudo_state_dict(build(spec, **dict(kwargs, num_block=23))).items()
                if k in net.state_dict()
            },
            strict=True,
        )
    else:
        net.load_state_dict(g.pseudo_state_dict(net), strict=True)
    xs = [g.tensor(n) if "[" not in n else g.tensor(n.split("[")[0])[:, :, 4:, 10:] for n in inputs]
    return net, index, xs, size


def reference(net, index, xs):
    """Eager PyTorch's predictions for ``xs``, fp32."""
    with torch.no_grad():
        return [select_output(net(x), index).float() for x in xs]


def atol(ref: torch.Tensor) -> float:
    """The tolerance against eager PyTorch: 1e-4 times the output's magnitude (at least 1e-4)."""
    return 1e-4 * max(1.0, ref.abs().max().item())
