"""The mask's refinement (:func:`mattekit.finish.refine.refine_mask`) as torch operations on a model's device (a GPU):
the same colour guided filter in the same uncertain band, run over the whole photo at once rather than in the band's
tiles (a GPU has the lanes), its coefficients solved on the photo's 2 x 2 ... s x s block means where the CPU
subsamples (the fast guided filter). Only the band's values come back to the host. Images H x W x 3|4 (uint8, uint16
or float [0,1]); masks H x W float32 in [0,1].
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..matting import trimap as trimaps
from ..ops.on_device import box_mean, enlarged, to_device, unit_tensor, unless_out_of_memory


def refine_band_on(
    device: torch.device, image: np.ndarray, mask: np.ndarray, grow: int, radius: int, eps: float, subsample: int
) -> bool:
    """Write into ``mask`` (H x W float32, the upsampled prediction) the guided filter's values
    (``radius`` px, regulariser ``eps``, coefficients on ``subsample`` x ``subsample`` block means of the photo) in its
    uncertain band: the pixels within ``grow`` px (a disc) of one strictly between the trimap's levels (0.1, 0.9).
    ``image``: the photo, H x W x 3|4. False (``mask`` untouched) where the device's memory runs out."""
    done = unless_out_of_memory(_band, device, image, mask, grow, radius, eps, subsample)
    if done is None:
        return False
    where, values = done
    if where is not None:
        ys, xs = np.divmod(where, mask.shape[1])
        mask[ys, xs] = values
    return True


def _band(device, image, mask, grow, radius, eps, subsample) -> tuple:
    """(flat indices of the band's pixels, their filtered values) on the host; (None, None) without a band."""
    m = to_device(np.ascontiguousarray(mask), device)[None, None]
    doubt = ((m > trimaps.BG_AT) & (m < trimaps.FG_AT)).float()
    if not bool(doubt.any()):
        return None, None
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)).astype(np.float32)
    band = F.conv2d(doubt, torch.from_numpy(disc).to(device)[None, None], padding=grow) > 0.5
    doubt = None
    guide = unit_tensor(image[..., :3], device)
    values = guided_filter_on(guide, m, radius, eps, subsample)
    where = band.view(-1).nonzero().squeeze(1)
    return where.cpu().numpy(), values.view(-1).index_select(0, where).clamp_(0.0, 1.0).cpu().numpy()


def guided_filter_on(
    guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float, subsample: int = 1
) -> torch.Tensor:
    """:func:`mattekit.ops.filters.guided_filter` with a colour guide (1 x 3 x H x W) of ``src`` (1 x 1 x H x W): per
    pixel ``q = a . I + b``, a and b the box means of the local 3 x 3 covariance solve (radius px, ``eps`` in squared
    guide units); ``subsample`` > 1 solves them on s x s block means of both and enlarges them bilinearly.
    1 x 1 x H x W."""
    s = max(1, int(subsample))
    g, p = guide, src
    r = int(radius)
    if s > 1:
        g, p = F.avg_pool2d(guide, s, s, ceil_mode=True), F.avg_pool2d(src, s, s, ceil_mode=True)
        r = max(1, round(radius / s))
    mean_a, mean_b = _coefficients(g, p, r, eps)
    if s > 1:
        size = guide.shape[2:]
        mean_a, mean_b = (
            enlarged(c, (-(-size[0] // s) * s, -(-size[1] // s) * s))[:, :, : size[0], : size[1]]
            for c in (mean_a, mean_b)
        )
    return (mean_a * guide).sum(1, keepdim=True) + mean_b


def _coefficients(g: torch.Tensor, p: torch.Tensor, r: int, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Box means of the guided filter's a (1 x 3 x h x w) and b (1 x 1 x h x w) for a colour guide ``g`` and ``p``."""
    mean_i, mean_p = box_mean(g, r), box_mean(p, r)
    cov = box_mean(g * p, r) - mean_i * mean_p
    pairs = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
    products = torch.cat([g[:, i : i + 1] * g[:, j : j + 1] for i, j in pairs], 1)
    var = box_mean(products, r) - torch.cat([mean_i[:, i : i + 1] * mean_i[:, j : j + 1] for i, j in pairs], 1)
    a11, a12, a13, a22, a23, a33 = (var[:, k : k + 1] + (eps if i == j else 0.0) for k, (i, j) in enumerate(pairs))
    c11, c12, c13 = a22 * a33 - a23 * a23, a13 * a23 - a12 * a33, a12 * a23 - a13 * a22
    c22, c23, c33 = a11 * a33 - a13 * a13, a13 * a12 - a11 * a23, a11 * a22 - a12 * a12
    det = a11 * c11 + a12 * c12 + a13 * c13
    x, y, z = cov[:, 0:1], cov[:, 1:2], cov[:, 2:3]
    a = torch.cat([(u * x + v * y + t * z) / det for u, v, t in ((c11, c12, c13), (c12, c22, c23), (c13, c23, c33))], 1)
    b = mean_p - (a * mean_i).sum(1, keepdim=True)
    return box_mean(a, r), box_mean(b, r)
