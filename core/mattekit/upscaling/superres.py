"""Super-resolution: upscale an image with a catalog SR network, tile by tile, alpha and grey kept.

``upscale(predictor, image, ...)`` takes H x W (grey), H x W x 1|2|3|4 (grey, grey+alpha, RGB, RGBA)
float32 in [0,1] or uint8/uint16 and returns the same channels at the output size, in the input's
dtype: float32 in [0,1], or uint8/uint16 (rounded). Integer images stay integer on the way: each
tile is made float on its own and the result is stored as integers tile by tile, so a 12 MP x4
upscale of an 8-bit photo needs about the 8-bit result (576 MB) plus one tile's work, never a
full-size float copy (:func:`mattekit.tiling.run_tiled`). Alpha stays straight (unpremultiplied).

How alpha is upscaled (``alpha="model"``, the default): the alpha plane goes through the same
network as a grey image, in the same batch as the colour. A hard matte edge then stays as
sharp as the colour edge it belongs to and lands on the same pixels, where bicubic would
leave a blurred rim a few pixels wide around a sharp subject. Two guards keep it a matte:
pixels whose 3x3 input neighbourhood is fully opaque (transparent) come out exactly 1 (0),
so the net cannot dent flat regions, and the result is clamped to [0,1]. ``alpha="bicubic"``
is the cheap, conservative alternative (no extra network pass). Before either, colour under
fully transparent pixels is filled from the nearest visible colours (push-pull), so the
network never pulls the arbitrary colour hidden there (often black) into the subject's edge.
"""

from __future__ import annotations

import warnings
import weakref
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..predictor import Predictor
from ..ops.pixels import quantise
from ..ops.resizing import resize
from ..errors import InputError, MattekitError
from . import tiling

MAX_SCALE = 16.0
MIN_SIDE = 16  # smaller inputs are padded up to this (RFDN's attention branch needs 15 px)
DEFAULT_OVERLAP = 32
ALPHA_METHODS = ("model", "bicubic")


def output_size(
    height: int, width: int, net_scale: int, scale: float | None = None, target_width: int | None = None
) -> tuple[int, int]:
    """(H, W) of the result for an input of ``height`` x ``width``: ``target_width`` (height keeping the
    aspect), else ``scale`` (None = the net's own factor); a MattekitError for bad requests."""
    if target_width is not None:
        if target_width < 1:
            raise MattekitError(f"The target width must be a positive number of pixels, not {target_width}.")
        out_w = int(target_width)
        out_h = max(1, round(height * out_w / width))
        if out_w / width > MAX_SCALE:
            raise MattekitError(
                f"A width of {out_w} px is more than {MAX_SCALE:g}x this {width} px wide image; upscale in steps."
            )
        return out_h, out_w
    scale = float(net_scale if scale is None else scale)
    if not 0 < scale <= MAX_SCALE:
        raise MattekitError(f"The scale must be above 0 and at most {MAX_SCALE:g}, not {scale:g}.")
    return max(1, round(height * scale)), max(1, round(width * scale))


