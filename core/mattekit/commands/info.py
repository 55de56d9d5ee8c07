"""``mattekit info FILE...``: what made an image (the provenance written into it) and what it holds."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser(
        "info",
        help="print what made an image: mattekit version, task, model, weights sha256, options",
        description="Print the provenance embedded in images (and roto manifests) and their size and format.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="images, or a roto manifest (*.mattekit.json)")
    p.add_argument("--json", action="store_true", help="print the records as JSON (one object per file)")
    p.set_defaults(func=_info)


def _info(args) -> int:
    """Each file in turn; a file that cannot be read is one error line and the others are still
    described. Exit status 2 when no file could be described (a user error, as elsewhere), 1 when some were."""
    import sys

    from ..errors import MattekitError, printable

    failed = 0
    for path in args.files:
        try:
            _describe(path, args.json)
        except MattekitError as exc:
            print(f"mattekit: error: {printable(str(exc))}", file=sys.stderr)
            failed += 1
    return 0 if not failed else 2 if failed == len(args.files) else 1


def _describe(path: str, as_json: bool) -> None:
    """Print the size, format and provenance of one image or roto manifest."""
    from .. import io, provenance
    from ..errors import InputError, printable

    if path == "-":
        raise InputError("mattekit info reads files, not standard input (-); name an image or a roto manifest.")
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
    print(f"{printable(path)}: {what}")
    for line in provenance.describe(record) if record else ["no provenance recorded"]:
        print(f"  {line}")
