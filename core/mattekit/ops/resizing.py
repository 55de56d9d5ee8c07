"""Resizing images and maps: OpenCV's area, bilinear, cubic and nearest, PIL's Lanczos, PyTorch's area mode,
block-mean shrinking and cover-and-crop. Results are float32 in [0,1], H x W (x C).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..machine import cpu_count
from .pixels import STRIP_BYTES, STRIP_VALUES, unit_float
from .regions import each_row_strip, each_tile


SPLIT_PIXELS = 1 << 22  # pixels: a Lanczos pass over an image this big is spread over the cores
WHOLE_BYTES = 16 << 20  # integer images whose float copy is at most this are resized as one float array
_FLAGS = {"bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "cubic": cv2.INTER_CUBIC, "nearest": cv2.INTER_NEAREST}


def lanczos(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """PIL's Lanczos resize (a = 3, widened by the factor when shrinking: antialiased) of H x W (x C) to
    (height, width), float32 in [0,1]. uint8 runs PIL's 8-bit path (rounded to 8 bits after each of its
    two passes: bit for bit what rembg feeds its networks); other types are resized as floats, channel
    by channel (PIL's "F" mode: no rounding). A big image's passes are spread over the cores (:func:`pil_lanczos`)."""
    if x.dtype == np.uint8 and (x.ndim == 2 or x.shape[2] in (1, 3)):
        eight = np.ascontiguousarray(x if x.ndim == 2 else x[..., 0] if x.shape[2] == 1 else x)
        out = pil_lanczos(eight, height, width).astype(np.float32) / np.float32(255)
        return out.reshape((height, width) + x.shape[2:])
    x = unit_float(x)
    planes = [x] if x.ndim == 2 else [x[..., c] for c in range(x.shape[2])]
    resized = [pil_lanczos(np.ascontiguousarray(p, np.float32), height, width) for p in planes]
    return resized[0] if x.ndim == 2 else np.stack(resized, axis=2)


def pil_lanczos(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """PIL's Lanczos resize of ``x`` (H x W uint8 or float32, or H x W x 3 uint8) to (height, width), in ``x``'s
    dtype (a new, writable array): the same values as PIL's one call. PIL makes it in two passes, the 8-bit path
    rounding between them: the width (an output pixel reads one row) and the height (one column), in the order
    :func:`pil_pass_order` says. Over a big image (:data:`SPLIT_PIXELS`, a pass's source or result) those passes run
    here in strips over the cores, rows for the width pass and columns for the height pass."""
    from PIL import Image

    def one_call(part: np.ndarray, h: int, w: int) -> np.ndarray:
        image = Image.fromarray(part, mode="F") if part.dtype == np.float32 else Image.fromarray(part)
        return np.asarray(image.resize((w, h), Image.Resampling.LANCZOS))

    def width_pass(x: np.ndarray) -> np.ndarray:
        cuts = np.linspace(0, x.shape[0], cpu_count() + 1).astype(int)
        return np.concatenate(
            each_tile(
                lambda ys: one_call(x[ys], ys.stop - ys.start, width),
                [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a],
            )
        )

    def height_pass(x: np.ndarray) -> np.ndarray:
        cuts = np.linspace(0, x.shape[1], cpu_count() + 1).astype(int)
        strips = [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
        return np.concatenate(
            each_tile(lambda xs: one_call(np.ascontiguousarray(x[:, xs]), height, xs.stop - xs.start), strips), axis=1
        )

    order = pil_pass_order(x.shape[0], x.shape[1], height, width)
    if max(x.shape[0] * x.shape[1], height * width) < SPLIT_PIXELS or order is None or x.shape[:2] == (height, width):
        return np.array(one_call(x, height, width))  # PIL's bytes are read-only
    for name in order:
        if name == "width" and x.shape[1] != width:
            x = width_pass(x)
        elif name == "height" and x.shape[0] != height:
            x = height_pass(x)
    return x


def pil_pass_order(in_height: int, in_width: int, height: int, width: int) -> tuple[str, str] | None:
    """The order of PIL's two Lanczos passes from (in_height, in_width) to (height, width): ("width", "height") up to
    Pillow 12; Pillow 13 runs the height first where it sheds more than twice the rows the width sheds columns
    (its Resample.c). None for a later Pillow, whose rule is not known here."""
    import PIL

    major = int(PIL.__version__.split(".")[0])
    if major > 13:
        return None
    shed_rows, shed_columns = in_height - height, in_width - width
    if major == 13 and shed_rows > 0 and shed_rows > 2 * shed_columns:
        return ("height", "width")
    return ("width", "height")


def torch_area(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """PyTorch's ``interpolate(mode="area")`` of H x W (x C) float32 to (height, width): adaptive average
    pooling (output pixel i averages input pixels floor(i*n/m) .. ceil((i+1)*n/m) - 1 on each axis), which
    differs from OpenCV's area resize for non-integer factors and copies pixels when enlarging. Separable."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    t = t[None, None] if x.ndim == 2 else t.permute(2, 0, 1)[None]
    out = torch.nn.functional.adaptive_avg_pool2d(t, (height, width))[0]
    return out[0].numpy() if x.ndim == 2 else np.ascontiguousarray(out.permute(1, 2, 0).numpy())


def resize(x: np.ndarray, height: int, width: int, method: str = "bilinear") -> np.ndarray:
    """Resize H x W (x C) to (height, width) float32; ``area`` for shrinking, bilinear/cubic otherwise,
    ``lanczos`` / ``torch-area`` where a model's reference pipeline uses PIL's Lanczos (:func:`lanczos`) /
    PyTorch's area mode (:func:`torch_area`).

    Floats are taken as they are; uint8/uint16 are read as [0,1] (:func:`unit_float`). An integer image
    shrunk to a smaller float copy than :data:`WHOLE_BYTES` is never made float whole: its rows are made
    float a strip at a time and shrunk in width, then the narrow result in height (for non-integer
    factors OpenCV gives the same values as one 2-D resize; otherwise they differ by float rounding).
    An ``area`` shrink by a whole factor k in height does both steps strip by strip (strips of a multiple
    of k rows: the same values, and no full-height narrow copy). The strips are spread over the cores.
    """
    if method == "lanczos" and x.dtype == np.uint8:
        return lanczos(x, height, width)
    if x.dtype.kind in "ui" and height <= x.shape[0] and width <= x.shape[1] and x.size * 4 > WHOLE_BYTES:
        rows = max(1, STRIP_BYTES // (x[0].size * 4))
        k = x.shape[0] // height
        if method == "area" and k > 1 and x.shape[0] == k * height:
            rows = max(1, rows // k) * k
            out = np.empty((height, width) + x.shape[2:], np.float32)

            def shrunk_strip(part: slice) -> None:
                narrow = resize(unit_float(x[part]), part.stop - part.start, width, method)
                out[part.start // k : part.stop // k] = resize(narrow, narrow.shape[0] // k, width, method)

            each_row_strip(shrunk_strip, x.shape[0], 1, rows)
            return out
        narrow = np.empty((x.shape[0], width) + x.shape[2:], np.float32)

        def narrowed_strip(part: slice) -> None:
            narrow[part] = resize(unit_float(x[part]), part.stop - part.start, width, method)

        each_row_strip(narrowed_strip, x.shape[0], 1, rows)
        return resize(narrow, height, width, method)
    x = unit_float(x)
    if x.shape[:2] == (height, width):
        return x
    if method == "lanczos":
        return lanczos(x, height, width)
    if method == "torch-area":
        return torch_area(x, height, width)
    resized = cv2.resize(np.ascontiguousarray(x), (width, height), interpolation=_FLAGS[method])
    return resized.reshape((height, width) + x.shape[2:])


def prediction_array(prediction) -> np.ndarray:
    """A network's prediction as an h x w float32 array: the first map of an N x C x h x w array or tensor (on the
    CPU), or an h x w array as it is."""
    if isinstance(prediction, np.ndarray):
        return (prediction[0, 0] if prediction.ndim == 4 else prediction).astype(np.float32, copy=False)
    return prediction[0, 0].float().cpu().numpy()


def resized_map(low: np.ndarray, height: int, width: int, method: str = "bilinear") -> np.ndarray:
    """A probability map (h x w) resized to height x width by ``method`` (a model's upsampling, as its reference
    pipeline does it: :meth:`mattekit.predictor.Predictor.to_image`), float32 in [0,1] (clipped in strips of rows over
    the cores)."""
    mask = resize(low, height, width, method)
    if mask is low:
        return np.clip(mask, 0.0, 1.0)

    def strip(rows: slice) -> None:
        np.clip(mask[rows], 0.0, 1.0, out=mask[rows])

    each_row_strip(strip, height, width, STRIP_VALUES)
    return mask


def shrunk(x: np.ndarray, scale: int) -> np.ndarray:
    """``x`` (H x W [x C], its pixels' channels contiguous; float [0,1] or uint8/uint16) shrunk ``scale`` times by
    block means (:func:`block_means`), float32 in [0,1]. No float copy of ``x`` is made."""
    return unit_float(block_means(x, scale))


def block_means(x: np.ndarray, scale: int) -> np.ndarray:
    """``x`` (H x W [x C], its pixels' channels contiguous) shrunk ``scale`` times by block means, in ``x``'s dtype
    (integers rounded): ceil(H / scale) x ceil(W / scale); the last row and column of blocks average what is left
    over. OpenCV's area resize, of the integers as they are."""
    h, w = x.shape[:2]
    hs, ws = h // scale * scale, w // scale * scale
    if (hs, ws) == (h, w):
        return cv2.resize(x, (w // scale, h // scale), interpolation=cv2.INTER_AREA).reshape(
            (h // scale, w // scale) + x.shape[2:]
        )
    out = np.empty((-(-h // scale), -(-w // scale)) + x.shape[2:], x.dtype)
    for ys in (slice(0, hs), slice(hs, h)):
        for xs in (slice(0, ws), slice(ws, w)):
            if ys.stop > ys.start and xs.stop > xs.start:
                part = out[ys.start // scale : -(-ys.stop // scale), xs.start // scale : -(-xs.stop // scale)]
                part[...] = cv2.resize(x[ys, xs], part.shape[1::-1], interpolation=cv2.INTER_AREA).reshape(part.shape)
    return out


def fit_cover(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale ``image`` to cover (height, width) keeping its aspect ratio, then crop the centre."""
    h, w = image.shape[:2]
    s = max(height / h, width / w)
    nh, nw = max(height, int(np.ceil(h * s))), max(width, int(np.ceil(w * s)))
    scaled = resize(image, nh, nw, "area" if s < 1 else "bilinear")
    top, left = (nh - height) // 2, (nw - width) // 2
    return scaled[top : top + height, left : left + width]
