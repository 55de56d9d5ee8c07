"""Benchmarks behind ``mattekit bench``: each KIND's module adds its subcommand and prints its figures; the others
serve them (:mod:`.metrics`: the quality metrics of masks; :mod:`.stand_in`, :mod:`.speed_setup` ...)."""

from __future__ import annotations


def wxh(text: str, option: str) -> tuple[int, int]:
    """(width, height) in px of an option's ``WxH`` text (e.g. 4000x3000); a MattekitError naming ``option`` where
    it is not two whole numbers from 1 up."""
    from mattekit.errors import MattekitError

    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        width = height = 0
    if min(width, height) < 1:
        raise MattekitError(f"{option} {text} is not WxH, e.g. 4000x3000.")
    return width, height
