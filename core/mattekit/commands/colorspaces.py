"""``mattekit colorspaces``: the colour spaces of the OCIO config in use, the names ``roto --colorspace`` takes."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("colorspaces", help="list the OCIO colour spaces a plate may be given in (roto --colorspace)",
                       description="List the colour spaces of the OCIO config in use ($OCIO, else OCIO's built-in "
                                   "ACES studio config) with their aliases.")
    p.set_defaults(func=_list)


def _list(args) -> int:
    from .. import colour

    print(f"OCIO config: {colour.config_path()}")
    for space in colour.config().getColorSpaces():
        aliases = ", ".join(space.getAliases())
        print(f"  {space.getName()}" + (f"  (also: {aliases})" if aliases else ""))
    return 0
