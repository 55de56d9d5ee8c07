"""A network's input as its catalog entry describes it (size, resize filter, 8-bit grid, scaling, normalisation,
colour order), made from a photo: :func:`prepare_array` (numpy) and :func:`prepare` (torch, sharing its memory); and
the arrays an engine is fed: a batch's inputs :func:`joined`, an input :func:`as_feed` and an output returned
:func:`like` its input."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..ops.pixels import quantise
from ..ops.resizing import resize

if TYPE_CHECKING:
    import torch

    from ..catalog import ModelEntry


def prepare_array(entry: ModelEntry, image: np.ndarray) -> np.ndarray:
    """sRGB HxWx3 (float32 in [0,1], or uint8/uint16: see :func:`mattekit.ops.resizing.resize`, which shrinks a
    large integer photo without a full-size float copy) -> 1x3xhxw float32 array as the catalog entry wants it.
    Where the model's reference reads 8-bit pictures (``eight_bit``) every source is rounded to 8-bit levels first."""
    spec = entry.input
    if spec.eight_bit:  # one quantisation for every source: a float on the 8-bit grid gives the 8-bit answer
        image = quantise(image[..., :3], 8)
    image = np.ascontiguousarray(resize(image[..., :3], *spec.net_size(*image.shape[:2]), spec.resize), np.float32)
    planes = np.empty((3,) + image.shape[:2], np.float32)  # the channels apart, then changed in place, plane by plane
    cv2.mixChannels([image], list(planes), [0, 0, 1, 1, 2, 2])  # (faster than numpy's strided copy)
    if spec.quantize_uint8:
        for plane in planes:  # floor(clip(x, 0, 1) * 255) / 255, each step in float32 as on the whole image
            np.clip(plane, 0, 1, out=plane)
            np.multiply(plane, np.float32(255.0), out=plane)
            np.floor(plane, out=plane)
            np.divide(plane, np.float32(255.0), out=plane)
    if spec.divide_by_max:
        np.divide(planes, np.float32(max(float(planes.max()), 1e-6)), out=planes)
    if spec.colour_order == "BGR":
        planes = planes[::-1]
    scale = np.float32(spec.extra_scale * spec.value_scale)
    for plane, mean, std in zip(planes, np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)):
        np.subtract(plane, mean, out=plane)  # per plane: 5x faster than broadcasting over a last axis of 3
        np.divide(plane, std, out=plane)
        if scale != 1:
            np.multiply(plane, scale, out=plane)
    return np.ascontiguousarray(planes)[None]


def prepare(entry: ModelEntry, image: np.ndarray) -> torch.Tensor:
    """:func:`prepare_array` as a 1x3xhxw float32 torch tensor (sharing its memory)."""
    import torch

    return torch.from_numpy(prepare_array(entry, image))


def as_feed(x, dtype) -> np.ndarray:
    """A numpy array or torch tensor as a contiguous numpy array of ``dtype`` on the CPU (no copy where it is one)."""
    if not isinstance(x, np.ndarray):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype)


def like(given, out: np.ndarray):
    """``out`` as the kind of array ``given`` is: numpy as it is, else a torch tensor sharing its memory."""
    if isinstance(given, np.ndarray):
        return out
    import torch

    return torch.from_numpy(out)


def joined(parts: list):
    """Batch parts (all numpy arrays or all torch tensors) concatenated on the first axis."""
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    import torch

    return torch.cat(parts)
