"""Several objects in one shot: each keyframe hint names its object, each object is a roto job of its own.

A hint's object is a suffix ``@NAME`` on its value: ``--box 1001:10,10,80,90@dog --box 1001:100,20,160,90@swan``,
``--point 1010:40,50@dog``, ``--hint-mask masks/dog.####.png@dog;masks/swan.####.png@swan`` (one pattern per
object), read with the value (:mod:`mattekit.subject.keyframe_hints`): the options hold the hints and hint masks as
values, grouped here by their object. A hint without a suffix belongs to object ``1``. Names are letters, digits,
``_`` and ``-``; two names that differ only in case are refused (they would name one file on a case-insensitive
disk).

Each object writes its own matte sequence: with ``{object}`` in the output pattern (``mattes/{object}.####.png``)
the name replaces it; otherwise, when there are several objects, ``_NAME`` joins the pattern's name before the frame
number (``matte.####.png`` -> ``matte_dog.####.png``, ``matte_swan.####.png``). One object and no ``{object}``:
the pattern as given, so a one-object job writes what it always wrote. ``--rgba`` and ``--fg`` follow the same rule;
``--layers`` without ``{object}`` gives one file per frame with a layer per object (:mod:`.layers`).
Each object's job has its own manifest and journal beside its mattes (:class:`~mattekit.roto.store.Store`), so
each resumes on its own.
"""

from __future__ import annotations

import dataclasses

from ..errors import InputError
from ..io.sequences import output_pattern
from ..subject.keyframe_hints import DEFAULT

HINTS = ("hint_mask", "box", "point", "exclude")  # the options holding keyframe hints, each naming its object
PLACEHOLDER = "{object}"
OUTPUTS = ("output", "rgba", "fg", "layers")  # the options naming output patterns: one per object with several


def names(spec) -> list[str]:
    """The objects the job's hints name, in the order they first appear (the hint masks' first)."""
    seen: list[str] = []
    for option in HINTS:
        for hint in getattr(spec, option) or ():
            if hint.name not in seen:
                seen.append(hint.name)
    folded: dict[str, str] = {}
    for name in seen:
        if name.lower() in folded:
            raise InputError(
                f"The objects {folded[name.lower()]!r} and {name!r} differ only in case; their mattes "
                "would be one file on some disks: rename one."
            )
        folded[name.lower()] = name
    return seen


def split(spec, plate) -> list[tuple[str, object]] | None:
    """[(object name, the spec of its own job)] when the hints name several objects or the output pattern holds
    ``{object}``; None for a job as before (hints without names, or one named object, and no ``{object}``)."""
    objects = names(spec)
    placeholder = any(PLACEHOLDER in (getattr(spec, o) or "") for o in OUTPUTS)
    if len(objects) <= 1 and not placeholder:
        return None  # the job as before (:func:`strip` takes a lone object's name off its hints)
    return [(name, _only(spec, name, plate, rename=len(objects) > 1)) for name in objects]


def strip(spec):
    """``spec`` with the one object's name taken off its hints (a one-object job)."""
    objects = names(spec)
    if not objects or objects == [DEFAULT]:
        return spec
    return dataclasses.replace(spec, **{o: _of(getattr(spec, o), objects[0]) for o in HINTS})


def _of(given, name: str) -> tuple | None:
    """The keyframe hints (:class:`~mattekit.subject.keyframe_hints.KeyframeHint`, or the hint masks:
    :class:`~mattekit.subject.keyframe_hints.HintMask`) of object ``name`` among ``given``, their name taken off
    (each object's job is a one-object job); None when it has none."""
    return tuple(hint._replace(name=DEFAULT) for hint in given or () if hint.name == name) or None


def _only(spec, name: str, plate, rename: bool):
    """The spec of object ``name``'s job: its hints and hint masks, and its output patterns."""
    changes = {o: _of(getattr(spec, o), name) for o in HINTS}
    for option in OUTPUTS:
        value = getattr(spec, option)
        if option == "layers" and value and PLACEHOLDER not in value:
            changes[option] = None  # one layered file per frame for all the objects: the shot's job writes it
        elif value:
            changes[option] = object_pattern(value, name, plate, rename)
    return dataclasses.replace(spec, **changes)


def object_pattern(value: str, name: str, plate, rename: bool) -> str:
    """The output pattern (or folder) ``value`` for object ``name``: ``{object}`` replaced, else with ``rename``
    ``_NAME`` joined to the file name before the frame number."""
    if PLACEHOLDER in value:
        return value.replace(PLACEHOLDER, name)
    if not rename:
        return value
    pattern = output_pattern(value, plate)
    stem = pattern.prefix.rstrip("._-")
    prefix = f"{stem}_{name}{pattern.prefix[len(stem) :]}" if stem else f"{name}."
    return str(dataclasses.replace(pattern, prefix=prefix))
