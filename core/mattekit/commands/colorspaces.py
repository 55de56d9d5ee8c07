"""``mattekit colorspaces``: the colour spaces of the OCIO config in use, the names ``roto --colorspace`` takes, and
the views of its sRGB display, the names ``roto --view`` takes."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser(
        "colorspaces",
        help="list the OCIO colour spaces a plate may be given in (roto --colorspace)",
        description="List the colour spaces of the OCIO config in use ($OCIO, else OCIO's built-in "
        "ACES studio config) with their aliases.",
    )
    p.set_defaults(func=_list)


def _list(args) -> int:
    from ..io import colour
    from ..errors import InputError

    print(f"OCIO config: {colour.config_path()}")
    for space in colour.config().getColorSpaces():
        aliases = ", ".join(space.getAliases())
        print(f"  {space.getName()}" + (f"  (also: {aliases})" if aliases else ""))
    try:
        display = colour.srgb_display()
    except InputError as exc:
        print(f"views (roto --view): none ({exc})")
        return 0
    print(f"views of the display '{display}' (roto --view):")
    for view in colour.config().getViews(display):
        print(f"  {view}")
    return 0
