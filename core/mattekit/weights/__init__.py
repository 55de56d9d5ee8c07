"""Model weights: a verified download cache, and safe loading of checkpoint containers.

Files live in ``cache_dir()`` under their own name. ``fetch`` looks there first, then in
``MATTEKIT_MIRROR`` (a local folder holding the files by name, or an http(s) base URL), then in
rembg's model folder (:func:`rembg_dir`; pinned files only, see :func:`pinned`), then at the official URL;
``MATTEKIT_OFFLINE=1`` allows only the cache and the local folders. A file from a local folder is
hard-linked into the cache (no second copy on disk) where the file system allows, else copied.
Every file is checked against its sha256 before it enters the cache, or, where the catalog knows only
rembg's md5 pin of it, against that md5. A file without a known sha256 has its sha256 recorded in
``hashes.json`` in the cache on first use (after its md5 matched, or trusted on first use where there
is no pin at all) and checked from then on.

One job per module: :mod:`.cache` (where files live, known and recorded sha256s, verification),
:mod:`.download` (mirror, rembg's folder, official URL; resumed downloads), :mod:`.added` (files added
with ``mattekit models add``, and the file a model runs with) and :mod:`.checkpoint` (safe loading).
"""

from mattekit.weights.added import add, added, given_file, matching, model_file
from mattekit.weights.cache import (
    WeightFile,
    cache_dir,
    cached_path,
    file_sha256,
    is_cached,
    pinned,
    pinned_sha256s,
    read_sha256,
    unchanged,
    verify,
)
from mattekit.weights.checkpoint import load_state_dict_file, unwrap_state_dict
from mattekit.weights.download import fetch, fetch_first, local_folder, rembg_dir

__all__ = [
    "WeightFile",
    "pinned",
    "cache_dir",
    "cached_path",
    "is_cached",
    "verify",
    "pinned_sha256s",
    "file_sha256",
    "read_sha256",
    "unchanged",
    "fetch",
    "fetch_first",
    "local_folder",
    "rembg_dir",
    "added",
    "given_file",
    "matching",
    "add",
    "model_file",
    "load_state_dict_file",
    "unwrap_state_dict",
]
