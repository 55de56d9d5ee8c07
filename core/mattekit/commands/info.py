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
    """Each file in turn; a file that cannot be read is one error line and the others are still
    described (exit status 1 when any failed)."""
    import sys

    from ..errors import MattekitError

    failed = 0
    for path in args.files:
        try:
            _describe(path, args.json)
        except MattekitError as exc:
            print(f"mattekit: error: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def _describe(path: str, as_json: bool) -> None:
    """Print the size, format and provenance of one image or roto manifest."""
    from .. import io, provenance
    from ..errors import InputError

    if path.endswith(".json"):
        try:
            record = json.loads(open(path, encoding="utf-8").read()).get("provenance")
        except (OSError, ValueError, AttributeError):
            raise InputError(f"{path} is not a readable roto manifest.") from None
        what = "roto manifest"
    else:
        layout = io.read_layout(path)  # the header alone: describing an image needs none of its pixels
        record = io.read_provenance(path)
        what = f"{layout.format} {layout.width} x {layout.height}, {layout.mode}, {layout.bit_depth}-bit"
    if as_json:
        print(json.dumps({"file": path, "provenance": record}, sort_keys=True))
        return
    print(f"{path}: {what}")
    for line in provenance.describe(record) if record else ["no provenance recorded"]:
        print(f"  {line}")