def _checked(image: np.ndarray) -> np.ndarray:
    """Any supported array as H x W x C (C = 1..4): uint8 and uint16 as they are, other types as float32
    clipped to [0,1]."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 2, 3, 4) or 0 in image.shape:
        raise InputError(f"An image must be H x W or H x W x 1-4 channels, not an array of shape {image.shape}.")
    if image.dtype in (np.uint8, np.uint16):
        return image
    if not np.issubdtype(image.dtype, np.floating):
        raise InputError(f"Image arrays must be float in [0,1], uint8 or uint16, not {image.dtype}.")
    return np.clip(image.astype(np.float32, copy=False), 0.0, 1.0)


def _unit(t: torch.Tensor) -> torch.Tensor:
    """A window of uint8/uint16 (0..255 / 0..65535) or float values as float32 in [0,1]."""
    if t.dtype == torch.uint8:
        return t.float().div_(255.0)
    if t.dtype == torch.uint16:
        return t.float().div_(65535.0)
    return t


def fill_transparent(rgb: np.ndarray, alpha: np.ndarray, threshold: float = 1.0 / 512) -> np.ndarray:
    """Colour of fully transparent pixels replaced by the nearby visible colour (push-pull fill).

    An image pyramid of alpha-masked colour is built by area averaging; going back up, each
    level keeps its known colour and takes the missing part from the coarser level. Visible
    pixels are unchanged. rgb: H x W x C float32; alpha: H x W. Returns a new array.
    """
    known = (alpha >= threshold).astype(np.float32)
    if known.all() or not known.any():
        return rgb
    levels = [(rgb * known[..., None], known)]
    while max(levels[-1][1].shape) > 1:
        c, k = levels[-1]
        size = (max(1, (k.shape[1] + 1) // 2), max(1, (k.shape[0] + 1) // 2))
        small_c = cv2.resize(c, size, interpolation=cv2.INTER_AREA).reshape(size[1], size[0], -1)
        levels.append((small_c, cv2.resize(k, size, interpolation=cv2.INTER_AREA).reshape(size[1], size[0])))
    c, k = levels[-1]
    colour = c / np.maximum(k, 1e-8)[..., None]
    for c, k in reversed(levels[:-1]):
        up = cv2.resize(colour, (k.shape[1], k.shape[0]), interpolation=cv2.INTER_LINEAR).reshape(c.shape)
        colour = c + (1.0 - k)[..., None] * up
    out = rgb.copy()
    clear = known == 0
    out[clear] = colour[clear]
    return out


def _bicubic(t: torch.Tensor, scale: int) -> torch.Tensor:
    return F.interpolate(t, scale_factor=scale, mode="bicubic", align_corners=False)


class _TileFunction:
    """What runs on one window: colour (and alpha) through the net, guards, strength blend.

    Input windows are 1 x C x h x w in [0,1] with the image's own channels (grey, grey+alpha,
    RGB, RGBA); the result has the same channels at ``scale`` times the size, clamped to [0,1].
    """

    def __init__(self, predictor: Predictor, channels: int, alpha: str | None, strength: float):
        self.predictor = predictor
        self.scale = predictor.scale
        self.grey = channels in (1, 2)
        self.has_alpha = channels in (2, 4)
        self.alpha = alpha if self.has_alpha else None  # "model", "bicubic" or "constant"
        self.strength = strength

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        t = _unit(t)
        colour = t[:, :1].repeat(1, 3, 1, 1) if self.grey else t[:, :3]
        batch = [colour]
        if self.alpha == "model":
            batch.append(t[:, -1:].repeat(1, 3, 1, 1))
        y = self.predictor.as_rgb(self.predictor(self.predictor.as_net_input(torch.cat(batch, 0))))
        y = y.to(torch.float32)
        out = y[:1].mean(1, keepdim=True) if self.grey else y[:1]
        if self.strength < 1.0:
            classic = _bicubic(colour[:, :1] if self.grey else colour, self.scale).to(out.device)
            out = out * self.strength + classic * (1.0 - self.strength)
        parts = [out.clamp_(0.0, 1.0)]
        if self.has_alpha:
            parts.append(
                self._alpha(t[:, -1:], y[1:].mean(1, keepdim=True) if self.alpha == "model" else None, out.device)
            )
        return torch.cat(parts, 1) if len(parts) > 1 else parts[0]

    def _alpha(self, a: torch.Tensor, net: torch.Tensor | None, device) -> torch.Tensor:
        s = self.scale
        if self.alpha == "constant":
            return F.interpolate(a, scale_factor=s, mode="nearest").to(device)
        classic = _bicubic(a, s).to(device)
        if net is None:
            return classic.clamp_(0.0, 1.0)
        if self.strength < 1.0:
            net = net * self.strength + classic * (1.0 - self.strength)
        a = a.to(device)
        opaque = -F.max_pool2d(-a, 3, 1, 1) >= 1.0  # 3x3 neighbourhood fully opaque
        clear = F.max_pool2d(a, 3, 1, 1) <= 0.0  # ... fully transparent
        net = torch.where(F.interpolate(opaque.float(), scale_factor=s, mode="nearest") > 0, 1.0, net)
        net = torch.where(F.interpolate(clear.float(), scale_factor=s, mode="nearest") > 0, 0.0, net)
        return net.clamp_(0.0, 1.0)


_BYTES_PER_PIXEL: "weakref.WeakKeyDictionary[Predictor, float]" = weakref.WeakKeyDictionary()


LARGE_RESULT = 256 << 20  # bytes: results at least this large cap a CPU tile's work at a quarter of their size
MIN_CAPPED_TILE = 256  # ... but never below this side (overlap would cost more than memory saves)


def _tile_size(predictor: Predictor, batch: int, result_bytes: int, channels: int) -> int:
    """The tile side: the largest that fits a share of free memory (:func:`mattekit.tiling.choose_tile`);
    a result of :data:`LARGE_RESULT` or more also keeps one tile's host memory (three float copies of the
    tile's output, and on the CPU the net's activations) within a quarter of the result's size, down to
    :data:`MIN_CAPPED_TILE`: a 12 MP x4 upscale (576 MB at 8 bits) measured 1.58 GB peak with 768-pixel
    tiles on the CPU, 1.06 GB (1.92x the result) with 256; on an H100, 3.34 GB with 2048-pixel tiles."""
    if predictor not in _BYTES_PER_PIXEL:
        _BYTES_PER_PIXEL[predictor] = tiling.bytes_per_pixel(
            predictor.net, 3, device=predictor.device, dtype=predictor.dtype
        )
    per_pixel = _BYTES_PER_PIXEL[predictor]
    side = tiling.choose_tile(per_pixel, predictor.device, batch=batch)
    if result_bytes >= LARGE_RESULT:
        work = predictor.scale**2 * channels * 4 * 3  # host bytes per input pixel of a tile
        if predictor.device.type == "cpu":
            work += per_pixel * batch  # the activations share the host's memory there
        fits = [t for t in tiling.TILE_LADDER if t * t * work <= result_bytes / 4]
        side = min(side, max(fits + [MIN_CAPPED_TILE]))
    return side


def _with_alpha_method(pixels: np.ndarray, dtype: np.dtype, alpha: str) -> tuple[np.ndarray, str]:
    """(the pixels the network sees, how their alpha is upscaled): an image with alpha (2 or 4 channels) that is not
    uniform gets its transparent pixels' colours filled in (as float32 [0,1]); a uniform alpha needs no network pass
    ("constant"); else ``alpha`` as asked."""
    if pixels.shape[-1] not in (2, 4):
        return pixels, alpha
    if pixels[..., -1].min() == pixels[..., -1].max():
        return pixels, "constant"  # fully opaque (or uniform) alpha: no network pass for it
    top = float(np.iinfo(dtype).max) if dtype != np.float32 else 1.0
    floats = pixels.astype(np.float32) / np.float32(top)
    colour = fill_transparent(floats[..., :-1], floats[..., -1])
    return np.concatenate([colour, floats[..., -1:]], axis=-1), alpha


def _resampled(result: np.ndarray, height: int, width: int, dtype: np.dtype) -> np.ndarray:
    """The network's float result (H x W x C [0,1]) resized to ``height`` x ``width`` (area when shrinking, bicubic
    when enlarging), clipped, and rounded to ``dtype``'s levels for an integer photo."""
    shrinking = height * width < result.shape[0] * result.shape[1]
    result = resize(result, height, width, "area" if shrinking else "cubic")
    np.clip(result, 0.0, 1.0, out=result)
    if dtype != np.float32:
        result = quantise(result, 16 if dtype == np.uint16 else 8)
    return result


