"""SAM 2.1 (Segment Anything 2.1): the model with official checkpoint keys, and the predictors that drive it."""

from .. import Family
from .model import SAM2

__all__ = ["SAM2"]


# torch only (the catalog rows' ``backends``): the net has no single-tensor forward to export to ONNX.
FAMILY = Family("sam2", {"SAM2": SAM2})
