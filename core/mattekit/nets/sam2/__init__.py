"""SAM 2.1 (Segment Anything 2.1): the model with official checkpoint keys, and the predictors that drive it."""
from .model import SAM2

__all__ = ["SAM2"]
