"""Adding a segmentation network from outside the package: a net family registered through
:func:`mattekit.nets.register` and one catalog row run end to end through ``mattekit remove`` to a mask.

In the package the same network touches: its module under ``core/mattekit/nets/`` declaring ``FAMILY``,
one name in the registry (``core/mattekit/nets/__init__.py``), its row in ``core/mattekit/catalog.toml``,
its card ``models/NAME.md`` and its conformance golden (docs/design.md, "Adding a model").
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from mattekit import catalog, nets
from mattekit.cli import main
from mattekit.fsutil import sha256_file
from mattekit.nets import Family


class TinySeg(nn.Module):
    """Two 1x1 convolutions: 1 x 3 x H x W image (ImageNet-normalised) -> 1 x 1 x H x W logits."""

    def __init__(self, hidden: int = 4):
        super().__init__()
        self.features = nn.Conv2d(3, hidden, 1)
        self.head = nn.Conv2d(hidden, 1, 1)

    def forward(self, x):
        return self.head(torch.relu(self.features(x)))


def _red_finder() -> dict:
    """Weights that make TinySeg's logit high where a pixel is red (R well above G and B), low elsewhere."""
    net = TinySeg()
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.features.weight[0, :, 0, 0] = torch.tensor([4.0, -4.0, -4.0])
        net.head.weight[0, 0, 0, 0] = 2.0
        net.head.bias[0] = -6.0
    return net.state_dict()


ROW = """
[models.tiny-seg]
task = "segment"
description = "a two-layer test network that finds red things"
net = "tinyseg:TinySeg"
kwargs = {{ hidden = 4 }}
licence = "MIT"
input = {{ size = [64, 64], resize = "bilinear", mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225] }}
output = {{ activation = "sigmoid" }}
files = [{{ name = "tinyseg.pth", url = "https://example.invalid/tinyseg.pth", sha256 = "{sha256}" }}]
"""


@pytest.fixture
def tiny_model(tmp_path, monkeypatch):
    """The family registered (for this test only), its weights in a mirror, the packaged catalog plus its row."""
    monkeypatch.setattr(nets, "_FAMILIES", dict(nets._FAMILIES))
    nets.register(Family("tinyseg", {"TinySeg": TinySeg}))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    torch.save(_red_finder(), mirror / "tinyseg.pth")
    table = catalog.CATALOG_PATH.read_text(encoding="utf-8") + ROW.format(sha256=sha256_file(mirror / "tinyseg.pth"))
    (tmp_path / "catalog.toml").write_text(table, encoding="utf-8")
    monkeypatch.setenv("MATTEKIT_CATALOG", str(tmp_path / "catalog.toml"))
    monkeypatch.setenv("MATTEKIT_MIRROR", str(mirror))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    catalog.load.cache_clear()
    return "tiny-seg"


def test_a_network_defined_outside_the_package_cuts_out_a_subject(tiny_model, tmp_path):
    photo = np.zeros((96, 128, 3), np.uint8)
    photo[...] = (40, 90, 200)  # blue background
    photo[24:72, 32:96] = (220, 30, 30)  # a red subject
    Image.fromarray(photo).save(tmp_path / "photo.png")
    assert (
        main(
            [
                "remove",
                str(tmp_path / "photo.png"),
                "-o",
                str(tmp_path / "mask.png"),
                "--model",
                tiny_model,
                "--result",
                "alpha",
                "--no-refine",
                "--no-matting",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    mask = np.asarray(Image.open(tmp_path / "mask.png").convert("L"), np.float32) / 255.0
    assert mask.shape == (96, 128)
    assert mask[30:66, 38:90].min() > 0.9  # inside the subject, away from the resampled edge
    outside = np.ones_like(mask, bool)
    outside[18:78, 26:102] = False
    assert mask[outside].max() < 0.1


def test_a_catalog_row_naming_an_unregistered_family_is_refused(tmp_path):
    text = ROW.format(sha256="0" * 64).replace("tinyseg:TinySeg", "nosuchnet:Net")
    with pytest.raises(ValueError, match="names net 'nosuchnet:Net' of no registered family"):
        catalog.parse("[models]\n" + text)
