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
