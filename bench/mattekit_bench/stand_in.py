"""Stand-in weights for ``bench speed --stand-in`` and ``bench engines --stand-in``: a catalog model's real
architecture (its net family built with the catalog row's kwargs) holding the values of its own
initialisation under a fixed torch seed, so the bench times a model whose weights are not on this machine.
The values are random, so the masks mean nothing: for speed only. Reads no file.

The one fix-up: each batch norm's running mean and variance (0 and 1 after initialisation) are measured on
one forward pass of a seeded random input at the size the net sees for a 1024 x 768 photo, so activations
keep their scale through the net in inference mode instead of shrinking layer by layer towards zero (or
subnormal floats, which would slow the CPU and falsify the timing). A norm that sees one value per channel
there (BiRefNet's ASPP batch norm after global pooling, at batch 1) has no variance to measure: its mean is
that value, its variance stays 1.
"""

from __future__ import annotations

from pathlib import Path

SEED = 0  # the torch seed of the initialisation and of the calibration input
CALIBRATION_PHOTO = (768, 1024)  # H x W of the photo whose network input calibrates the batch norms


def stand_in_state(entry) -> dict:
    """{state-dict key: tensor} of stand-in weights for the catalog ``entry``: the same tensors on every call
    with the same torch version; every float finite. Leaves torch's global random state as it was."""
    import torch

    from mattekit import nets

    family = nets.family(entry.net)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        net = nets.build(entry.net, **entry.kwargs).eval()
        _calibrate_norms(net, family, entry.input.net_size(*CALIBRATION_PHOTO))
    state = {key: value.detach().clone() for key, value in net.state_dict().items()}
    bad = [key for key, value in state.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if bad:
        raise ValueError(f"stand-in weights of {entry.name} hold non-finite values in {', '.join(bad[:3])}")
    return state


def _calibrate_norms(net, family, size: tuple[int, int]) -> None:
    """Set the running statistics of every norm layer that tracks them to those of one forward pass (the
    family's ONNX trace call) on a 1 x 3 x H x W standard normal input, ``size`` = (H, W) in pixels."""
    import torch

    norms = [m for m in net.modules() if getattr(m, "track_running_stats", False) and m.running_mean is not None]
    if not norms:
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: after one pass, that pass's statistics
        m.train()
    hooks = [m.register_forward_pre_hook(_one_value_per_channel) for m in norms]
    x = torch.randn((1, 3) + tuple(size), generator=torch.Generator().manual_seed(SEED))
    try:
        with torch.no_grad():
            family.trace(net, x)
    finally:
        for hook in hooks:
            hook.remove()
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    net.eval()


def _one_value_per_channel(norm, inputs) -> None:
    """Forward pre-hook: a norm whose N x C x ... input holds one value per channel (training mode refuses it)
    takes those values as its running mean, keeps variance 1 and runs this pass in inference mode."""
    x = inputs[0]
    if x.numel() != x.shape[1]:
        return
    norm.running_mean.copy_(x.reshape(-1))
    norm.num_batches_tracked += 1
    norm.train(False)


def write_stand_in(entry, folder: Path) -> Path:
    """Save :func:`stand_in_state` of ``entry`` as ``folder/<model>-stand-in.pth``, the same bytes on every call
    (so an ONNX export cached by the file's hash is found again); its path."""
    import io

    import torch

    from mattekit import fsutil

    target = Path(folder) / f"{entry.name}-stand-in.pth"
    target.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()  # saved to a buffer, the archive's inner name does not follow the temporary file's
    torch.save(stand_in_state(entry), buffer)
    fsutil.atomic_write(target, buffer.getvalue())
    return target