def _check_choices(strength: float, alpha: str) -> None:
    """A MattekitError sentence for a strength outside [0, 1] or an unknown alpha method."""
    if not 0.0 <= strength <= 1.0:
        raise MattekitError(f"The strength must be between 0 and 1, not {strength:g}.")
    if alpha not in ALPHA_METHODS:
        raise MattekitError(f"The alpha method must be one of {', '.join(ALPHA_METHODS)}, not '{alpha}'.")


def _as_tensor(pixels: np.ndarray) -> torch.Tensor:
    """H x W x C pixels as a 1 x C x H x W tensor: a view of them, or, for a side under MIN_SIDE pixels, a copy in
    [0,1] padded up to it with its edge replicated (the result is cropped back)."""
    height, width = pixels.shape[:2]
    pad_h, pad_w = max(0, MIN_SIDE - height), max(0, MIN_SIDE - width)
    with warnings.catch_warnings():  # a read-only array (a decoded image) is fine: x is never written to
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        x = torch.from_numpy(pixels).permute(2, 0, 1)[None]  # a view: run_tiled copies each window
    if pad_h or pad_w:
        x = F.pad(_unit(x.contiguous()), (0, pad_w, 0, pad_h), mode="replicate")
    return x


def _tiled(fn, x: torch.Tensor, predictor: Predictor, tile: int, overlap: int, progress, dtype) -> torch.Tensor:
    """``fn`` run over ``x`` in windows of ``tile`` input pixels sharing ``overlap`` (:func:`tiling.run_tiled`), one
    image at a time per model (its lock: the tiles were sized from free memory): 1 x C x H*s x W*s of ``dtype``."""
    with predictor.lock:
        return tiling.run_tiled(
            fn,
            x,
            predictor.scale,
            tile=tile,
            overlap=overlap,
            multiple=predictor.pad_multiple,
            device=predictor.device,
            progress=progress,
            dtype=dtype,
        )


