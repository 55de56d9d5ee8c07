"""What the parts of the Gimp stand-in share (Gimp.py re-exports it all): the calls recorded for tests, GIMP's
context stack, and GIMP's enums."""

from . import Gegl

CALLS = []  # (name, args) of progress/display/message calls, for tests to inspect


def _record(name, *args):
    CALLS.append((name,) + args)
    return True


CONTEXT = [{"foreground": Gegl.Color.new("black")}]  # GIMP's context stack: the last is in force


class _Enum:
    def __init__(self, name, nick):
        self.value_name, self.value_nick = name, nick

    def __repr__(self):
        return "<%s>" % self.value_name


def _enum(name, members):
    return type(name, (), {m: _Enum(m, m.lower().replace("_", "-")) for m in members})


PDBProcType = _enum("PDBProcType", ["PLUGIN"])


PDBStatusType = _enum("PDBStatusType", ["SUCCESS", "CANCEL", "EXECUTION_ERROR", "CALLING_ERROR"])


RunMode = _enum("RunMode", ["INTERACTIVE", "NONINTERACTIVE", "WITH_LAST_VALS"])


ProcedureSensitivityMask = _enum("ProcedureSensitivityMask", ["DRAWABLE", "DRAWABLES"])


ImageType = _enum("ImageType", ["RGB_IMAGE", "RGBA_IMAGE"])


ImageBaseType = _enum("ImageBaseType", ["RGB", "GRAY"])


LayerMode = _enum("LayerMode", ["NORMAL"])


AddMaskType = _enum("AddMaskType", ["WHITE", "BLACK", "ALPHA"])


MaskApplyMode = _enum("MaskApplyMode", ["APPLY", "DISCARD"])


FillType = _enum("FillType", ["TRANSPARENT", "WHITE", "BACKGROUND", "FOREGROUND"])


ChannelOps = _enum("ChannelOps", ["REPLACE", "ADD"])


PathStrokeType = _enum("PathStrokeType", ["BEZIER"])


Precision = _enum(
    "Precision",
    [
        f"{t}_{c}"
        for t in ("U8", "U16", "U32", "HALF", "FLOAT", "DOUBLE")
        for c in ("LINEAR", "NON_LINEAR", "PERCEPTUAL")
    ],
)
