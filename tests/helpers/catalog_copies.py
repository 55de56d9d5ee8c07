"""Copies of the model catalog with one entry changed, for $MATTEKIT_CATALOG."""

from __future__ import annotations

from pathlib import Path

from mattekit import catalog


def small_catalog(folder: Path, size: int, model: str = "birefnet-general-lite") -> str:
    """A copy of the catalog in ``folder`` whose ``model`` (an entry of 1024 x 1024 input) takes ``size`` x ``size``."""
    text = catalog.CATALOG_PATH.read_text()
    start = text.index(f"[models.{model}]")
    end = text.index("\n\n", start)
    entry = text[start:end]
    assert entry.count("size = [1024, 1024]") == 1, entry
    path = folder / f"catalog-{model}-{size}.toml"
    path.write_text(text[:start] + entry.replace("size = [1024, 1024]", f"size = [{size}, {size}]") + text[end:])
    return str(path)


SAM_SIDE = 128  # SAM 2.1's input side in the tests of plumbing (the catalog's is 1024): 1/64 of the pixels to encode


def small_sam_catalog(folder: Path) -> str:
    """A copy of the catalog in ``folder`` whose sam2.1-hiera-tiny takes SAM_SIDE x SAM_SIDE input (``image_size``):
    stand-in weights prove the plumbing, which is the same at any size, not the quality."""
    text = catalog.CATALOG_PATH.read_text()
    start = text.index('[models."sam2.1-hiera-tiny"]')
    end = text.index("\n\n", start)
    entry = text[start:end]
    facts = [
        ('kwargs = { variant = "hiera_t" }', f'kwargs = {{ variant = "hiera_t", image_size = {SAM_SIDE} }}'),
        ("size = [1024, 1024]", f"size = [{SAM_SIDE}, {SAM_SIDE}]"),
    ]
    small = entry
    for was, now in facts:
        assert small.count(was) == 1, entry
        small = small.replace(was, now)
    path = folder / "catalog-small-sam.toml"
    path.write_text(text[:start] + small + text[end:])
    return str(path)