def upscale(
    predictor: Predictor,
    image: np.ndarray,
    *,
    scale: float | None = None,
    width: int | None = None,
    strength: float = 1.0,
    tile: int | None = None,
    overlap: int | None = None,
    alpha: str = "model",
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Upscale ``image`` (H x W or H x W x 1-4, float32 [0,1] or uint8/uint16) by ``predictor`` -> the same
    dtype (float32 [0,1], or uint8/uint16 rounded).

    scale: output/input size ratio (None = the model's own factor; other ratios resample the
    network's result: area when shrinking, bicubic when enlarging); width: target width in pixels,
    height keeping the aspect (overrides scale); strength: 1 = network only, 0 = plain bicubic;
    tile: window side in input pixels (None = chosen from free memory, 0 = whole image at once);
    overlap: input pixels shared by neighbouring tiles (None = the catalog's); alpha: "model" or
    "bicubic" (module docstring). The result keeps the input's channels (grey stays grey, alpha
    stays straight alpha). ``progress(done, total)`` is called after each tile.
    """
    _check_choices(strength, alpha)
    was_2d = np.ndim(image) == 2
    pixels = _checked(image)
    dtype = pixels.dtype if pixels.dtype in (np.uint8, np.uint16) else np.dtype(np.float32)
    height, in_width, channels = pixels.shape
    out_h, out_w = output_size(height, in_width, predictor.scale, scale, width)
    width = in_width

    pixels, alpha_method = _with_alpha_method(pixels, dtype, alpha)

    x = _as_tensor(pixels)
    fn = _TileFunction(predictor, channels, alpha_method, float(strength))
    batch = 2 if fn.alpha == "model" else 1
    tile = (
        max(x.shape[-2:])
        if tile == 0
        else tile or _tile_size(predictor, batch, out_h * out_w * channels * dtype.itemsize, channels)
    )
    if overlap is None:
        overlap = predictor.overlap if predictor.overlap is not None else DEFAULT_OVERLAP
    s = predictor.scale
    native = (out_h, out_w) == (height * s, width * s)
    stored = torch.from_numpy(np.empty(0, dtype)).dtype if native else torch.float32
    out = _tiled(fn, x, predictor, tile, overlap, progress, stored)
    result = out[0].permute(1, 2, 0).numpy()[: height * s, : width * s]  # H x W x C view, no copy
    if not native:  # another ratio: the network's float result resampled
        result = _resampled(result, out_h, out_w, dtype)
    if was_2d:
        result = result[..., 0]
    return np.ascontiguousarray(result)
