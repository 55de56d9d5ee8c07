"""``mattekit info FILE...``: what made an image (the provenance written into it) and what it holds."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="print what made an image: mattekit version, task, model, weights sha256, options",
                       description="Print the provenance embedded in images (and roto manifests) and their size and format.")
    p.add_argument("files", nargs="+", metavar="FILE", help="images, or a roto manifest (*.mattekit.json)")
    p.add_argument("--json", action="store_true", help="print the records as JSON (one object per file)")
    p.set_defaults(func=_info)


def _info(args) -> int:
    from .. import io, provenance
    from ..errors import InputError

    for path in args.files:
        if path.endswith(".json"):
            try:
                record = json.loads(open(path, encoding="utf-8").read()).get("provenance")
            except (OSError, ValueError, AttributeError):
                raise InputError(f"{path} is not a readable roto manifest.") from None
            what = "roto manifest"
        else:
            picture = io.read_image(path)
            record = io.read_provenance(path)
            h, w, c = picture.pixels.shape
            what = f"{picture.format} {w} x {h}, {picture.mode or c}, {picture.bit_depth}-bit"
        if args.json:
            print(json.dumps({"file": path, "provenance": record}, sort_keys=True))
            continue
        print(f"{path}: {what}")
        for line in provenance.describe(record) if record else ["no provenance recorded"]:
            print(f"  {line}")
    return 0
